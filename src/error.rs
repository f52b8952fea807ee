//! The error every command returns: one variant per stage, each holding
//! the error type its stage owns ([`ConfigError`] in `cli`, [`SchemaError`]
//! in `pipeline::scan`, [`WriteError`] in `store`, ...).
//!
//! Messages are lower-case, carry the values involved (file, variable,
//! dimension) and keep their source chain, so the binary can print the whole
//! chain once on one line.

use std::path::PathBuf;

use crate::cli::error::ConfigError;
use crate::mpi::ctx::{Failure, MpiError, RankError, RankFailure};
use crate::pipeline::combine::error::CombineError;
use crate::pipeline::read::error::ReadError;
use crate::pipeline::scan::error::SchemaError;
use crate::store::error::{AppendError, StoreError, WriteError};
use crate::system::stage::Panicked;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error zarrforge reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid command-line option or option value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The source could not be read or understood.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The input files do not fit together.
    #[error(transparent)]
    Combine(Box<CombineError>),
    /// An append does not fit the existing store.
    #[error(transparent)]
    Append(Box<AppendError>),
    /// `--virtual`: a variable that can be neither referenced nor copied.
    #[error(transparent)]
    Virtual(#[from] crate::pipeline::virtualize::VirtualError),
    /// A `--keepbits` item that does not fit the sources or the store.
    #[error(transparent)]
    Quantize(#[from] crate::pipeline::quantize::QuantizeError),
    /// Reading variable data failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Encoding or writing the store failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// One or more ranks failed; the messages are collected per rank.
    #[error("{} rank(s) failed: {}", .0.len(), .0.iter().map(|f| format!("[rank {}] {}", f.rank, f.failure.message)).collect::<Vec<_>>().join("; "))]
    Ranks(Vec<RankFailure>),
    /// A panic caught on this rank.
    #[error(transparent)]
    Panic(#[from] Panicked),
    /// `verify` found differences.
    #[error("{0}")]
    Verify(String),
    /// `verify` could not read the store or its sources.
    #[error(transparent)]
    Verifying(#[from] VerifyError),
    /// An MPI-level failure (message exchange).
    #[error("mpi: {0}")]
    Mpi(String),
}

impl From<CombineError> for Error {
    fn from(e: CombineError) -> Self {
        Self::Combine(Box::new(e))
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Config(e) => Self::Config(e),
            StoreError::Write(e) => Self::Write(e),
            StoreError::Append(e) => Self::Append(e),
        }
    }
}

impl From<AppendError> for Error {
    fn from(e: AppendError) -> Self {
        Self::Append(Box::new(e))
    }
}

/// Exit status of a run stopped by SIGTERM/SIGINT whose finished units are
/// recorded (`EX_TEMPFAIL`): the same command with `--resume` finishes it.
/// Job scripts requeue on it.
pub const EXIT_INTERRUPTED: u8 = ExitStatus::Interrupted as u8;

/// The exit statuses of every subcommand: a stable table (docs/errors.md)
/// that job scripts and workflow engines branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Done (also: nothing left to do).
    Success = 0,
    /// `verify` (or `convert --verify`) found differences.
    Differences = 1,
    /// A bad option, option value or recipe (as clap's own usage errors).
    Usage = 2,
    /// A source cannot be found, read or understood, or the sources do
    /// not fit together.
    Input = 3,
    /// The output store cannot be created, written or read.
    Store = 4,
    /// The store refuses the operation as asked: it exists, is not
    /// zarrforge's, is unfinished, holds another plan, or the append does
    /// not fit it.
    Refused = 5,
    /// Another run holds the store's lock.
    Locked = 6,
    /// A failure inside zarrforge or MPI (a bug to report).
    Internal = 70,
    /// Interrupted by a signal with its finished units recorded: run the
    /// same command with `--resume`.
    Interrupted = 75,
}

impl ExitStatus {
    /// Every status, in table order.
    pub const ALL: [ExitStatus; 9] = [
        Self::Success,
        Self::Differences,
        Self::Usage,
        Self::Input,
        Self::Store,
        Self::Refused,
        Self::Locked,
        Self::Internal,
        Self::Interrupted,
    ];

    /// The name used in events and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Differences => "differences",
            Self::Usage => "usage",
            Self::Input => "input",
            Self::Store => "store",
            Self::Refused => "refused",
            Self::Locked => "locked",
            Self::Internal => "internal",
            Self::Interrupted => "interrupted",
        }
    }

    /// The status of a numeric code (codes not in the table are internal).
    pub fn from_code(code: u8) -> Self {
        Self::ALL
            .into_iter()
            .find(|s| *s as u8 == code)
            .unwrap_or(Self::Internal)
    }
}

