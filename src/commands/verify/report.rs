//! What a verification found, and how it is told: the report (text and
//! JSON), its `verified` event, and the exit status it gives.

use std::path::PathBuf;

use serde::Serialize;

use super::values;
use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::report::events::Event;

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The store.
    pub store: PathBuf,
    /// Source files.
    pub files: usize,
    /// Arrays compared.
    pub arrays: usize,
    /// Units (chunks or shards) compared.
    pub units: u64,
    /// Elements compared.
    pub values: u64,
    /// Elements that differ.
    pub mismatches: u64,
    /// Metadata differences.
    pub metadata: Vec<String>,
    /// The first value mismatches (a few per rank).
    pub first: Vec<String>,
    /// The arrays rounded before compression (`convert --keepbits`) and
    /// the errors of their values against the sources'.
    pub rounded: Vec<RoundedArray>,
    /// Wall seconds.
    pub seconds: f64,
}

/// An array the store records as rounded (`BitRound`, CF quantization
/// attributes): its values are compared with the sources' rounded to its
/// bits, and their errors against the sources' own values measured over
/// the finite values (NaN, ±Inf, fill and missing values aside).
#[derive(Debug, Clone, Serialize)]
pub struct RoundedArray {
    /// Its path.
    pub array: String,
    /// Mantissa bits kept (`quantization_nsb`).
    pub keepbits: u32,
    /// The largest relative error rounding allows
    /// (`quantization_maximum_relative_error`, `2^-(keepbits+1)`).
    pub max_relative_error: f64,
    /// Values measured.
    pub values: u64,
    /// The largest absolute error of a stored value.
    pub largest_absolute_error: f64,
    /// The largest relative error of a stored value (normal values;
    /// subnormal ones are held to the absolute error of the smallest
    /// normal exponent).
    pub largest_relative_error: f64,
    /// Finite source values at the top of the type's range that round to
    /// ±Inf, as `BitRound` rounds them (not measured).
    pub rounded_to_infinity: u64,
}

impl RoundedArray {
    /// One line: the bits, the largest errors and the bound.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{}: {} mantissa bits kept: max absolute error {}, max relative error {} ({} {}) over {} values",
            self.array,
            self.keepbits,
            short(self.largest_absolute_error),
            short(self.largest_relative_error),
            if self.largest_relative_error > self.max_relative_error {
                "beyond"
            } else {
                "at most"
            },
            values::num(self.max_relative_error),
            self.values
        );
        if self.rounded_to_infinity > 0 {
            out.push_str(&format!(
                "; {} value(s) at the top of the range rounded to infinity",
                self.rounded_to_infinity
            ));
        }
        out
    }
}

/// `x` with 4 significant digits, in plain notation unless very large or
/// small.
pub(super) fn short(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 || !a.is_finite() || !(1e-6..1e16).contains(&a) {
        return values::num(x);
    }
    let digits = (3 - a.log10().floor() as i32).clamp(0, 12);
    format!("{x:.*}", digits as usize)
}

impl VerifyReport {
    /// Whether the store equals the sources.
    pub fn ok(&self) -> bool {
        self.mismatches == 0 && self.metadata.is_empty()
    }

    /// Summary and the first differences, one per line.
    pub fn text(&self) -> String {
        let mut out = format!(
            "zarrforge verify: {} vs {} file(s): {} arrays, {} units, {} values compared in {:.2} s: {}",
            self.store.display(),
            self.files,
            self.arrays,
            self.units,
            self.values,
            self.seconds,
            if self.ok() {
                "identical".to_string()
            } else {
                format!(
                    "{} value(s) differ, {} metadata difference(s)",
                    self.mismatches,
                    self.metadata.len()
                )
            }
        );
        for m in self.metadata.iter().take(20) {
            out.push_str("\n  metadata: ");
            out.push_str(m);
        }
        for m in &self.first {
            out.push_str("\n  value: ");
            out.push_str(m);
        }
        for r in &self.rounded {
            out.push_str("\n  rounded: ");
            out.push_str(&r.text());
        }
        out
    }
}

/// The `verified` event of a comparison.
pub fn verified(r: &VerifyReport) -> Event {
    Event::Verified {
        output: r.store.display().to_string(),
        files: r.files,
        arrays: r.arrays,
        units: r.units,
        values: r.values,
        mismatches: r.mismatches,
        metadata_differences: r.metadata.len(),
        identical: r.ok(),
        seconds: (r.seconds * 1000.0).round() / 1000.0,
    }
}

/// Where the text of a verification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// stdout (the default).
    Stdout,
    /// stderr: stdout carries the events (`--events -`).
    Stderr,
}

impl Text {
    /// Where the text goes beside the events of `progress`: stderr when
    /// they take stdout (`--events -`).
    pub fn beside(progress: &crate::cli::args::ProgressArgs) -> Self {
        if progress.events_on_stdout() {
            Self::Stderr
        } else {
            Self::Stdout
        }
    }
}

/// Prints a verification (rank 0) to `text`, writes it as JSON to `json`,
/// and fails when it found differences.
///
/// # Errors
/// [`Error::Verify`] naming the store and the number of differences.
pub fn finish(
    ctx: &MpiCtx,
    report: &VerifyReport,
    json: Option<&std::path::Path>,
    text: Text,
) -> Result<(), Error> {
    if ctx.is_root() {
        match text {
            Text::Stdout => println!("{}", report.text()),
            Text::Stderr => crate::say!("{}", report.text()),
        }
        if let Some(path) = json {
            crate::commands::write_report(
                path,
                &serde_json::to_vec_pretty(report).unwrap_or_default(),
            )?;
        }
    }
    if report.ok() {
        Ok(())
    } else {
        Err(Error::Verify(format!(
            "{} differs from its sources: {} value(s), {} metadata difference(s)",
            report.store.display(),
            report.mismatches,
            report.metadata.len()
        )))
    }
}
