//! Virtual references (`convert --virtual`): which variables of the
//! combined dataset are referenced in place and which are copied. Pure: the
//! layouts each file stores its variables with were read during the scan.
//!
//! A variable is referenced when every file that holds part of it stores it
//! the same way (layout, chunk shape, byte order, filters with their
//! parameters: the combine stage already checked the type and the packing
//! attributes), its chunks tile the concatenation (every file but the last
//! holds a whole number of chunks), and Zarr readers can undo its filters.
//! Coordinates, small variables and variables whose values are re-encoded
//! (time) are always copied. Any other variable that cannot be referenced
//! is copied under `--virtual-fallback copy` (with a warning naming it and
//! why) or refused under `refuse`, naming the first differing file and
//! property.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cli::config::Codec;
use crate::cli::config::{VirtualFallback as Fallback, VirtualOutput};
use crate::model::source_codecs::{SourceCodecs, StoredLayout};
use crate::pipeline::combine::{Dataset, Segment, SourceFile, StoredChunks, VarSource};
use crate::pipeline::plan::ArrayPlan;

/// The outcome for one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Referenced in place: chunks of `chunks` through `codecs`, stored as
    /// `layout` describes.
    Reference {
        /// The chunk shape.
        chunks: Vec<u64>,
        /// The pipeline as Zarr codecs.
        codecs: SourceCodecs,
        /// How the files store it.
        layout: StoredLayout,
    },
    /// Copied: a coordinate, small, or re-encoded (no warning).
    Copy,
    /// Copied because it cannot be referenced (`why`, naming the file).
    Fallback {
        /// Why, naming the file and the property.
        why: String,
    },
}

/// Why a variable cannot be referenced and is not copied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VirtualError {
    /// A variable cannot be referenced and `--virtual-fallback refuse`.
    #[error(
        "variable '{var}' cannot be referenced: {why} (--virtual-fallback copy copies it instead)"
    )]
    Refused {
        /// Output variable path.
        var: String,
        /// Why, naming the file and the property.
        why: String,
    },
    /// An append's files cannot be referenced the way the store's earlier
    /// files are.
    #[error("variable '{var}' is referenced in the store, but the appended files cannot be referenced the same way: {why}")]
    Append {
        /// Output variable path.
        var: String,
        /// What differs.
        why: String,
    },
    /// A kerchunk output cannot hold copied chunks of a large variable.
    #[error("variable '{var}' cannot be referenced: {why}; a kerchunk reference file cannot hold its copied values (write --icechunk, or leave the variable out with --exclude)")]
    NotInKerchunk {
        /// Output variable path.
        var: String,
        /// Why, naming the file and the property.
        why: String,
    },
}

/// The layouts each input file stores its variables with, by the file's
/// canonical path and then the variable's source path.
pub type FileLayouts = HashMap<PathBuf, HashMap<String, StoredLayout>>;

/// The decision for every variable of `ds` (in the order of its sources).
/// A kerchunk output holds references only (copies of coordinates and
/// small variables are inlined), so a fallback copy is refused there.
///
/// # Errors
/// [`VirtualError`] for the first variable that is neither referenced nor
/// copied.
pub fn decide(
    ds: &Dataset,
    layouts: &FileLayouts,
    opts: &VirtualOutput,
) -> Result<Vec<Decision>, VirtualError> {
    let (fallback, kerchunk) = (opts.fallback, opts.kerchunk.is_some());
    let names = output_names(ds);
    let mut out = Vec::with_capacity(ds.sources.len());
    for (i, src) in ds.sources.iter().enumerate() {
        let out_path = names
            .get(i)
            .cloned()
            .unwrap_or_else(|| src.var.path.clone());
        let d = match reference(ds, src, layouts, opts.copy_below) {
            Ok(Some(d)) => d,
            Ok(None) => Decision::Copy,
            Err(why) if kerchunk => return Err(VirtualError::NotInKerchunk { var: out_path, why }),
            Err(why) if fallback == Fallback::Refuse => {
                return Err(VirtualError::Refused { var: out_path, why })
            }
            Err(why) => Decision::Fallback { why },
        };
        out.push(d);
    }
    Ok(out)
}

