//! The names of a store's own objects: zarrforge's directory, its marker,
//! state, lock and journal, and the metadata documents that make a store
//! visible to readers. Shared by the directory and the object-storage code.

use crate::cli::config::ZarrFormat;

/// Hidden directory of zarrforge's own files inside a store.
pub const MARKER_DIR: &str = ".zarrforge";
/// The marker file that identifies a store written by zarrforge.
pub const MARKER_FILE: &str = "store.json";
/// File of the store's saved state (`state::StoreState`), inside
/// [`MARKER_DIR`].
pub const STATE_FILE: &str = "dataset.bin";
/// The file whose presence means "an `--overwrite` is deleting this
/// store", inside [`MARKER_DIR`].
pub const CLEARING_FILE: &str = "clearing";
/// Lock file inside [`MARKER_DIR`].
pub const LOCK_FILE: &str = "lock";
/// Directory of the journal inside [`MARKER_DIR`].
pub const JOURNAL_DIR: &str = "journal";

/// Metadata documents, removed first in every directory so that no reader
/// finds an array whose chunks are being deleted.
pub const METADATA_KEYS: [&str; 5] = [".zmetadata", "zarr.json", ".zgroup", ".zarray", ".zattrs"];

/// The root metadata key whose presence means "committed".
pub fn root_key(format: ZarrFormat) -> &'static str {
    match format {
        ZarrFormat::V3 => "zarr.json",
        ZarrFormat::V2 => ".zgroup",
    }
}

/// Key of a name inside [`MARKER_DIR`].
pub fn private_key(name: &str) -> String {
    format!("{MARKER_DIR}/{name}")
}
