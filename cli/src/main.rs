//! `quarry`: build retrieval indexes with LLM encoders and evaluate them.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "quarry",
    version,
    about = "LLMs as dense retrievers, measured honestly"
)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
