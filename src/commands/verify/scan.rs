//! The files to compare with: the sources and each backfill's files, every
//! file scanned once through netCDF-C (each rank its share) and every rank
//! given all the scans.

use std::path::PathBuf;

use super::collective::{decode, encode, from_rank0, guarded};
use super::source::{self, FileScan};
use crate::cli::config::ConvertConfig;
use crate::commands::monitor::Monitor;
use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::report::events::Phase;

/// The sources of `cfg`, then the files of each backfill, and how many
/// files each of them has (the sources first).
pub(super) fn source_files(
    cfg: &ConvertConfig,
    backfills: &[String],
) -> Result<(Vec<PathBuf>, Vec<usize>), Error> {
    let mut files = crate::pipeline::inputs::expand(&cfg.inputs, cfg.file_list.as_deref())?;
    let mut counts = vec![files.len()];
    for b in backfills {
        let more = crate::pipeline::inputs::expand(std::slice::from_ref(b), None)?;
        counts.push(more.len());
        files.extend(more);
    }
    Ok((files, counts))
}

/// Every file scanned once (each rank its share), every rank gets all.
pub(super) fn share_scans(
    ctx: &MpiCtx,
    files: &[PathBuf],
    coord_dims: &[String],
    monitor: &mut Monitor,
) -> Result<Vec<FileScan>, Error> {
    let (rank, size) = (usize::try_from(ctx.rank()).unwrap_or(0), ctx.size());
    // The files are counted when the scan is shown as a phase of its own
    // (`verify`; in `convert --verify` it is part of the verify phase).
    let counted = monitor.is_in(Phase::Scan);
    if counted {
        monitor.set_totals(files.len() as u64, 0);
    }
    let mine = guarded(|| {
        let mut out: Vec<(usize, FileScan)> = Vec::new();
        for (i, f) in files.iter().enumerate().skip(rank).step_by(size.max(1)) {
            out.push((i, source::scan(f, coord_dims)?));
            if counted {
                monitor.add(ctx, 1, 0);
            }
        }
        encode(&out)
    });
    monitor.wait_for_ranks(ctx);
    let mine = ctx.agree(mine)?;
    let gathered = ctx.gather_bytes(mine);
    from_rank0(ctx, || {
        let mut all: Vec<(usize, FileScan)> = Vec::new();
        for part in gathered.unwrap_or_default() {
            all.extend(decode::<Vec<(usize, FileScan)>>(&part)?);
        }
        all.sort_by_key(|(i, _)| *i);
        Ok(all.into_iter().map(|(_, s)| s).collect::<Vec<_>>())
    })
}
