//! `quarry`: build retrieval indexes with LLM encoders and evaluate them.

mod index_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "quarry",
    version,
    about = "LLMs as dense retrievers, measured honestly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect, verify and query dense embedding indexes.
    Index(index_cmd::IndexArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Index(args) => index_cmd::run(args),
    }
}
