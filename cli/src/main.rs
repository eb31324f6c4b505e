//! `quarry`: build retrieval indexes with LLM encoders and evaluate them.
//!
//! Exit codes: 0 success, 1 error, 2 usage error (bad flags or values).

mod args;
mod bench;
mod build;
mod compare;
mod datasets;
mod eval;
mod index_cmd;
mod mine;
mod search;
mod train;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use quarry_engine::registry::Registry;
use quarry_engine::retrieve::Catalog;

use crate::args::{Cli, Command, UsageError};

/// The registry of the checkout this binary was built from: the last place
/// quarry looks, so `cargo run` works from any directory of the repository.
const BUILT_IN_REGISTRY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../datasets.toml");

/// What every command needs besides its own flags.
pub struct Session {
    pub registry: Option<Registry>,
    pub catalog: Catalog,
}

impl Session {
    fn load(cli: &Cli) -> Result<Session> {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let registry_file = Registry::discover(
            cli.registry.as_deref(),
            &cwd,
            Some(Path::new(BUILT_IN_REGISTRY)),
        )
        .context("finding the dataset registry")?;
        let registry = match registry_file {
            Some(file) => Some(Registry::load(&file).context("reading the dataset registry")?),
            None => None,
        };
        let home = cli
            .home
            .clone()
            .unwrap_or_else(|| PathBuf::from(Catalog::DEFAULT_HOME));
        Ok(Session {
            registry,
            catalog: Catalog::new(home),
        })
    }
}

fn run(cli: Cli) -> Result<()> {
    // `quarry index` works on an index directory alone: no registry or catalog.
    if let Command::Index(args) = cli.command {
        return index_cmd::run(args);
    }
    // `quarry train` reads its model and training file alone.
    if let Command::Train(args) = cli.command {
        let home = cli
            .home
            .clone()
            .unwrap_or_else(|| PathBuf::from(Catalog::DEFAULT_HOME));
        return train::run(*args, &home);
    }
    let context = Session::load(&cli)?;
    match cli.command {
        Command::Datasets(args) => datasets::run(&context, &args),
        Command::Eval(args) => eval::run(&context, args.validate()?),
        Command::Search(args) => search::run(&context, args),
        Command::Build(args) => build::run(&context, args),
        Command::Compare(args) => compare::run(&context, args),
        Command::Mine(args) => mine::run(&context, args),
        Command::Bench(args) => bench::run(&context, args),
        Command::Index(_) | Command::Train(_) => unreachable!("handled above"),
    }
}

fn main() -> ExitCode {
    // clap prints its own message and exits 2 on usage errors (0 for --help).
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`quarry datasets | head`): not an error.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<UsageError>().is_some() => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
