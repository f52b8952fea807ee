//! `zarrforge bitinfo`: the bitwise real information of float variables
//! (Klöwer et al. 2021) along each of their dimensions, and the mantissa
//! bits `convert --keepbits` keeps, as a table or as JSON; nothing is
//! written. It reads the inputs as `convert` does (every rank its share,
//! one reduction), so it runs under `mpirun`/`srun` the same way.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::cli::args::BitinfoArgs;
use crate::cli::config::Keep;
use crate::error::Error;
use crate::model::schema::DType;
use crate::mpi::ctx::MpiCtx;
use crate::pipeline::quantize::{self, analyse::Analysis};

/// Runs `zarrforge bitinfo` on every rank; rank 0 prints.
///
/// # Errors
/// A bad option, an input that cannot be read, a `--keepbits` item that
/// does not fit the inputs.
pub fn command(ctx: &MpiCtx, args: &BitinfoArgs) -> Result<(), Error> {
    let cfg = args.to_config()?;
    let job = crate::commands::convert::prepare_job(
        ctx,
        &cfg,
        &mut crate::commands::convert::Monitor::silent(ctx),
    )?;
    let choices = quantize::choose_in(&job.ds, &cfg.keepbits)?;
    let all: Vec<&quantize::Choice> = choices.chosen.iter().collect();
    let t0 = std::time::Instant::now();
    let mut analyses = crate::commands::convert::keepbits::analyse_on_all(ctx, &job.ds, &all)?;
    let seconds = ctx.max_f64(t0.elapsed().as_secs_f64());
    let values: u64 = (all.iter())
        .filter_map(|c| job.ds.schema.vars().get(c.var).map(|v| v.len()))
        .sum();
    // Fixed bits stand as given; the information is shown all the same.
    for (a, c) in analyses.iter_mut().zip(&choices.chosen) {
        if let Keep::Bits(n) = c.keep {
            a.keepbits = n;
        }
    }
    if !ctx.is_root() {
        return Ok(());
    }
    for w in &choices.warnings {
        crate::say!("zarrforge: warning: {w}");
    }
    if args.json {
        let mut doc = to_json(&analyses);
        doc["seconds"] = json!(seconds);
        doc["values"] = json!(values);
        doc["ranks"] = json!(ctx.size());
        emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        ));
    } else {
        emit(&format!(
            "{}{values} values read and counted in {seconds:.3} s on {} rank(s)\n",
            table(&analyses),
            ctx.size()
        ));
    }
    Ok(())
}

/// Writes `text` to standard output; a reader that stopped reading (a
/// closed pipe: `| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The JSON document: per variable, per dimension, the counts
/// `[n00, n01, n10, n11]` of each bit (most significant first).
pub fn to_json(analyses: &[Analysis]) -> Value {
    let vars: Vec<Value> = analyses
        .iter()
        .map(|a| {
            let along: Vec<Value> = a
                .along
                .iter()
                .map(|d| {
                    let counts: Vec<[u64; 4]> =
                        (0..d.counts.bits()).map(|b| d.counts.joint(b)).collect();
                    json!({
                        "dim": d.dim,
                        "pairs": d.counts.pairs,
                        "counts": counts,
                        "info": d.info,
                        "keepbits": d.keepbits,
                    })
                })
                .collect();
            json!({
                "name": a.path,
                "dtype": a.dtype.v3_name(),
                "level": a.level,
                "keepbits": a.keepbits,
                "along": along,
            })
        })
        .collect();
    json!({ "variables": vars })
}

/// The name of bit `b` of a `dtype` value: `±`, `e1`.., `m1`...
fn bit_name(dtype: DType, b: usize) -> String {
    let lead = crate::model::bitinfo::leading_bits(dtype);
    match b {
        0 => "±".into(),
        b if b < lead => format!("e{b}"),
        b => format!("m{}", b + 1 - lead),
    }
}

/// The text table: one block per variable, a row per bit, a column per
/// dimension; `*` marks the mantissa bits kept.
pub fn table(analyses: &[Analysis]) -> String {
    let mut out = String::new();
    for a in analyses {
        let per: Vec<String> = a
            .along
            .iter()
            .map(|d| format!("{} {}", d.dim, d.keepbits))
            .collect();
        let _ = writeln!(
            out,
            "{} ({}): keepbits {} at {} of the information{}",
            a.path,
            a.dtype.v3_name(),
            a.keepbits,
            a.level,
            if per.is_empty() {
                " (no adjacent values to count: every bit kept)".to_string()
            } else {
                format!(" (per dimension: {})", per.join(", "))
            }
        );
        if a.along.is_empty() {
            continue;
        }
        let _ = write!(out, "  {:<5}", "bit");
        for d in &a.along {
            let _ = write!(out, " {:>10}", d.dim);
        }
        out.push('\n');
        let lead = crate::model::bitinfo::leading_bits(a.dtype);
        let bits = a.along.first().map_or(0, |d| d.info.len());
        for b in 0..bits {
            let kept = b < lead + a.keepbits as usize;
            let _ = write!(
                out,
                "{} {:<5}",
                if kept { '*' } else { ' ' },
                bit_name(a.dtype, b)
            );
            for d in &a.along {
                let _ = write!(out, " {:>10.6}", d.info.get(b).copied().unwrap_or(0.0));
            }
            out.push('\n');
        }
    }
    out
}