impl ConfigError {
    /// The exit status of this error.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            ConfigError::Locked { .. } | ConfigError::BranchMoved { .. } => ExitStatus::Locked,
            ConfigError::OutputExists(_)
            | ConfigError::NotOurStore(_)
            | ConfigError::PlanChanged { .. }
            | ConfigError::Unfinished(_)
            | ConfigError::Interrupted(_)
            | ConfigError::OtherBranch { .. }
            | ConfigError::TagExists { .. }
            | ConfigError::IsIcechunk(_) => ExitStatus::Refused,
            ConfigError::Output { .. } => ExitStatus::Store,
            ConfigError::NoMatch(_) | ConfigError::Glob { .. } | ConfigError::FileList { .. } => {
                ExitStatus::Input
            }
            _ => ExitStatus::Usage,
        }
    }
}

impl WriteError {
    /// The exit status of this error.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            WriteError::Interrupted(_) => ExitStatus::Interrupted,
            WriteError::Read(_) => ExitStatus::Input,
            // A malformed `-o` URL: the command line, not the store.
            WriteError::Remote { what, .. } if *what == crate::store::storage::PARSE_URL => {
                ExitStatus::Usage
            }
            WriteError::Io { .. }
            | WriteError::NoSpace { .. }
            | WriteError::Remote { .. }
            | WriteError::Link(_) => ExitStatus::Store,
            _ => ExitStatus::Internal,
        }
    }
}

impl Error {
    /// The exit status of this error, the same on every rank for a
    /// collective failure: the first failing rank's that is not an
    /// interruption, else [`ExitStatus::Interrupted`].
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Config(e) => e.exit_status(),
            Error::Schema(_) | Error::Combine(_) | Error::Read(_) | Error::Virtual(_) => {
                ExitStatus::Input
            }
            Error::Quantize(crate::pipeline::quantize::QuantizeError::Store { .. }) => {
                ExitStatus::Refused
            }
            Error::Quantize(_) => ExitStatus::Usage,
            Error::Append(_) => ExitStatus::Refused,
            Error::Write(e) => e.exit_status(),
            Error::Ranks(list) => list
                .iter()
                .map(|f| ExitStatus::from_code(f.failure.status))
                .find(|s| *s != ExitStatus::Interrupted)
                .unwrap_or(if list.is_empty() {
                    ExitStatus::Internal
                } else {
                    ExitStatus::Interrupted
                }),
            Error::Verify(_) => ExitStatus::Differences,
            Error::Verifying(e) => match e {
                VerifyError::Netcdf { .. } => ExitStatus::Input,
                VerifyError::NotAStore(_) | VerifyError::Io { .. } | VerifyError::Store { .. } => {
                    ExitStatus::Store
                }
                VerifyError::Exchange(_) | VerifyError::Panic(_) => ExitStatus::Internal,
            },
            Error::Panic(_) | Error::Mpi(_) => ExitStatus::Internal,
        }
    }

    /// Whether this error is an interruption by a signal on every failing
    /// rank (a run to resume, not a failure to fix).
    pub fn is_interrupted(&self) -> bool {
        self.exit_status() == ExitStatus::Interrupted
    }

    /// Whether the same command with `--resume` can finish the run: it was
    /// interrupted, or it stopped on a full disk or a failed upload with its
    /// finished units recorded.
    pub fn is_resumable(&self) -> bool {
        match self {
            Error::Write(WriteError::Interrupted(_) | WriteError::NoSpace { .. }) => true,
            // Uploads that failed after their retries; not a bad URL or
            // credentials.
            Error::Write(WriteError::Remote { what, .. }) => *what == "upload",
            Error::Ranks(list) => !list.is_empty() && list.iter().all(|f| f.failure.resumable),
            _ => false,
        }
    }
}

