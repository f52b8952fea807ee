//! The `zarrforge` binary: parse, run, print the error chain once.

use std::process::ExitCode;

use clap::Parser;
use zarrforge::cli::args::Cli;
use zarrforge::error::{chain, ExitStatus};
use zarrforge::mpi::ctx::MpiCtx;
use zarrforge::report::console;

fn main() -> ExitCode {
    let cli = Cli::parse();
    zarrforge::system::heap::keep_freed_buffers();
    let ctx = match MpiCtx::init() {
        Ok(c) => c,
        Err(e) => {
            zarrforge::say!("zarrforge: error: {}", chain(&e));
            return ExitCode::from(ExitStatus::Internal as u8);
        }
    };
    zarrforge::system::stage::install_panic_hook(ctx.rank(), ctx.size());
    zarrforge::system::stage::install_crash_handler();
    let code = match zarrforge::commands::run(&ctx, &cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let status = e.exit_status() as u8;
            // Collective failures are printed once, by rank 0.
            if ctx.is_root() {
                zarrforge::say!("zarrforge: error: {}", console::message(&e));
            }
            ExitCode::from(status)
        }
    };
    drop(ctx);
    code
}
