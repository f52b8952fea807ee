//! Rewriting a region of a store written by zarrforge (`--region`): a
//! backfill. The inputs are combined as for any run, in the store's time
//! units; their coordinate values must be exactly the store's over one
//! run of steps ([`locate`]); every variable along the store's
//! concatenation dimension is rewritten there and nothing else
//! ([`dataset`], [`arrays`]). A unit (chunk or shard) the region covers
//! in part is read back, changed and written by its one owner.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cli::config::RegionSpec;
use crate::model::cftime::{parse_units, Calendar};
use crate::pipeline::combine::Dataset;
use crate::pipeline::plan::ArrayPlan;
use crate::store::append;
use crate::store::error::AppendError;
use crate::store::state::StoreState;

/// The steps `[start, end)` along `dim` that a run rewrites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// The store's concatenation dimension.
    pub dim: String,
    /// First index.
    pub start: u64,
    /// One past the last index.
    pub end: u64,
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}..{})", self.dim, self.start, self.end)
    }
}

fn refused(store: &Path, what: String) -> AppendError {
    AppendError::Region {
        store: store.to_path_buf(),
        what,
    }
}

/// The region of the store that the inputs `new` rewrite: where their
/// coordinate values lie (`auto`), or the steps of `spec`'s range, which
/// the inputs must then cover exactly.
///
/// # Errors
/// [`AppendError::Region`] naming the first index where the inputs' values
/// and the store's differ, with both values.
pub fn locate(
    store: &Path,
    state: &StoreState,
    new: &Dataset,
    spec: &RegionSpec,
) -> Result<Region, AppendError> {
    let Some(old) = &state.concat else {
        return Err(refused(
            store,
            "the store has no concatenation dimension".into(),
        ));
    };
    let Some(cur) = &new.concat else {
        return Err(refused(
            store,
            format!(
                "the inputs have no dimension '{}' to place them along",
                old.dim
            ),
        ));
    };
    if cur.dim != old.dim {
        return Err(refused(
            store,
            format!(
                "the store is concatenated along '{}', the inputs along '{}'",
                old.dim, cur.dim
            ),
        ));
    }
    let (Some(have), Some(vals)) = (&old.values, &cur.values) else {
        return Err(refused(
            store,
            format!(
                "'{}' has no coordinate values to find the region by",
                old.dim
            ),
        ));
    };
    let units = old
        .time_units
        .as_ref()
        .map(|u| format!(" (in {u})"))
        .unwrap_or_default();
    let at = Axis {
        store,
        dim: &old.dim,
        have,
        units: &units,
    };
    let start = match spec {
        RegionSpec::Auto => at.start_of(vals)?,
        RegionSpec::Range { dim, start, end } => {
            if *dim != old.dim {
                return Err(refused(
                    store,
                    format!(
                        "--region names '{dim}', the store is concatenated along '{}'",
                        old.dim
                    ),
                ));
            }
            let value = |text: &str| {
                coordinate_value(text, old.time_units.as_deref(), old.calendar.as_deref()).ok_or_else(|| {
                    refused(store, format!("--region value '{text}' is neither a number nor a date in the store's calendar"))
                })
            };
            at.range((start, value(start)?), (end, value(end)?), vals.len())?
        }
    };
    at.check(start, vals)?;
    Ok(Region {
        dim: old.dim.clone(),
        start: start as u64,
        end: (start + vals.len()) as u64,
    })
}

/// The store's axis, to place a region's inputs on.
struct Axis<'a> {
    store: &'a Path,
    dim: &'a str,
    have: &'a [f64],
    units: &'a str,
}

