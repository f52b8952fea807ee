//! `--keepbits`: the mantissa bits every rounded float variable keeps,
//! decided before the plan.
//!
//! * Fixed bits are taken as given (every rank decides the same).
//! * `auto`: every rank counts the bit pairs of its share of each such
//!   variable; the counts are summed on rank 0 with one reduction, rank 0
//!   picks the bits and broadcasts them.
//! * The decision is written into the dataset's metadata (CF
//!   quantization attributes and container), which the plan's arrays then
//!   read their bits from; an append or a region write takes the store's
//!   and refuses other bits.

use crate::cli::config::{ConvertConfig, Keep};
use crate::error::Error;
use crate::model::bitround::mantissa_bits;
use crate::mpi::ctx::MpiCtx;
use crate::pipeline::plan::Plan;
use crate::pipeline::quantize::{self, analyse, Choice, Decided, QuantizeError};
use crate::report::summary::Rounded;
use crate::system::stage::guarded;

use super::job::{from_root, Job};

/// Decides the bits of `cfg.keepbits` for `job` and records them in its
/// dataset (a new store), or checks them against the store's (an append
/// or a region write); the rounded variables, for the report.
///
/// # Errors
/// [`QuantizeError`] for an item that does not fit the sources or the
/// store; a read error of the `auto` pass (on every rank).
pub fn decide(ctx: &MpiCtx, cfg: &ConvertConfig, job: &mut Job) -> Result<Vec<Rounded>, Error> {
    if job.arrays.is_some() {
        // The store's schema: its rounding stands.
        let choices = quantize::choose_in(&job.ds, &cfg.keepbits)?;
        check_store(cfg, &job.ds.schema, &choices.chosen)?;
        return Ok(recorded(&job.ds.schema));
    }
    if cfg.keepbits.is_empty() {
        return Ok(Vec::new());
    }
    let choices = quantize::choose_in(&job.ds, &cfg.keepbits)?;
    job.warnings.extend(choices.warnings.iter().cloned());
    let auto: Vec<&Choice> = choices.auto().collect();
    let analyses = if auto.is_empty() {
        Vec::new()
    } else {
        analyse_on_all(ctx, &job.ds, &auto)?
    };
    let decided: Vec<Decided> = choices
        .chosen
        .iter()
        .map(|c| {
            let (keepbits, level) = match c.keep {
                Keep::Bits(n) => (n, None),
                Keep::Auto(l) => (
                    analyses
                        .iter()
                        .find(|a| a.var == c.var)
                        .map_or(mantissa_bits(c.dtype).unwrap_or(0), |a| a.keepbits),
                    Some(l),
                ),
            };
            Decided {
                var: c.var,
                path: c.path.clone(),
                keepbits,
                level,
            }
        })
        .collect();
    quantize::annotate(&mut job.ds, &decided);
    Ok(decided
        .iter()
        .map(|d| Rounded::new(&d.path, d.keepbits, d.level))
        .collect())
}

/// The `auto` read pass on every rank, the reduction and rank 0's
/// decision, shared by every rank.
///
/// # Errors
/// A read error (on every rank).
pub fn analyse_on_all(
    ctx: &MpiCtx,
    ds: &crate::pipeline::combine::Dataset,
    auto: &[&Choice],
) -> Result<Vec<analyse::Analysis>, Error> {
    crate::system::stage::enter("keepbits");
    let rank = usize::try_from(ctx.rank()).unwrap_or(0);
    let counts = guarded(|| analyse::count(ds, auto, rank, ctx.size()).map_err(Error::from));
    let counts = ctx.agree(counts)?;
    let sums = ctx.sum_u64s_to_root(&analyse::to_words(&counts));
    from_root(ctx, || {
        let words = sums.unwrap_or_default();
        let totals = analyse::from_words(ds, auto, &words).ok_or_else(|| {
            Error::Mpi("keepbits: the summed bit-pair counts do not fit the variables".into())
        })?;
        Ok(analyse::decide(ds, auto, totals))
    })
}

/// An append or a region write keeps the store's rounding: an item that
/// asks for other bits (or for rounding a variable the store holds
/// unrounded) is refused.
fn check_store(
    cfg: &ConvertConfig,
    schema: &crate::model::schema::Schema,
    chosen: &[Choice],
) -> Result<(), Error> {
    let rec = quantize::recorded(schema);
    for c in chosen {
        let have = rec.get(c.var).copied().flatten();
        let nmant = mantissa_bits(c.dtype).unwrap_or(0);
        let why = match (c.keep, have) {
            (Keep::Auto(_), _) => None,
            (Keep::Bits(n), Some(k)) if n == k => None,
            (Keep::Bits(n), None) if n >= nmant => None,
            (Keep::Bits(n), Some(k)) => Some(format!(
                "the store keeps {k} mantissa bits of it (quantization_nsb), and its new values are rounded the same way: give {}={k}, or leave --keepbits out (the store's bits are used), not {n}",
                c.path
            )),
            (Keep::Bits(n), None) => Some(format!(
                "the store holds its values unrounded, so new values cannot keep {n} bits; leave --keepbits out for it, or convert into a new store"
            )),
        };
        if let Some(why) = why {
            return Err(QuantizeError::Store {
                store: cfg.output.clone(),
                var: c.path.clone(),
                why,
            }
            .into());
        }
    }
    Ok(())
}

/// The rounded variables as the metadata of `schema` records them.
fn recorded(schema: &crate::model::schema::Schema) -> Vec<Rounded> {
    let vars = schema.vars();
    quantize::recorded(schema)
        .into_iter()
        .zip(vars)
        .filter_map(|(k, v)| k.map(|k| Rounded::new(&v.path, k, None)))
        .collect()
}

/// `plan` with the bits each array is rounded to, from the metadata of
/// `ds`.
pub fn rounded(mut plan: Plan, ds: &crate::pipeline::combine::Dataset) -> Plan {
    let rec = quantize::recorded(&ds.schema);
    for a in &mut plan.arrays {
        a.keepbits = rec.get(a.var).copied().flatten();
    }
    plan
}
