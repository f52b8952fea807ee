//! `--virtual` to a kerchunk reference file (`-o NAME.json`): the run
//! writes a staging store beside the file; rank 0 gathers the references
//! before the commit and writes the file after it. (References into an
//! Icechunk repository travel in the forks, as chunks do.)

use crate::cli::config::ConvertConfig;
use crate::error::Error;
use crate::store::storage::{self, kerchunk};

/// Rank 0, before the commit: the references of this build gathered (with
/// those of the committed store for an append). Nothing to do without a
/// kerchunk output or when the run wrote nothing.
///
/// # Errors
/// [`Error::Write`] reading the records or writing the result.
pub(super) fn consolidate(
    cfg: &ConvertConfig,
    append: bool,
    nothing_new: bool,
) -> Result<(), Error> {
    if nothing_new || kerchunk_file(cfg).is_none() {
        return Ok(());
    }
    let s = storage::open(&cfg.output)?;
    kerchunk::consolidate(s.as_ref(), append)?;
    Ok(())
}

/// Rank 0, after the commit: the reference file written from the staging
/// store (also when the run found its work done, so that a run killed
/// between its commit and the file finishes it on `--resume`). Returns the
/// number of references.
///
/// # Errors
/// [`Error::Write`] reading the store or writing the file.
pub(super) fn export(cfg: &ConvertConfig) -> Result<Option<u64>, Error> {
    let Some(out) = kerchunk_file(cfg) else {
        return Ok(None);
    };
    let s = storage::open(&cfg.output)?;
    Ok(Some(kerchunk::export(s.as_ref(), out)?))
}

/// What the run makes: the reference file of a kerchunk output, else the
/// output.
pub(super) fn product(cfg: &ConvertConfig) -> std::path::PathBuf {
    kerchunk_file(cfg).map_or_else(|| cfg.output.clone(), std::path::Path::to_path_buf)
}

fn kerchunk_file(cfg: &ConvertConfig) -> Option<&std::path::Path> {
    cfg.virtual_refs.as_ref()?.kerchunk.as_deref()
}
