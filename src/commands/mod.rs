//! The subcommands, each stringing the stages together: [`convert`] (and
//! its per-rank unit loop), [`verify`] (an independent comparison of a store
//! with its sources), [`inspect`] (structure and plan, nothing written),
//! [`bitinfo`] (the information per bit and the `--keepbits auto` bits) and
//! [`mod@bench`] (a generated dataset converted and measured).

pub mod bench;
pub mod bitinfo;
pub mod convert;
#[cfg(feature = "icechunk")]
pub mod gc;
pub mod inspect;
pub mod inspect_store;
pub mod monitor;
pub mod verify;

use crate::cli::args::{Cli, Command, RecipeCommand};
use crate::error::Error;
use crate::mpi::ctx::MpiCtx;

/// Runs the command line's subcommand on every rank.
///
/// # Errors
/// The subcommand's error (the same on every rank when it is collective).
pub fn run(ctx: &MpiCtx, cli: &Cli) -> Result<(), Error> {
    match &cli.command {
        Command::Convert(args) => convert::command(ctx, args),
        Command::Inspect(args) => inspect::command(ctx, args),
        Command::Plan(args) => inspect::plan_command(ctx, args),
        Command::Bitinfo(args) => bitinfo::command(ctx, args),
        Command::Generate(args) => bench::generate_command(ctx, args),
        Command::Bench(args) => bench::command(ctx, args),
        Command::Verify(args) => verify::command(ctx, args),
        Command::Recipe(RecipeCommand::Check(args)) => inspect::recipe_check(ctx, args),
        #[cfg(feature = "icechunk")]
        Command::Gc(args) => gc::command(ctx, args),
        #[cfg(not(feature = "icechunk"))]
        Command::Gc(_) => Err(crate::cli::error::ConfigError::Conflict(
            "gc: this zarrforge was built without the `icechunk` feature".into(),
        )
        .into()),
    }
}

/// Writes `bytes` to a report file the user asked for.
fn write_report(path: &std::path::Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes)
        .map_err(|e| crate::store::error::WriteError::io(path, "write report", e).into())
}
