//! What each store array is made of, as the verification expects it
//! (plain data): the options, the files' pieces of an array's values, the
//! arrays to compare, and a stacked array's cells that no file holds.

use super::backfill::{Generations, Steps};
use super::rounding::Round;
use super::source::{NcAttr, NcType};
use super::values::{Cf, TimeMap};

/// What the options say about the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Dimension the files were concatenated along (source name).
    pub(crate) concat_dim: Option<String>,
    /// Time units the store's coordinate must have.
    pub(crate) time_units: Option<String>,
    /// Renames of variables and dimensions (source name → store name).
    pub(crate) rename: Vec<(String, String)>,
    /// Variables kept (empty: all).
    pub(crate) include: Vec<String>,
    /// Variables left out.
    pub(crate) exclude: Vec<String>,
    /// Attribute edits of variables.
    pub(crate) var_edits: Vec<VarEdit>,
    /// Global attributes set.
    pub(crate) global_set: Vec<(String, NcAttr)>,
    /// Global attributes removed.
    pub(crate) global_remove: Vec<String>,
    /// The sources are only part of the store (an append): records of other
    /// files are not differences, and only the attributes that decide how
    /// values decode are compared.
    pub(crate) partial: bool,
    /// The store was written with `--attrs-json strict`: every document is
    /// strict JSON, and NaN and the infinities of float attributes are the
    /// strings `"NaN"`, `"Infinity"`, `"-Infinity"`.
    pub(crate) strict: bool,
    /// The new outermost dimension made from the files (`--new-dim`).
    pub(crate) new_dim: Option<crate::cli::config::NewDim>,
    /// Cells of the files' grid that no file holds are expected to read as
    /// the fill value (`--allow-missing`).
    pub(crate) allow_missing: bool,
    /// The run (old files or a `--backfill`) each file belongs to.
    pub(crate) backfill: Generations,
}

/// Attribute edits of one variable (a recipe's `[variables.NAME]`).
#[derive(Debug, Clone, Default)]
pub(crate) struct VarEdit {
    /// Source variable path.
    pub(crate) var: String,
    /// Attributes set (added or replaced).
    pub(crate) set: Vec<(String, NcAttr)>,
    /// Attributes removed.
    pub(crate) remove: Vec<String>,
}

/// One file's share of a store array.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Piece {
    /// The file (index into the scans).
    pub(crate) file: usize,
    /// The source variable path.
    pub(crate) var: String,
    /// Store index of its first record along the concatenation axis.
    pub(crate) at: u64,
    /// Its records along the axis (unused without an axis).
    pub(crate) len: u64,
    /// The first of them in the file (not 0: the file's earlier records
    /// are superseded by a later backfill's).
    pub(crate) from: u64,
    /// Time values in other units than the store's.
    pub(crate) time: Option<TimeMap>,
    /// Its index along the new dimension (stacked arrays only).
    pub(crate) member: Option<u64>,
}

/// A store array whose values are compared with the sources.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Job {
    /// Store path.
    pub(crate) path: String,
    /// Element type.
    pub(crate) dtype: NcType,
    /// Store shape.
    pub(crate) shape: Vec<u64>,
    /// Position of the concatenation dimension.
    pub(crate) axis: Option<usize>,
    /// Where the values come from (one piece without an axis).
    pub(crate) pieces: Vec<Piece>,
    /// How readers decode the source's values.
    pub(crate) src_cf: Cf,
    /// How readers decode the store's values.
    pub(crate) store_cf: Cf,
    /// A stacked array (the new dimension first): the cells no file holds.
    pub(crate) stack: Option<Stack>,
    /// An array rounded before compression: its values are the sources'
    /// rounded to the bits the store records.
    pub(crate) round: Option<Round>,
}

impl Steps for Piece {
    fn file(&self) -> usize {
        self.file
    }

    fn member(&self) -> Option<u64> {
        self.member
    }

    fn span(&self) -> (u64, u64) {
        (self.at, self.len)
    }

    fn cut(&self, at: u64, len: u64) -> Self {
        Self {
            at,
            len,
            from: self.from + (at - self.at),
            ..self.clone()
        }
    }
}

/// Cells of a stacked array that no file holds, and what they may read as.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stack {
    pub(super) gaps: Vec<Gap>,
    /// Fill values (little-endian bytes; the text of a string).
    pub(super) fills: Vec<Vec<u8>>,
}

/// A member's store indices along the axis that no file holds.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Gap {
    /// `dim=value`, for messages.
    pub(super) cell: String,
    /// Index along the new dimension.
    pub(super) member: u64,
    /// First store index along the concatenation axis.
    pub(super) at: u64,
    /// Steps (unused without an axis: the whole member).
    pub(super) len: u64,
}

impl Gap {
    pub(super) fn new(cell: String, member: u64, at: u64, len: u64) -> Self {
        Self {
            cell,
            member,
            at,
            len,
        }
    }
}
