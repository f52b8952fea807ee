//! The `zarrforge` binary: parse, run, print the error chain once.

use std::process::ExitCode;

use clap::Parser;
use zarrforge::cli::args::{Cli, Command, RecipeCommand};
use zarrforge::commands::{bench::synth, convert, inspect};
use zarrforge::error::{chain, Error};
use zarrforge::mpi::ctx::MpiCtx;
use zarrforge::mpi::topology::Topology;
use zarrforge::pipeline::plan;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = match MpiCtx::init() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zarrforge: error: {}", chain(&e));
            return ExitCode::FAILURE;
        }
    };
    zarrforge::system::stage::install_panic_hook(ctx.rank(), ctx.size());
    zarrforge::system::stage::install_crash_handler();
    let result = run(&ctx, &cli);
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let status = if e.is_interrupted() {
                zarrforge::error::EXIT_INTERRUPTED
            } else {
                1
            };
            // Collective failures are printed once, by rank 0.
            if ctx.is_root() {
                let msg = message(&e);
                eprintln!("zarrforge: error: {msg}");
                failure_report(&cli, &msg, e.is_interrupted(), status);
            }
            ExitCode::from(status)
        }
    };
    drop(ctx);
    code
}

/// Writes the `--report` of a conversion that failed or was interrupted:
/// its status, exit status and message. A launcher may not pass the ranks'
/// exit status on (`mpirun` stopped by SIGTERM exits 1 while the ranks
/// exit 75); a job script reads the report instead.
fn failure_report(cli: &Cli, msg: &str, interrupted: bool, status: u8) {
    let Command::Convert(args) = &cli.command else {
        return;
    };
    let Some(path) = &args.report else { return };
    let json = serde_json::json!({
        "status": if interrupted { "interrupted" } else { "failed" },
        "exit_status": status,
        "error": msg,
    });
    if let Err(e) = std::fs::write(path, serde_json::to_vec_pretty(&json).unwrap_or_default()) {
        eprintln!(
            "zarrforge: warning: {}: cannot write the report: {e}",
            path.display()
        );
    }
}

/// Prints warnings, the first few in full (many files can repeat one).
fn print_warnings(warnings: &[String]) {
    const SHOWN: usize = 20;
    for w in warnings.iter().take(SHOWN) {
        eprintln!("zarrforge: warning: {w}");
    }
    if warnings.len() > SHOWN {
        eprintln!(
            "zarrforge: warning: ... and {} more (all in the --report JSON)",
            warnings.len() - SHOWN
        );
    }
}

