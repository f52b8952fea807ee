//! `zarrforge convert` around the pipeline ([`convert`]): its `started`,
//! `committed` and `failed` events, what rank 0 prints and leaves behind
//! (warnings, summary, `--report`), and the verification when asked.

use std::time::Instant;

use super::{convert, Monitor};
use crate::cli::config::ConvertConfig;
use crate::commands::verify;
use crate::error::Error;
use crate::mpi::ctx::MpiCtx;
use crate::mpi::topology::Topology;
use crate::report::events::{Event, Phase};

/// `zarrforge convert`: converts, prints the warnings and the summary
/// (rank 0), writes the `--report` and the `--events`, and verifies when
/// asked.
///
/// # Errors
/// The conversion's or the verification's error.
pub fn command(ctx: &MpiCtx, args: &crate::cli::args::ConvertArgs) -> Result<(), Error> {
    let t0 = Instant::now();
    let mut monitor = Monitor::for_command(ctx, &args.progress)?;
    let cfg = args.to_config();
    let nodes = ctx.nodes();
    monitor.event(&Event::Started {
        command: "convert".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        output: cfg.as_ref().map_or_else(
            |_| {
                args.output
                    .as_ref()
                    .map(|o| o.display().to_string())
                    .unwrap_or_default()
            },
            |c| c.output.display().to_string(),
        ),
        inputs: cfg
            .as_ref()
            .map_or_else(|_| args.input.inputs.clone(), |c| c.inputs.clone()),
        ranks: ctx.size(),
        nodes,
    });
    let result = cfg
        .map_err(Error::from)
        .and_then(|cfg| run_command(ctx, args, &cfg, &mut monitor, t0));
    if let Err(e) = &result {
        monitor.finish();
        if ctx.is_root() {
            failed(&mut monitor, e, args.report.as_deref());
        }
    }
    result
}

/// Converts, reports and verifies (see [`command`]).
fn run_command(
    ctx: &MpiCtx,
    args: &crate::cli::args::ConvertArgs,
    cfg: &ConvertConfig,
    monitor: &mut Monitor,
    t0: Instant,
) -> Result<(), Error> {
    let topo = Topology::detect();
    let report = convert(ctx, cfg, &topo, monitor)?;
    if ctx.is_root() {
        for s in &report.skipped {
            crate::say!("zarrforge: warning: skipped unsupported variable {s}");
            monitor.warning(&format!("skipped unsupported variable {s}"));
        }
        crate::report::console::print_warnings(&report.warnings);
        for w in &report.warnings {
            monitor.warning(w);
        }
        if let Some(path) = &args.report {
            let mut value = serde_json::to_value(&report).unwrap_or_default();
            if let Some(m) = value.as_object_mut() {
                m.insert("status".into(), "complete".into());
                m.insert("exit_status".into(), 0.into());
            }
            crate::commands::write_report(
                path,
                &serde_json::to_vec_pretty(&value).unwrap_or_default(),
            )?;
        }
        crate::say!("{}", report.summary());
    }
    if cfg.verify {
        monitor.phase(Phase::Verify);
        // The store's way of writing NaN and infinite attributes (an
        // append may have taken it from the store).
        let mut cfg = cfg.clone();
        cfg.attrs_json = Some(report.attrs_json);
        if let Some(ic) = &mut cfg.icechunk {
            // Every rank reads the committed snapshot (not its fork).
            let snapshot = report.icechunk.as_ref().and_then(|i| i.snapshot.clone());
            let id: String = super::from_root(ctx, || Ok(snapshot.unwrap_or_default()))?;
            ic.reference = (!id.is_empty()).then_some(id);
        }
        if let Some(refs) = cfg.virtual_refs.as_ref().and_then(|v| v.kerchunk.clone()) {
            // A kerchunk output is verified through its reference file.
            cfg.output = refs;
        }
        let v = verify::verify(ctx, &cfg, monitor)?;
        monitor.finish();
        monitor.event(&verify::verified(&v));
        let text = verify::Text::beside(&args.progress);
        verify::finish(ctx, &v, None, text)?;
    }
    monitor.event(&Event::Committed {
        output: report.output.display().to_string(),
        arrays: report.arrays,
        units_written: report.units,
        units_resumed: report.units_resumed,
        bytes_read: report.bytes_read,
        bytes_written: report.bytes_written,
        seconds: (t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        snapshot: report.icechunk.as_ref().and_then(|i| i.snapshot.clone()),
    });
    Ok(())
}

/// Rank 0's account of a failed run: one event per failing rank, the
/// `failed` event, and the `--report` with the status. A launcher may not
/// pass the ranks' exit status on (`mpirun` stopped by SIGTERM exits 1
/// while the ranks exit 75); a job script reads the report or the events.
fn failed(monitor: &mut Monitor, e: &Error, report: Option<&std::path::Path>) {
    monitor.failed(e);
    if let Some(path) = report {
        let msg = crate::report::console::message(e);
        crate::report::console::failure_report(path, &msg, e.exit_status(), e.is_resumable());
    }
}
