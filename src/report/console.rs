//! What rank 0 prints and leaves behind for the user: warnings, the error
//! as one line (identical messages of several ranks merged), and the
//! `--report` of a conversion that failed or was interrupted.

use std::path::Path;

use crate::error::{chain, Error, ExitStatus};

/// Prints warnings, the first few in full (many files can repeat one).
pub fn print_warnings(warnings: &[String]) {
    const SHOWN: usize = 20;
    for w in warnings.iter().take(SHOWN) {
        crate::say!("zarrforge: warning: {w}");
    }
    if warnings.len() > SHOWN {
        crate::say!(
            "zarrforge: warning: ... and {} more (all in the --report JSON)",
            warnings.len() - SHOWN
        );
    }
}

/// The error as one line; identical messages from several ranks are merged.
pub fn message(e: &Error) -> String {
    match e {
        Error::Ranks(list) => {
            let mut merged: Vec<(Vec<i32>, &str)> = Vec::new();
            for f in list {
                match merged
                    .iter_mut()
                    .find(|(_, x)| *x == f.failure.message.as_str())
                {
                    Some((ranks, _)) => ranks.push(f.rank),
                    None => merged.push((vec![f.rank], f.failure.message.as_str())),
                }
            }
            merged
                .iter()
                .map(|(ranks, m)| {
                    let rs: Vec<String> = ranks.iter().map(i32::to_string).collect();
                    let label = if ranks.len() == 1 { "rank" } else { "ranks" };
                    format!("[{label} {}] {m}", rs.join(","))
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
        other => format!("[rank 0] {}", chain(other)),
    }
}

/// Writes the `--report` (at `path`) of a conversion that failed or was
/// interrupted: its status, exit status and message. A launcher may not
/// pass the ranks' exit status on (`mpirun` stopped by SIGTERM exits 1
/// while the ranks exit 75); a job script reads the report instead.
pub fn failure_report(path: &Path, msg: &str, status: ExitStatus, resumable: bool) {
    let json = serde_json::json!({
        "status": if status == ExitStatus::Interrupted { "interrupted" } else { "failed" },
        "exit_status": status as u8,
        "resumable": resumable,
        "error": msg,
    });
    if let Err(e) = std::fs::write(path, serde_json::to_vec_pretty(&json).unwrap_or_default()) {
        crate::say!(
            "zarrforge: warning: {}: cannot write the report: {e}",
            path.display()
        );
    }
}
