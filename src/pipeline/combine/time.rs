//! The time axis of a combination: one calendar, one output unit, and for
//! every file the exact re-encoding of its time values into that unit.

use std::path::PathBuf;

use super::error::CombineError;
use super::{coord_var, text_attr, CombineOptions};
use crate::model::cftime::{self, Calendar, Recode};
use crate::model::schema::{DType, Var};
use crate::pipeline::scan::FileScan;

/// The time axis: calendar, output units and each file's recode.
pub(super) struct TimeAxis {
    /// The calendar attribute as the first file writes it.
    pub(super) calendar_name: Option<String>,
    pub(super) output_units: Option<String>,
    recodes: Vec<Option<Recode>>,
}

/// The concatenation coordinate's `units` in every file, and the first
/// file whose units are CF time units (the reference).
struct Units<'a> {
    scans: &'a [FileScan],
    dim: &'a str,
    units: Vec<Option<String>>,
    is_time: Vec<bool>,
    first: usize,
    reference: String,
}

impl TimeAxis {
    pub(super) fn new(
        scans: &[FileScan],
        dim: &str,
        opts: &CombineOptions,
    ) -> Result<Self, CombineError> {
        let Some(u) = Units::of(scans, dim) else {
            return Ok(Self {
                calendar_name: None,
                output_units: None,
                recodes: vec![None; scans.len()],
            });
        };
        let all_same = u
            .units
            .iter()
            .zip(&u.is_time)
            .all(|(x, &t)| !t || x.as_deref() == Some(u.reference.as_str()));
        let given = opts.time_units.as_ref().map(|s| s.trim().to_string());
        let calendar_name =
            coord_var(&scans[u.first].schema, dim).and_then(|c| text_attr(c, "calendar"));
        if all_same && given.as_ref().is_none_or(|g| *g == u.reference) {
            // Nothing to re-encode: the calendar need not be one zarrforge
            // knows, only the same everywhere.
            u.check_same_calendar_names()?;
            return Ok(Self {
                calendar_name,
                output_units: Some(u.reference),
                recodes: vec![None; scans.len()],
            });
        }
        let calendar = u.check_calendars()?;
        if let Some(g) = &given {
            cftime::parse_units(g).map_err(|source| CombineError::Time {
                file: PathBuf::from("--time-units"),
                var: dim.to_string(),
                source,
            })?;
        }
        // Every file's first time is brought to the reference units, also
        // when the output units are given: a file whose units cannot be is
        // refused either way.
        let earliest = u.earliest_units(calendar)?;
        let output = match given {
            Some(g) => g,
            None if all_same => u.reference.clone(),
            None => earliest,
        };
        let recodes = u.recodes(calendar, &output)?;
        Ok(Self {
            calendar_name,
            output_units: Some(output),
            recodes,
        })
    }

    pub(super) fn recode(&self, file: usize) -> Option<Recode> {
        self.recodes.get(file).copied().flatten()
    }

    /// A file's coordinate values in the output units.
    pub(super) fn to_output(&self, file: usize, v: &[f64]) -> Vec<f64> {
        match self.recode(file) {
            Some(r) => v.iter().map(|&x| r.apply_f64(x)).collect(),
            None => v.to_vec(),
        }
    }

    /// Whether the values of `v` are re-encoded: the axis coordinate and its
    /// bounds. (Other time-valued variables must share their units.)
    pub(super) fn applies_to(&self, v: &Var, axis_paths: &[String]) -> bool {
        self.output_units.is_some()
            && axis_paths.contains(&v.path)
            && matches!(v.dtype, DType::I32 | DType::I64 | DType::F32 | DType::F64)
    }
}

impl<'a> Units<'a> {
    /// `None` when no file's coordinate has time units.
    fn of(scans: &'a [FileScan], dim: &'a str) -> Option<Self> {
        let units: Vec<Option<String>> = scans
            .iter()
            .map(|s| coord_var(&s.schema, dim).and_then(|c| text_attr(c, "units")))
            .collect();
        let is_time: Vec<bool> = units
            .iter()
            .map(|u| u.as_deref().is_some_and(cftime::is_time_units))
            .collect();
        let first = is_time.iter().position(|&t| t)?;
        let reference = units[first].clone().unwrap_or_default();
        Some(Self {
            scans,
            dim,
            units,
            is_time,
            first,
            reference,
        })
    }