/// The error as one line; identical messages from several ranks are merged.
fn message(e: &Error) -> String {
    match e {
        Error::Ranks(list) => {
            let mut merged: Vec<(Vec<i32>, &str)> = Vec::new();
            for f in list {
                match merged.iter_mut().find(|(_, x)| *x == f.message.as_str()) {
                    Some((ranks, _)) => ranks.push(f.rank),
                    None => merged.push((vec![f.rank], f.message.as_str())),
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

#[allow(clippy::too_many_lines)] // one arm per subcommand
fn run(ctx: &MpiCtx, cli: &Cli) -> Result<(), Error> {
    match &cli.command {
        Command::Convert(args) => {
            let cfg = args.to_config()?;
            let topo = Topology::detect();
            let report = convert::convert(ctx, &cfg, &topo)?;
            if ctx.is_root() {
                for s in &report.skipped {
                    eprintln!("zarrforge: warning: skipped unsupported variable {s}");
                }
                print_warnings(&report.warnings);
                if let Some(path) = &args.report {
                    let mut value = serde_json::to_value(&report).unwrap_or_default();
                    if let Some(m) = value.as_object_mut() {
                        m.insert("status".into(), "complete".into());
                        m.insert("exit_status".into(), 0.into());
                    }
                    let json = serde_json::to_vec_pretty(&value).unwrap_or_default();
                    std::fs::write(path, json).map_err(|e| {
                        zarrforge::store::error::WriteError::io(path, "write report", e)
                    })?;
                }
                eprintln!("{}", report.summary());
            }
            if cfg.verify {
                let v = zarrforge::commands::verify::verify(ctx, &cfg)?;
                return finish_verify(ctx, &v, None);
            }
            Ok(())
        }
        Command::Inspect(args) => {
            if !ctx.is_root() {
                return Ok(());
            }
            let mut s = zarrforge::pipeline::scan::structure::read_schema(&args.input, true)?;
            inspect::add_filters(&mut s);
            if args.json {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            } else {
                print!("{}", inspect::describe(&s));
            }
            Ok(())
        }
        Command::Generate(a) => {
            if ctx.is_root() {
                if a.output.exists() {
                    return Err(
                        zarrforge::cli::error::ConfigError::OutputExists(a.output.clone()).into(),
                    );
                }
                let spec = synth::SynthSpec {
                    time: a.time,
                    lat: a.lat,
                    lon: a.lon,
                    t0: a.t0,
                    deflate: a.deflate,
                };
                synth::write(&a.output, &spec)?;
            }
            Ok(())
        }
        Command::Bench(args) => {
            let topo = Topology::detect();
            let (inputs, generate_s) = if args.inputs.is_empty() {
                let spec = zarrforge::commands::bench::BenchSpec {
                    files: args.files.max(1),
                    time: args.time.max(1),
                    lat: args.lat.max(1),
                    lon: args.lon.max(1),
                    dir: args.dir.clone(),
                    reuse: args.reuse,
                };
                zarrforge::commands::bench::generate(ctx, &spec)?
            } else {
                (args.inputs.clone(), 0.0)
            };
            if args.generate_only {
                if ctx.is_root() {
                    eprintln!(
                        "zarrforge bench: {} input file(s) in {} ({generate_s:.2} s)",
                        inputs.len(),
                        args.dir.join("inputs").display()
                    );
                }
                return Ok(());
            }
            let cfg = args.to_config(inputs)?;
            let report = zarrforge::commands::bench::run(ctx, &cfg, &topo, generate_s)?;
            if ctx.is_root() {
                let json = serde_json::to_string_pretty(&report).unwrap_or_default();
                if let Some(path) = &args.report {
                    std::fs::write(path, &json).map_err(|e| {
                        zarrforge::store::error::WriteError::io(path, "write report", e)
                    })?;
                }
                if args.json {
                    println!("{json}");
                } else {
                    print!("{}", report.table());
                }
            }
            Ok(())
        }
        Command::Verify(args) => {
            let cfg = args.to_config()?;
            let report = zarrforge::commands::verify::verify(ctx, &cfg)?;
            finish_verify(ctx, &report, args.report.as_deref())
        }
        Command::Recipe(RecipeCommand::Check(a)) => {
            let recipe = zarrforge::cli::recipe::Recipe::load(&a.recipe)?;
            let mut cfg = zarrforge::cli::config::ConvertConfig::new(
                Vec::new(),
                std::path::PathBuf::default(),
            );
            recipe.apply(&a.recipe, &mut cfg)?;
            cfg.validate()?;
            let job = convert::prepare_job(ctx, &cfg)?;
            let p = plan::Plan::new(&job.ds, &cfg, ctx.size())?;
            if ctx.is_root() {
                print!("{}", inspect::describe_job(&job, &p));
                println!("{}: ok", a.recipe.display());
            }
            Ok(())
        }
        Command::Plan(args) => {
            let cfg = args.to_config()?;
            let job = convert::prepare_job(ctx, &cfg)?;
            let p = plan::Plan::new(&job.ds, &cfg, args.ranks.unwrap_or(ctx.size()))?;
            // Where this launch's ranks and threads would run.
            let topo = Topology::detect();
            let threads = topo.encoder_threads(ctx.ranks_on_node());
            let topology = ctx.job_topology(&topo, threads, topo.is_bound());
            if ctx.is_root() {
                if args.json {
                    let mut v = serde_json::to_value(&p).unwrap_or_default();
                    if let Some(m) = v.as_object_mut() {
                        m.insert(
                            "topology".into(),
                            serde_json::to_value(&topology).unwrap_or_default(),
                        );
                    }
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                } else {
                    println!("topology of this launch: {}", topology.line());
                    print!("{}", inspect::describe_plan(&p, args.units));
                }
            }
            Ok(())
        }
    }
}

/// Prints a verification (rank 0) and fails when it found differences.
fn finish_verify(
    ctx: &MpiCtx,
    report: &zarrforge::commands::verify::VerifyReport,
    json: Option<&std::path::Path>,
) -> Result<(), Error> {
    if ctx.is_root() {
        println!("{}", report.text());
        if let Some(path) = json {
            let bytes = serde_json::to_vec_pretty(report).unwrap_or_default();
            std::fs::write(path, bytes)
                .map_err(|e| zarrforge::store::error::WriteError::io(path, "write report", e))?;
        }
    }
    if report.ok() {
        Ok(())
    } else {
        Err(Error::Verify(format!(
            "{} differs from its sources: {} value(s), {} metadata difference(s)",
            report.store.display(),
            report.mismatches,
            report.metadata.len()
        )))
    }
}
