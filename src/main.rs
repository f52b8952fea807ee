//! The `zarrforge` binary: parse, run, print the error chain once.

use std::process::ExitCode;

use clap::Parser;
use zarrforge::cli::args::{Cli, Command};
use zarrforge::error::{chain, EXIT_INTERRUPTED};
use zarrforge::mpi::ctx::MpiCtx;
use zarrforge::report::console;

fn main() -> ExitCode {
    let cli = Cli::parse();
    zarrforge::system::heap::keep_freed_buffers();
    let ctx = match MpiCtx::init() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zarrforge: error: {}", chain(&e));
            return ExitCode::FAILURE;
        }
    };
    zarrforge::system::stage::install_panic_hook(ctx.rank(), ctx.size());
    zarrforge::system::stage::install_crash_handler();
    let code = match zarrforge::commands::run(&ctx, &cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let status = if e.is_interrupted() {
                EXIT_INTERRUPTED
            } else {
                1
            };
            // Collective failures are printed once, by rank 0.
            if ctx.is_root() {
                let msg = console::message(&e);
                eprintln!("zarrforge: error: {msg}");
                if let Command::Convert(args) = &cli.command {
                    if let Some(path) = &args.report {
                        console::failure_report(path, &msg, e.is_interrupted(), status);
                    }
                }
            }
            ExitCode::from(status)
        }
    };
    drop(ctx);
    code
}