impl Axis<'_> {
    /// Where the inputs' first value is (`--region auto`).
    fn start_of(&self, vals: &[f64]) -> Result<usize, AppendError> {
        let Some(&first) = vals.first() else {
            return Err(refused(self.store, "the inputs hold no steps".into()));
        };
        self.have
            .iter()
            .position(|x| x.to_bits() == first.to_bits())
            .ok_or_else(|| {
                refused(
                    self.store,
                    format!(
                        "the inputs' first '{}' value {first}{} is not a value of the store's coordinate, which runs from {} to {}",
                        self.dim,
                        self.units,
                        self.have.first().copied().unwrap_or(f64::NAN),
                        self.have.last().copied().unwrap_or(f64::NAN)
                    ),
                )
            })
    }

    /// The first index of the steps from `lo` to `hi` (both included),
    /// which must be as many as the inputs' `n`.
    fn range(
        &self,
        (start, lo): (&str, f64),
        (end, hi): (&str, f64),
        n: usize,
    ) -> Result<usize, AppendError> {
        let a = self.have.partition_point(|x| *x < lo);
        let b = self.have.partition_point(|x| *x <= hi);
        if a >= b {
            return Err(refused(
                self.store,
                format!(
                    "no step of '{}' lies from {start} to {end} ({lo} to {hi}{})",
                    self.dim, self.units
                ),
            ));
        }
        if n != b - a {
            return Err(refused(
                self.store,
                format!(
                    "--region {}={start}..{end} holds {} steps of the store (indices {a}..{b}), the inputs {n}",
                    self.dim,
                    b - a
                ),
            ));
        }
        Ok(a)
    }

    /// The inputs' values must be the store's from `start` on.
    fn check(&self, start: usize, vals: &[f64]) -> Result<(), AppendError> {
        for (k, x) in vals.iter().enumerate() {
            let i = start + k;
            match self.have.get(i) {
                Some(y) if y.to_bits() == x.to_bits() => {}
                Some(y) => {
                    return Err(refused(
                        self.store,
                        format!(
                            "the coordinate values differ at index {i} of '{}': the store has {y}, the inputs {x}{}",
                            self.dim, self.units
                        ),
                    ))
                }
                None => {
                    return Err(refused(
                        self.store,
                        format!(
                            "the inputs run past the store's end: index {i} of '{}' (value {x}{}) is not in the store, which has {} steps (use --append to add steps)",
                            self.dim,
                            self.units,
                            self.have.len()
                        ),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// A coordinate value from `--region` text: a number in the store's
/// units, or a date (`2000-01-08`, `2000-01-08T06:00`) for a time axis.
fn coordinate_value(text: &str, units: Option<&str>, calendar: Option<&str>) -> Option<f64> {
    if let Ok(x) = text.parse::<f64>() {
        return Some(x);
    }
    let units = parse_units(units?).ok()?;
    let calendar = Calendar::parse(calendar).ok()?;
    let date = parse_units(&format!("seconds since {}", text.replace('T', " "))).ok()?;
    let at = date.reference_nanos(calendar).ok()?;
    let epoch = units.reference_nanos(calendar).ok()?;
    #[allow(clippy::cast_precision_loss)] // a date's offset in the store's unit
    Some((at - epoch) as f64 / units.unit.nanos() as f64)
}

/// The dataset of a region write: the store's structure, the inputs
/// placed at the region.
///
/// # Errors
/// [`AppendError::Region`] for a variable or encoding that differs from
/// the store's, or inputs whose members are not the store's.
pub fn dataset(
    store: &Path,
    state: &StoreState,
    new: &mut Dataset,
    region: &Region,
) -> Result<Dataset, AppendError> {
    let as_region = |e: AppendError| match e {
        AppendError::Mismatch { store, what } => AppendError::Region { store, what },
        other => other,
    };
    if append::growth(store, state, new).map_err(as_region)? == append::Growth::Members {
        return Err(refused(
            store,
            "the inputs' members are not the store's: a region is rewritten for every member of the store".into(),
        ));
    }
    if let Some(g) = &new.grid {
        if let Some(cell) = g.missing.first() {
            return Err(refused(
                store,
                format!(
                    "{}={} has no input for {} step(s) from index {} of the region: a region is rewritten for every member, from inputs for all of them",
                    g.dim, cell.member, cell.len, cell.start
                ),
            ));
        }
    }
    append::place(store, state, new, region.start, false).map_err(as_region)
}

/// The array plans of a region write: the store's layouts, restricted to
/// the units that hold steps of the region; arrays without its dimension
/// are left as they are.
pub fn arrays(ds: &Dataset, state: &StoreState, region: &Region) -> Vec<ArrayPlan> {
    let mut arrays = append::arrays(ds, state, 0);
    for a in &mut arrays {
        let axis = ds.sources.get(a.var).and_then(|s| s.axis);
        a.restrict_range(axis, region.start, region.end);
    }
    arrays
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_become_values_in_the_store_units() {
        let v = |t| coordinate_value(t, Some("days since 2000-01-01"), Some("noleap"));
        assert_eq!(v("2000-01-08"), Some(7.0));
        assert_eq!(v("2000-03-01"), Some(59.0));
        assert_eq!(v("2001-01-01T12:00"), Some(365.5));
        assert_eq!(v("12.5"), Some(12.5));
        assert_eq!(v("yesterday"), None);
        let h = coordinate_value("2000-01-02", Some("hours since 2000-01-01"), None);
        assert_eq!(h, Some(24.0));
    }

    #[test]
    fn region_text_parses() {
        assert_eq!(RegionSpec::parse("auto").ok(), Some(RegionSpec::Auto));
        assert_eq!(
            RegionSpec::parse("time=2000-01-08..2000-01-14").ok(),
            Some(RegionSpec::Range {
                dim: "time".into(),
                start: "2000-01-08".into(),
                end: "2000-01-14".into()
            })
        );
        assert!(RegionSpec::parse("time=2000").is_err());
        assert!(RegionSpec::parse("=1..2").is_err());
    }
}
