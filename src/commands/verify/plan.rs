//! What to compare: the expectation of the store from the scans and the
//! options, with every array to compare opened through a Zarr reader, and
//! what cannot be opened listed as a difference.

use std::path::Path;

use zarrs::array::Array;
use zarrs::storage::ReadableStorageTraits;

use super::shares::Options;
use super::source::{FileScan, NcType, Raw};
use super::{expect, members, store, values};
use crate::error::Error;

pub(super) type Prepared = (
    expect::Expected,
    Vec<Array<dyn ReadableStorageTraits>>,
    Vec<String>,
);

/// The expectation, with every array to compare opened (on every rank,
/// identically).
pub(super) fn prepare(
    store: &Path,
    scans: &[FileScan],
    tree: &store::StoreTree,
    opts: &Options,
) -> Result<Prepared, Error> {
    let storage = store::storage(store)?;
    // The store's coordinate along the concatenation dimension.
    let coord: Option<Vec<f64>> = expect::concat_dim(scans, opts).and_then(|d| {
        let path = expect::store_path(opts, &d);
        let a = tree.array(&path)?;
        if a.shape.len() != 1 {
            return None;
        }
        let t = [NcType::F64, NcType::F32, NcType::I64, NcType::I32]
            .into_iter()
            .chain([NcType::I16, NcType::I8, NcType::U64, NcType::U32])
            .chain([NcType::U16, NcType::U8])
            .find(|&t| a.holds(tree.format, t))?;
        let arr = a.open(&storage, tree.format, t).ok()?;
        match store::retrieve(&arr, &[0], &a.shape).ok()? {
            Raw::Fixed(b) => Some(
                (0..b.len() / t.size())
                    .map(|i| values::as_f64(t, &b, i))
                    .collect(),
            ),
            Raw::Strings(_) => None,
        }
    });
    // The new dimension's members, placed by the store's coordinate of it.
    let members = opts.new_dim.as_ref().map(|spec| {
        let labels = members::retrieve_labels(tree, &storage, &spec.name);
        members::Members::new(spec, opts, scans, tree, labels)
    });
    let mut expected = expect::expect(scans, tree, coord.as_deref(), members.as_ref(), opts);
    let mut diffs = std::mem::take(&mut expected.diffs);
    let mut arrays = Vec::new();
    let mut jobs = Vec::new();
    for job in std::mem::take(&mut expected.jobs) {
        let Some(a) = tree.array(&job.path) else {
            continue;
        };
        match a.open(&storage, tree.format, job.dtype) {
            Ok(arr) => {
                arrays.push(arr);
                jobs.push(job);
            }
            Err(e) => diffs.push(format!("'{}': a Zarr reader cannot open it: {e}", job.path)),
        }
    }
    expected.jobs = jobs;
    Ok((expected, arrays, diffs))
}
