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

/// Chunks along the concatenation dimension per Icechunk manifest: a
/// reader of one stretch of a long series loads the references of that
/// stretch only.
pub const ICECHUNK_SPLIT_CHUNKS: u32 = 512;
/// Most chunk references Icechunk takes in one commit.
pub const ICECHUNK_MAX_REFS: u64 = 50_000_000;

/// An Icechunk commit of `plan`: its chunk references and manifests (one
/// per array, or per [`ICECHUNK_SPLIT_CHUNKS`] chunks along `split_dim` for
/// arrays that have it; `dims` gives each array's dimension names). Pure.
pub fn icechunk_counts(
    arrays: &[(Vec<String>, Vec<u64>, Vec<u64>)],
    split_dim: Option<&str>,
) -> (u64, u64) {
    let mut refs = 0u64;
    let mut manifests = 0u64;
    for (dims, shape, unit) in arrays {
        let grid: Vec<u64> = shape
            .iter()
            .zip(unit)
            .map(|(s, u)| s.div_ceil((*u).max(1)))
            .collect();
        refs = refs.saturating_add(grid.iter().product::<u64>());
        let along = split_dim
            .and_then(|d| dims.iter().position(|x| x == d))
            .and_then(|k| grid.get(k).copied());
        manifests += along.map_or(1, |n| n.div_ceil(u64::from(ICECHUNK_SPLIT_CHUNKS)).max(1));
    }
    (refs, manifests)
}

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

#[cfg(test)]
mod icechunk_tests {
    use super::*;

    #[test]
    fn icechunk_counts_split_manifests_along_the_series_only() {
        let d = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        let arrays = vec![
            // 2000 steps in chunks of 1: 2000 x 2 x 2 chunks, 4 manifests.
            (
                d(&["time", "lat", "lon"]),
                vec![2000, 10, 10],
                vec![1, 5, 5],
            ),
            // A coordinate without the series dimension: one manifest.
            (d(&["lat"]), vec![10], vec![10]),
        ];
        assert_eq!(icechunk_counts(&arrays, Some("time")), (8001, 5));
        assert_eq!(icechunk_counts(&arrays, None), (8001, 2));
    }
}
