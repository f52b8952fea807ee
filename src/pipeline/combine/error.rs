//! Errors combining the input files into one dataset.

use std::path::PathBuf;

/// Inconsistent inputs.
#[derive(Debug, thiserror::Error)]
pub enum CombineError {
    /// No input files.
    #[error("no input files")]
    NoInputs,
    /// The concatenation dimension is in no file.
    #[error("--concat-dim '{0}' is not a dimension of any input file")]
    UnknownConcatDim(String),
    /// A group defines its own dimension named like the concatenation
    /// dimension (its variables are not along the concatenation axis).
    #[error("{path}: group '{group}' defines its own dimension '{dim}', which hides the concatenation dimension of the same name; several files with such groups cannot be concatenated along '{dim}'")]
    ShadowedConcatDim {
        /// A file with such a group.
        path: PathBuf,
        /// The group.
        group: String,
        /// The dimension.
        dim: String,
    },
    /// A variable is in several files but there is nothing to concatenate along.
    #[error("variable '{var}' is in both {a} and {b}, but the files have no common unlimited dimension to concatenate along (pass --concat-dim DIM)")]
    NoConcatDim {
        /// Variable.
        var: String,
        /// First file.
        a: PathBuf,
        /// Second file.
        b: PathBuf,
    },
    /// Two files overlap along the axis.
    #[error("{a} and {b} overlap along '{dim}': {b} starts at {first} but {a} ends at {last} (use --allow-overlaps to keep both)")]
    Overlap {
        /// Dimension.
        dim: String,
        /// Earlier file.
        a: PathBuf,
        /// Later file.
        b: PathBuf,
        /// Last value of `a`.
        last: f64,
        /// First value of `b`.
        first: f64,
    },
    /// Two files hold the same coordinate value.
    #[error("{a} and {b} both hold '{dim}' = {value} (duplicated coordinate value; use --allow-overlaps to keep both)")]
    Duplicate {
        /// Dimension.
        dim: String,
        /// Earlier file.
        a: PathBuf,
        /// Later file.
        b: PathBuf,
        /// The value.
        value: f64,
    },
    /// A gap between consecutive files.
    #[error("gap along '{dim}' between {a} (ends at {last}) and {b} (starts at {first}); the usual step is {step} (use --allow-gaps if this is intended)")]
    Gap {
        /// Dimension.
        dim: String,
        /// Earlier file.
        a: PathBuf,
        /// Later file.
        b: PathBuf,
        /// Last value of `a`.
        last: f64,
        /// First value of `b`.
        first: f64,
        /// Typical step.
        step: f64,
    },
    /// Values not increasing within a file.
    #[error("{file}: coordinate '{dim}' is not strictly increasing (index {index})")]
    NotIncreasing {
        /// File.
        file: PathBuf,
        /// Dimension.
        dim: String,
        /// First offending index.
        index: usize,
    },
    /// Some files have a coordinate variable for the axis and others not.
    #[error(
        "{with} has a coordinate variable '{dim}' but {without} has none: cannot order the files"
    )]
    CoordMix {
        /// Dimension.
        dim: String,
        /// A file with it.
        with: PathBuf,
        /// A file without it.
        without: PathBuf,
    },
    /// A variable is missing from some files.
    #[error("variable '{var}' is missing from {file} (it is in {present})")]
    Missing {
        /// Variable.
        var: String,
        /// File without it.
        file: PathBuf,
        /// A file with it.
        present: PathBuf,
    },
    /// A variable differs between files.
    #[error("variable '{var}': {what} differs between {a} ({va}) and {b} ({vb})")]
    Mismatch {
        /// Variable.
        var: String,
        /// What differs.
        what: String,
        /// First file.
        a: PathBuf,
        /// Its value.
        va: String,
        /// Second file.
        b: PathBuf,
        /// Its value.
        vb: String,
    },
    /// The merged groups do not cover the same axis.
    #[error("merged files disagree on '{dim}': {detail}")]
    Axis {
        /// Dimension.
        dim: String,
        /// Where they first differ.
        detail: String,
    },
    /// Time units cannot be combined.
    #[error("{file}: variable '{var}': {source}")]
    Time {
        /// File.
        file: PathBuf,
        /// Variable.
        var: String,
        /// Cause.
        source: crate::model::cftime::TimeError,
    },
    /// A time value cannot be expressed exactly in the output units.
    #[error("{file}: '{var}' value {value} in '{from}' is not a whole number of '{to}' (pass --time-units with a finer unit)")]
    Inexact {
        /// File.
        file: PathBuf,
        /// Variable.
        var: String,
        /// Value.
        value: i64,
        /// Its units.
        from: String,
        /// Output units.
        to: String,
    },
    /// A file's value along the new dimension cannot be found.
    #[error("{path}: no value for --new-dim '{dim}': {what}")]
    NewDimValue {
        /// File.
        path: PathBuf,
        /// The new dimension.
        dim: String,
        /// What is wrong.
        what: String,
    },
    /// The files do not form a grid: the order or name of the new
    /// dimension does not fit them, or their common axis has a gap.
    #[error("{0}")]
    Grid(String),
    /// A member named by `--new-dim-order` has no file.
    #[error("{dim}={member}: no input file has this value (pass --allow-missing to fill the member with the fill value)")]
    MemberAbsent {
        /// The new dimension.
        dim: String,
        /// The member.
        member: String,
    },
    /// A cell of the grid that no file holds.
    #[error("{dim}={member}: no file holds {len} step(s) of '{concat}' from index {start} ({concat} = {first}) that other members have (pass --allow-missing to fill them with the fill value)")]
    MissingCell {
        /// The new dimension.
        dim: String,
        /// The member.
        member: String,
        /// The concatenation dimension.
        concat: String,
        /// First missing index.
        start: u64,
        /// Number of steps.
        len: u64,
        /// The first missing value.
        first: String,
    },
    /// A member's own files do not combine.
    #[error("{dim}={member}: {source}")]
    InMember {
        /// The new dimension.
        dim: String,
        /// The member.
        member: String,
        /// What is wrong with its files.
        source: Box<CombineError>,
    },
    /// A member differs from the reference (first) member.
    #[error("{dim}={member} ({file}) differs from {dim}={reference}: {what}")]
    MemberDiffers {
        /// The new dimension.
        dim: String,
        /// The member.
        member: String,
        /// Its first file.
        file: PathBuf,
        /// The reference member.
        reference: String,
        /// What differs, and where first.
        what: String,
    },
    /// A merge group names a file twice or not at all.
    #[error("merge groups: {0}")]
    Groups(String),
}
