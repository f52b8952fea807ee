//! Rank 0's commit of a store once every rank has succeeded: the lock
//! confirmed, an Icechunk snapshot or the directory/S3 store's metadata and
//! state, then the journal removed unless kept.

use super::IcechunkReport;
use crate::cli::config::ConvertConfig;
use crate::error::Error;
use crate::pipeline::plan::Plan;
use crate::store::commit;
use crate::store::journal;
use crate::store::state::StoreState;

/// On rank 0 once every rank has written: the metadata commit (in the
/// format and with the attribute encoding of `state`) with the store's new
/// state (nothing when there is nothing new), then the journal removed
/// unless kept.
pub(super) fn commit_store(
    cfg: &ConvertConfig,
    ds: &crate::pipeline::combine::Dataset,
    plan: &Plan,
    state: &StoreState,
    nothing_new: bool,
    lock: Option<&crate::store::lock::Lock>,
    versioned: impl FnOnce(()) -> Result<Option<IcechunkReport>, Error>,
) -> Result<Option<IcechunkReport>, Error> {
    // Only a --break-lock of another run can take a live run's lock: this
    // run then stops before its commit rather than commit over that run.
    if let Some(l) = lock {
        l.confirm(&cfg.output)?;
    }
    // An Icechunk repository: one snapshot of the merged forks.
    let icechunk = versioned(())?;
    if !nothing_new && icechunk.is_none() {
        let bytes = state.to_bytes(&cfg.output)?;
        commit::commit(
            &cfg.output,
            &ds.schema,
            plan,
            state.format,
            state.attrs_json,
            &bytes,
        )?;
    }
    if !cfg.keep_journal {
        journal::remove(&cfg.output)?;
    }
    Ok(icechunk)
}
