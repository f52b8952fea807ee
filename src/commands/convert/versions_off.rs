//! `convert --icechunk` in a build without the `icechunk` feature: the
//! option is refused; directory and S3 stores go on as ever.

use crate::error::Error;
use crate::mpi::ctx::MpiCtx;

/// What a merge would report.
#[derive(Debug, Clone, Default)]
pub(super) struct MergeFigures;

fn refused() -> Error {
    crate::cli::error::ConfigError::Conflict(
        "--icechunk: this zarrforge was built without the `icechunk` feature".into(),
    )
    .into()
}

/// Refuses `--icechunk`.
pub(super) fn register(cfg: &crate::cli::config::ConvertConfig) -> Result<bool, Error> {
    if cfg.icechunk.is_some() {
        return Err(refused());
    }
    Ok(false)
}

/// Never called: [`register`] refused.
pub(super) fn fork(
    _: &MpiCtx,
    _: &std::path::Path,
    _: bool,
    _: impl FnOnce() -> Result<(Vec<(String, Vec<u8>)>, Vec<u8>), Error>,
) -> Result<(), Error> {
    Err(refused())
}

/// Never called: [`register`] refused.
pub(super) fn merge(_: &MpiCtx, _: &std::path::Path) -> Result<MergeFigures, Error> {
    Err(refused())
}

/// Never called: [`register`] refused.
pub(super) fn commit(
    _: &crate::cli::config::ConvertConfig,
    _: &[std::path::PathBuf],
    _: &str,
    _: &MergeFigures,
) -> Result<crate::report::summary::IcechunkReport, Error> {
    Err(refused())
}

/// The directory or S3 store's lock.
pub(super) fn lock_existing(
    cfg: &crate::cli::config::ConvertConfig,
) -> Result<Option<crate::store::lock::Lock>, Error> {
    Ok(crate::store::opening::lock_existing(cfg)?)
}

/// Opens the directory or S3 store.
pub(super) fn open_store(
    cfg: &crate::cli::config::ConvertConfig,
    req: crate::store::opening::Request,
    inputs: &[std::path::PathBuf],
    print: &crate::store::journal::PlanPrint,
    format: crate::cli::config::ZarrFormat,
    _: Option<&str>,
    held: Option<crate::store::lock::Lock>,
) -> Result<
    (
        Option<crate::store::lock::Lock>,
        crate::store::opening::Opened,
    ),
    Error,
> {
    Ok(crate::store::opening::open_store(
        cfg, req, inputs, print, format, held,
    )?)
}