impl RankError for Error {
    fn failure(&self) -> Failure {
        Failure {
            status: self.exit_status() as u8,
            resumable: self.is_resumable(),
            message: chain(self),
        }
    }

    fn from_ranks(failures: Vec<RankFailure>) -> Self {
        Error::Ranks(failures)
    }
}

impl From<MpiError> for Error {
    fn from(e: MpiError) -> Self {
        Error::Mpi(e.0)
    }
}

/// One line: the error and every source in its chain, separated by ": ".
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out.replace('\n', " ")
}

// ---------------------------------------------------------------------------
// verify: reading both sides independently of the converter
// ---------------------------------------------------------------------------

/// Errors of `verify` reading the store or the sources. Differences are not
/// errors: they go into the report.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The path has no root Zarr metadata document.
    #[error("{0}: not a Zarr store (no zarr.json, .zgroup or .zarray at its root)")]
    NotAStore(PathBuf),
    /// A file or directory of the store could not be read.
    #[error("{path}: {what}: {source}")]
    Io {
        /// Path in the store.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// OS error.
        source: std::io::Error,
    },
    /// netCDF-C refused a source file or a read.
    #[error("{path}: {what}: {source}")]
    Netcdf {
        /// Source path.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// netCDF error.
        source: netcdf::Error,
    },
    /// zarrs refused a request on an array it opened.
    #[error("store array '{array}': {msg}")]
    Store {
        /// Array path.
        array: String,
        /// zarrs error text.
        msg: String,
    },
    /// Data could not be exchanged between ranks.
    #[error("verify: exchange between ranks: {0}")]
    Exchange(String),
    /// A rank panicked while verifying.
    #[error("internal error (panic) while verifying: {0}")]
    Panic(String),
}

#[cfg(test)]
mod exit_status_tests {
    use super::*;

    /// docs/errors.md's table and [`ExitStatus`] agree, row for row.
    #[test]
    fn the_documented_table_is_the_code() {
        let doc = include_str!("../docs/errors.md");
        let section = doc
            .split("## Exit statuses")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap_or_default();
        let rows: Vec<(u8, &str)> = section
            .lines()
            .filter_map(|l| {
                let mut cells = l.split('|').map(str::trim).skip(1);
                let code = cells.next()?.parse().ok()?;
                Some((code, cells.next()?))
            })
            .collect();
        let code: Vec<(u8, &str)> = ExitStatus::ALL
            .iter()
            .map(|s| (*s as u8, s.name()))
            .collect();
        assert_eq!(rows, code);
        for s in ExitStatus::ALL {
            assert_eq!(ExitStatus::from_code(s as u8), s);
        }
        assert_eq!(ExitStatus::from_code(99), ExitStatus::Internal);
    }

    #[test]
    fn several_ranks_give_the_first_status_that_is_not_an_interruption() {
        let f = |rank, status, resumable| RankFailure {
            rank,
            failure: Failure {
                status,
                resumable,
                message: String::new(),
            },
        };
        let e = Error::Ranks(vec![f(0, 75, true), f(1, 3, false), f(2, 4, false)]);
        assert_eq!(e.exit_status(), ExitStatus::Input);
        assert!(!e.is_resumable());
        let e = Error::Ranks(vec![f(0, 75, true), f(2, 75, true)]);
        assert_eq!(e.exit_status(), ExitStatus::Interrupted);
        assert!(e.is_resumable() && e.is_interrupted());
    }
}