    /// File `i`'s calendar attribute as written (lower case), "standard"
    /// when absent.
    fn raw_calendar(&self, i: usize) -> String {
        coord_var(&self.scans[i].schema, self.dim)
            .and_then(|c| text_attr(c, "calendar"))
            .unwrap_or_else(|| "standard".into())
            .to_ascii_lowercase()
    }

    /// File `i`'s calendar, which zarrforge must know.
    fn calendar(&self, i: usize) -> Result<Calendar, CombineError> {
        let c = coord_var(&self.scans[i].schema, self.dim).and_then(|c| text_attr(c, "calendar"));
        Calendar::parse(c.as_deref()).map_err(|source| CombineError::Time {
            file: self.scans[i].path.clone(),
            var: self.dim.to_string(),
            source,
        })
    }

    fn mismatch(&self, what: &str, i: usize, va: String, vb: String) -> CombineError {
        CombineError::Mismatch {
            var: self.dim.to_string(),
            what: what.into(),
            a: self.scans[self.first].path.clone(),
            va,
            b: self.scans[i].path.clone(),
            vb,
        }
    }

    /// Same units everywhere: the calendars must only be the same (known
    /// aliases of one calendar are the same).
    fn check_same_calendar_names(&self) -> Result<(), CombineError> {
        for i in 0..self.scans.len() {
            let (a, b) = (self.raw_calendar(self.first), self.raw_calendar(i));
            let same = match (Calendar::parse(Some(&a)), Calendar::parse(Some(&b))) {
                (Ok(x), Ok(y)) => x == y,
                _ => a == b,
            };
            if coord_var(&self.scans[i].schema, self.dim).is_some() && !same {
                return Err(self.mismatch("calendar", i, a, b));
            }
        }
        Ok(())
    }

    /// Values to re-encode: every file with the coordinate must have time
    /// units and the same known calendar.
    fn check_calendars(&self) -> Result<Calendar, CombineError> {
        let calendar = self.calendar(self.first)?;
        for i in 0..self.scans.len() {
            if coord_var(&self.scans[i].schema, self.dim).is_none() {
                continue;
            }
            if !self.is_time[i] {
                return Err(self.mismatch(
                    "attribute 'units'",
                    i,
                    self.units[self.first].clone().unwrap_or_default(),
                    self.units[i].clone().unwrap_or_else(|| "absent".into()),
                ));
            }
            let c = self.calendar(i)?;
            if c != calendar {
                return Err(self.mismatch("calendar", i, calendar.name().into(), c.name().into()));
            }
        }
        Ok(calendar)
    }

    /// File `i`'s re-encoding into the reference units (`None`: the same).
    fn to_reference(&self, i: usize, calendar: Calendar) -> Result<Option<Recode>, CombineError> {
        let u = self.units[i].clone().unwrap_or_default();
        if u == self.reference {
            return Ok(None);
        }
        cftime::recode(&u, &self.reference, calendar)
            .map(Some)
            .map_err(|source| {
                // Name the file whose units are the problem.
                let culprit = match &source {
                    cftime::TimeError::Ambiguous(t) => self
                        .units
                        .iter()
                        .position(|x| x.as_deref().map(str::trim) == Some(t.trim()))
                        .unwrap_or(i),
                    _ => i,
                };
                CombineError::Time {
                    file: self.scans[culprit].path.clone(),
                    var: self.dim.to_string(),
                    source,
                }
            })
    }

    /// The units of the file holding the earliest time (every first value
    /// brought to the reference units to compare them).
    fn earliest_units(&self, calendar: Calendar) -> Result<String, CombineError> {
        let mut first_time: Option<(f64, usize)> = None;
        for i in 0..self.scans.len() {
            if !self.is_time[i] {
                continue;
            }
            let Some(v0) = self.scans[i]
                .coords
                .iter()
                .find(|c| c.dim == self.dim)
                .and_then(|c| c.values.as_ref())
                .and_then(|v| v.first().copied())
            else {
                continue;
            };
            let v0 = match self.to_reference(i, calendar)? {
                Some(r) => r.apply_f64(v0),
                None => v0,
            };
            if first_time.is_none_or(|(t, _)| v0 < t) {
                first_time = Some((v0, i));
            }
        }
        Ok(first_time
            .and_then(|(_, i)| self.units[i].clone())
            .unwrap_or(self.reference.clone()))
    }