/// The output paths of the variables, in the order of the sources.
fn output_names(ds: &Dataset) -> Vec<String> {
    ds.schema
        .root
        .all_vars()
        .iter()
        .map(|v| v.path.clone())
        .collect()
}

/// Whether `src` is always copied: a coordinate, a small variable, values
/// that are re-encoded, or a type that is read through netCDF-C.
fn always_copied(src: &VarSource, copy_below: u64) -> bool {
    let v = &src.var;
    let bytes = v
        .shape
        .iter()
        .try_fold(v.dtype.size() as u64, |a, &n| a.checked_mul(n))
        .unwrap_or(u64::MAX);
    let total = src.segments.iter().map(|s| s.len).sum::<u64>().max(1);
    let out_bytes = match src.axis {
        Some(k) => bytes / v.shape.get(k).copied().unwrap_or(1).max(1) * total,
        None => bytes,
    };
    v.is_coordinate()
        || out_bytes < copy_below
        || v.via_netcdf
        || v.shape.is_empty()
        || src.segments.iter().any(|s| s.recode.is_some())
}

/// The reference decision for one variable: `Ok(None)` when it is always
/// copied, `Err(why)` when it cannot be referenced.
fn reference(
    ds: &Dataset,
    src: &VarSource,
    layouts: &FileLayouts,
    copy_below: u64,
) -> Result<Option<Decision>, String> {
    if always_copied(src, copy_below) || src.inline.is_some() {
        return Ok(None);
    }
    if src.stack.is_some() {
        return Err(
            "it is stacked along a new dimension (--new-dim), which references do not support yet"
                .into(),
        );
    }
    let mut first: Option<(PathBuf, StoredLayout, Vec<u64>)> = None;
    for (k, seg) in src.segments.iter().enumerate() {
        let Some(file) = ds.files.get(seg.file as usize) else {
            return Err(format!("input #{} is missing", seg.file));
        };
        let (layout, chunk) = file_layout(src, seg, file, layouts)?;
        match &first {
            None => first = Some((file.path.clone(), layout.clone(), chunk.clone())),
            Some((p0, l0, c0)) => same_as_first(&file.path, &layout, &chunk, (p0, l0, c0))?,
        }
        if let Some(a) = src.axis {
            aligned(src, seg, &file.path, chunk[a], k + 1 == src.segments.len())?;
        }
    }
    let Some((_, layout, chunks)) = first else {
        return Ok(None);
    };
    let codecs = layout.codecs()?;
    Ok(Some(Decision::Reference {
        chunks,
        codecs,
        layout,
    }))
}

/// How `file` stores `src` (its part `seg`): the layout and chunk shape.
fn file_layout(
    src: &VarSource,
    seg: &Segment,
    file: &SourceFile,
    layouts: &FileLayouts,
) -> Result<(StoredLayout, Vec<u64>), String> {
    let path = file.path.display().to_string();
    let layout = layouts
        .get(&file.canonical)
        .and_then(|m| m.get(&src.var.path))
        .ok_or_else(|| format!("{path}: its storage layout was not read"))?;
    layout
        .codecs()
        .map_err(|why| format!("{path} stores it with {why}"))?;
    // The variable's shape in this file: the segment's length along the
    // concatenation axis.
    let mut shape = src.var.shape.clone();
    if let Some(n) = src.axis.and_then(|a| shape.get_mut(a)) {
        *n = seg.len;
    }
    let chunk = layout
        .chunk(&shape)
        .ok_or_else(|| format!("{path}: no chunk shape"))?;
    if chunk.len() != shape.len() || chunk.contains(&0) {
        return Err(format!(
            "{path}: chunk shape {chunk:?} does not fit shape {shape:?}"
        ));
    }
    Ok((layout.clone(), chunk))
}

