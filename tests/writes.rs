//! How chunks reach the disk: writer threads, `O_DIRECT` for large chunks
//! (`ZARRFORGE_WRITES=auto`, the default), every chunk direct, or every chunk
//! through the page cache. The stores must be the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;

/// Every file of the store but zarrforge's own records, by relative path.
fn store_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    snapshot(root)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".zarrforge"))
        .collect()
}

#[test]
fn direct_and_buffered_writes_give_the_same_store() {
    let dir = tmp();
    let src = dir.path().join("gen.nc");
    let g = zarrforge(
        None,
        &[
            "generate",
            "--time",
            "8",
            "--lat",
            "181",
            "--lon",
            "360",
            s(&src),
        ],
        MINUTE,
    );
    assert!(g.ok(), "{}", g.stderr);
    let mut stores = Vec::new();
    // Uncompressed 4-step units are 1 MiB (direct under auto), the time
    // coordinate's chunk a few bytes (buffered under auto).
    for (mode, ranks) in [("buffered", None), ("direct", Some(2)), ("auto", Some(3))] {
        let out = dir.path().join(format!("{mode}.zarr"));
        let r = zarrforge_env(
            ranks,
            &[
                "convert",
                "--quiet",
                "--codec",
                "none",
                "--chunks",
                "time=4,lat=181,lon=360",
                "--verify",
                "-o",
                s(&out),
                s(&src),
            ],
            MINUTE,
            &[("ZARRFORGE_WRITES", mode)],
        );
        assert!(r.ok(), "{mode}: {}", r.stderr);
        assert!(r.stdout.contains("identical"), "{mode}: {}", r.stdout);
        let files = store_files(&out);
        assert!(
            files.values().any(|b| b.len() >= 256 << 10),
            "{mode}: no chunk large enough for a direct write"
        );
        assert!(
            !files.keys().any(|k| k.to_string_lossy().contains(".tmp")),
            "{mode}: temporary files left: {:?}",
            files.keys().collect::<Vec<_>>()
        );
        stores.push((mode, files));
    }
    let (first, want) = &stores[0];
    for (mode, got) in &stores[1..] {
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{mode} vs {first}"
        );
        for (k, v) in want {
            assert!(got[k] == *v, "{}: {mode} differs from {first}", k.display());
        }
    }
}