    /// Every file's re-encoding into `output`; integer coordinates must stay
    /// exact.
    fn recodes(
        &self,
        calendar: Calendar,
        output: &str,
    ) -> Result<Vec<Option<Recode>>, CombineError> {
        let mut recodes = vec![None; self.scans.len()];
        for i in 0..self.scans.len() {
            if !self.is_time[i] {
                continue;
            }
            let u = self.units[i].clone().unwrap_or_default();
            if u == output {
                continue;
            }
            let file = &self.scans[i].path;
            let r = cftime::recode(&u, output, calendar).map_err(|source| CombineError::Time {
                file: file.clone(),
                var: self.dim.to_string(),
                source,
            })?;
            if r.is_identity() {
                continue;
            }
            let ints = self.scans[i]
                .coords
                .iter()
                .find(|c| c.dim == self.dim)
                .and_then(|c| c.ints.as_ref());
            if let Some(&x) = ints
                .into_iter()
                .flatten()
                .find(|&&x| r.apply_i64(x).is_none())
            {
                return Err(CombineError::Inexact {
                    file: file.clone(),
                    var: self.dim.to_string(),
                    value: x,
                    from: u.clone(),
                    to: output.to_string(),
                });
            }
            recodes[i] = Some(r);
        }
        Ok(recodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::combine::tests::file;

    fn axis(scans: &[FileScan], given: Option<&str>) -> Result<TimeAxis, CombineError> {
        let opts = CombineOptions {
            time_units: given.map(str::to_string),
            ..CombineOptions::default()
        };
        TimeAxis::new(scans, "time", &opts)
    }

    #[test]
    fn the_same_units_everywhere_recode_nothing() {
        let scans = [
            file("a.nc", &[0.0, 1.0], "hours since 2000-01-01", &[]),
            file("b.nc", &[2.0], "hours since 2000-01-01", &[]),
        ];
        let t = axis(&scans, None).unwrap();
        assert_eq!(t.output_units.as_deref(), Some("hours since 2000-01-01"));
        assert_eq!(t.calendar_name.as_deref(), Some("standard"));
        assert!(t.recode(0).is_none() && t.recode(1).is_none());
    }

    #[test]
    fn the_earliest_file_gives_the_output_units() {
        // b.nc starts a day before a.nc: its units win, a.nc is recoded.
        let scans = [
            file("a.nc", &[0.0], "days since 2000-01-02", &[]),
            file("b.nc", &[0.0], "days since 2000-01-01", &[]),
        ];
        let t = axis(&scans, None).unwrap();
        assert_eq!(t.output_units.as_deref(), Some("days since 2000-01-01"));
        assert_eq!(t.to_output(0, &[0.0, 1.0]), vec![1.0, 2.0]);
        assert!(t.recode(1).is_none());
    }

    #[test]
    fn given_units_recode_every_file() {
        let scans = [file("a.nc", &[0.0, 1.0], "days since 2000-01-01", &[])];
        let t = axis(&scans, Some("hours since 2000-01-01")).unwrap();
        assert_eq!(t.to_output(0, &[0.0, 1.0]), vec![0.0, 24.0]);
        let bad = axis(&scans, Some("fortnights after lunch")).err().unwrap();
        assert!(bad.to_string().contains("--time-units"), "{bad}");
    }

    #[test]
    fn units_and_calendars_must_agree_to_recode() {
        let mut b = file("b.nc", &[0.0], "hours since 2000-01-02", &[]);
        b.schema.root.vars[0].attrs.retain(|a| a.name != "calendar");
        b.schema.root.vars[0]
            .attrs
            .push(crate::model::schema::Attr {
                name: "calendar".into(),
                value: crate::model::schema::AttrValue::Text("noleap".into()),
            });
        let scans = [file("a.nc", &[0.0], "hours since 2000-01-01", &[]), b];
        let e = axis(&scans, None).err().unwrap().to_string();
        assert!(e.contains("calendar") && e.contains("b.nc"), "{e}");
        let mut c = file("c.nc", &[0.0], "hours since 2000-01-02", &[]);
        c.schema.root.vars[0].attrs.retain(|a| a.name != "units");
        let scans = [file("a.nc", &[0.0], "hours since 2000-01-01", &[]), c];
        // Nothing to recode: a file without units passes.
        assert!(axis(&scans, None).is_ok());
        let e = axis(&scans, Some("hours since 1999-12-31"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("units") && e.contains("c.nc"), "{e}");
    }

    #[test]
    fn integer_coordinates_must_stay_exact() {
        let mut a = file("a.nc", &[1.0], "hours since 2000-01-01", &[]);
        a.coords[0].ints = Some(vec![1]);
        let e = axis(&[a], Some("days since 2000-01-01"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("a.nc"), "{e}");
    }
}