/// Whether a file stores the variable as the first file does: the same
/// layout, chunk shape and codecs.
fn same_as_first(
    path: &Path,
    layout: &StoredLayout,
    chunk: &[u64],
    (p0, l0, c0): (&Path, &StoredLayout, &[u64]),
) -> Result<(), String> {
    let (path, p0) = (path.display(), p0.display());
    if l0.kind() != layout.kind() {
        return Err(format!(
            "{path} stores it {} but {p0} {}",
            layout.kind(),
            l0.kind()
        ));
    }
    if c0 != chunk {
        return Err(format!(
            "{path} has chunk shape {chunk:?} but {p0} has {c0:?}"
        ));
    }
    let (codecs, codecs0) = (layout.codecs()?, l0.codecs()?);
    if codecs0 != codecs {
        return Err(format!(
            "{path} stores it as {} but {p0} as {}",
            codecs.describe(),
            codecs0.describe()
        ));
    }
    Ok(())
}

/// Whether the chunks of a file's part `seg` tile the concatenation: it
/// starts at a chunk boundary and (but for the last file) holds whole
/// chunks of length `c`.
fn aligned(src: &VarSource, seg: &Segment, path: &Path, c: u64, last: bool) -> Result<(), String> {
    let dim = src
        .axis
        .and_then(|a| src.var.dims.get(a))
        .map_or("?", String::as_str);
    let path = path.display();
    if !last && !seg.len.is_multiple_of(c) {
        return Err(format!(
            "{path} holds {} steps along '{dim}', not a multiple of its chunk length {c}: the chunks of the following files would not line up",
            seg.len
        ));
    }
    if !seg.start.is_multiple_of(c) {
        return Err(format!(
            "{path} starts at step {} along '{dim}', not at a chunk boundary (chunk length {c})",
            seg.start
        ));
    }
    Ok(())
}

/// Gives every referenced variable of `ds` its chunks, codecs and layout
/// (read by the plan and by the writers). Returns one warning per variable
/// copied as a fallback.
pub fn apply(ds: &mut Dataset, decisions: &[Decision]) -> Vec<String> {
    let names = output_names(ds);
    let mut warnings = Vec::new();
    for (i, (src, d)) in ds.sources.iter_mut().zip(decisions).enumerate() {
        match d {
            Decision::Reference {
                chunks,
                codecs,
                layout,
            } => {
                src.stored = Some(StoredChunks {
                    chunks: chunks.clone(),
                    codec: Codec::Virtual(codecs.clone()),
                    layout: Some(layout.clone()),
                });
            }
            Decision::Copy => src.stored = None,
            Decision::Fallback { why } => {
                src.stored = None;
                let name = names.get(i).unwrap_or(&src.var.path);
                warnings.push(format!(
                    "variable '{name}' is copied, not referenced: {why}"
                ));
            }
        }
    }
    warnings
}

/// Checks that an append references every variable the store references,
/// with the same chunks and codecs (the arrays come from the store).
///
/// # Errors
/// [`VirtualError::Append`] naming the first variable that differs.
pub fn check_append(
    ds: &Dataset,
    arrays: &[ArrayPlan],
    warnings: &[String],
) -> Result<(), VirtualError> {
    for a in arrays {
        let Codec::Virtual(old) = &a.codec else {
            continue;
        };
        // An append writes nothing of a variable without the
        // concatenation dimension.
        if ds.sources.get(a.var).is_none_or(|s| s.axis.is_none()) {
            continue;
        }
        let src = ds.sources.get(a.var);
        // The dataset of an append holds the new files only.
        let file = src
            .and_then(|s| s.segments.first())
            .and_then(|seg| ds.files.get(seg.file as usize))
            .map_or_else(
                || "the appended files".to_string(),
                |f| f.path.display().to_string(),
            );
        let why = match src.and_then(|s| s.stored.as_ref()) {
            Some(st) if st.codec == a.codec && st.chunks == a.chunks => continue,
            Some(st) => format!(
                "{file} stores it as {} in chunks of {:?}, the store as {} in chunks of {:?}",
                match &st.codec {
                    Codec::Virtual(c) => c.describe(),
                    other => other.to_string(),
                },
                st.chunks,
                old.describe(),
                a.chunks
            ),
            None => {
                let named = format!("'{}'", a.path);
                warnings
                    .iter()
                    .find(|w| w.contains(&named))
                    .and_then(|w| w.split_once(": "))
                    .map_or_else(
                        || format!("{file} would have it copied"),
                        |(_, why)| why.to_string(),
                    )
            }
        };
        return Err(VirtualError::Append {
            var: a.path.clone(),
            why,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
