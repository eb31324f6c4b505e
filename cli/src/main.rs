//! `quarry`: build retrieval indexes with LLM encoders and evaluate them.
//!
//! The binary is thin: flags (clap) → a typed configuration → engine calls →
//! printing. Each command is one module; shared flags live in [`args`].
//!
//! Exit codes: 0 success, 1 error, 2 usage error (bad flags or values).

mod args;
mod bench;
mod build;
mod compare;
mod datasets;
mod encode;
mod eval;
mod index_cmd;
mod mine;
mod progress;
mod search;
mod session;
mod train;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::args::{is_broken_pipe, UsageError};
use crate::session::Session;

/// `quarry --version`: the release, the commit it was built from, the compiled-in backends.
#[cfg(feature = "cuda")]
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("QUARRY_COMMIT"),
    "; backends: cpu, cuda)"
);
#[cfg(not(feature = "cuda"))]
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("QUARRY_COMMIT"),
    "; backends: cpu)"
);

#[derive(Debug, Parser)]
#[command(
    name = "quarry",
    version = VERSION,
    about = "LLMs as dense retrievers, measured honestly",
    after_help = "Examples:
  quarry datasets                                    # what is bundled, fetched or fetchable
  quarry eval --dataset nfcorpus --retriever bm25
  quarry build --model models/all-MiniLM-L6-v2 --dataset nfcorpus
  quarry compare --datasets nfcorpus,cosqa --retrievers bm25,dense:all-minilm-l6-v2 --baseline bm25
Every command has examples in its --help (quarry eval --help)."
)]
pub struct Cli {
    /// Dataset registry to use [default: datasets.toml in the current
    /// directory or the nearest parent that has one, else the one compiled
    /// into quarry]
    #[arg(long, global = true, env = "QUARRY_REGISTRY", value_name = "FILE")]
    pub registry: Option<PathBuf>,

    /// Data home where indexes are kept, the same from any directory [default:
    /// $XDG_DATA_HOME/quarry, else ~/.local/share/quarry]
    #[arg(long, global = true, env = "QUARRY_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Data folder where `quarry datasets fetch` puts datasets (a fetched copy is
    /// preferred to the registry's own folder) [default: <home>/datasets]
    #[arg(long, global = true, env = "QUARRY_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the registry's datasets and where each stands on disk; `fetch` downloads them
    Datasets(crate::datasets::DatasetsArgs),
    /// Retrieve with a retriever (or read a run file) and score it against qrels
    Eval(crate::eval::EvalArgs),
    /// Inspect, verify and query dense embedding indexes
    Index(crate::index_cmd::IndexArgs),
    /// Interactive search shell over a dataset (reads queries line by line from a pipe)
    Search(crate::search::SearchArgs),
    /// Encode a dataset's corpus and queries once into a dense index (resumable, idempotent)
    Build(crate::build::BuildArgs),
    /// Encode any texts with a model, as queries or documents, to JSON or .npy
    Encode(crate::encode::EncodeArgs),
    /// Compare retrievers on datasets under several metrics, with paired significance tests against a baseline: a table (md, csv, json, LaTeX) or a report folder with pictures
    Compare(crate::compare::CompareArgs),
    /// Mine hard negatives for a train split: Tevatron JSONL training groups for `quarry train`
    Mine(crate::mine::MineArgs),
    /// LoRA-fine-tune a Qwen2 encoder contrastively (RepLLaMA recipe) into a PEFT adapter
    Train(Box<crate::train::TrainArgs>),
    /// Measure GPU encoding throughput (fixed shapes and real documents)
    Bench(crate::bench::BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = "Examples:
  quarry completions bash > ~/.local/share/bash-completion/completions/quarry
  quarry completions zsh > ~/.zfunc/_quarry        # with fpath+=(~/.zfunc) in ~/.zshrc
  quarry completions fish > ~/.config/fish/completions/quarry.fish")]
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

fn run(cli: Cli) -> Result<()> {
    if let Command::Completions { shell } = cli.command {
        // Into a buffer first: clap_complete panics when its writer fails (`| head`).
        let mut script = Vec::new();
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "quarry", &mut script);
        std::io::Write::write_all(&mut std::io::stdout(), &script)?;
        return Ok(());
    }
    // `quarry index` works on an index directory alone (or names one in the
    // data home): no registry.
    if let Command::Index(args) = cli.command {
        let home = cli.home.clone().unwrap_or_else(args::default_home);
        return index_cmd::run(args, &home);
    }
    // `quarry train` reads its model and training file alone.
    if let Command::Train(args) = cli.command {
        let home = cli.home.clone().unwrap_or_else(args::default_home);
        return train::run(*args, &home);
    }
    let session = Session::load(cli.registry.as_deref(), cli.home.clone(), cli.data.clone())?;
    match cli.command {
        Command::Datasets(args) => datasets::run(&session, args),
        Command::Eval(args) => eval::run(&session, args.validate()?),
        Command::Search(args) => search::run(&session, args),
        Command::Build(args) => build::run(&session, args),
        Command::Encode(args) => encode::run(&session, args),
        Command::Compare(args) => {
            let (request, output) = args.validate()?;
            compare::run(&session, request, output)
        }
        Command::Mine(args) => mine::run(&session, args),
        Command::Bench(args) => bench::run(&session, args),
        Command::Index(_) | Command::Train(_) | Command::Completions { .. } => {
            unreachable!("handled above")
        }
    }
}

/// A usage mistake found by the engine (a spec or a device this build can't run).
fn is_usage_error(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<UsageError>().is_some()
            || cause.downcast_ref::<quarry_engine::UsageError>().is_some()
            || cause
                .downcast_ref::<quarry_engine::retriever::SpecError>()
                .is_some()
            || matches!(
                cause.downcast_ref::<quarry_engine::EngineError>(),
                Some(quarry_engine::EngineError::Usage(_) | quarry_engine::EngineError::Spec(_))
            )
    })
}

fn main() -> ExitCode {
    // clap prints its own message and exits 2 on usage errors (0 for --help).
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`quarry datasets | head`): not an error.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if is_usage_error(&err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{EvalArgs, RunSource};
    use quarry_engine::retriever::RetrieverSpec;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("quarry").chain(args.iter().copied()))
    }

    fn eval_args(args: &[&str]) -> EvalArgs {
        match parse(args).unwrap().command {
            Command::Eval(args) => args,
            other => panic!("{other:?}"),
        }
    }

    /// The words of a shell line (single quotes group; a comment, redirection or pipe ends it).
    fn shell_words(line: &str) -> Vec<String> {
        let (mut words, mut word, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
        for c in line.chars() {
            match c {
                '\'' => (quoted, any) = (!quoted, true),
                '#' | '>' | '|' if !quoted => break,
                c if c.is_whitespace() && !quoted => {
                    if any {
                        words.push(std::mem::take(&mut word));
                        any = false;
                    }
                }
                c => (word.push(c), any = true).1,
            }
        }
        if any {
            words.push(word);
        }
        words
    }

    #[test]
    fn every_help_example_parses() {
        use clap::CommandFactory;
        let mut checked = 0;
        let mut pending = vec![Cli::command()];
        while let Some(mut command) = pending.pop() {
            // Lines continued with a trailing `\` are joined first.
            let help = command.render_long_help().to_string().replace("\\\n", " ");
            for line in help.lines() {
                let Some(at) = line.find("quarry ") else {
                    continue;
                };
                // Only example lines: `  quarry ...`, `  echo ... | quarry ...`, `then: quarry ...`.
                let before = line[..at].trim();
                if !(before.is_empty() || before.ends_with('|') || before == "then:") {
                    continue;
                }
                let words = shell_words(&line[at..]);
                let parsed = Cli::try_parse_from(&words);
                assert!(
                    parsed.is_ok(),
                    "`{}` does not parse: {}",
                    line.trim(),
                    parsed.unwrap_err()
                );
                checked += 1;
            }
            pending.extend(command.get_subcommands().cloned());
        }
        assert!(checked >= 25, "only {checked} examples found");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn retriever_and_run_are_exclusive_and_one_is_required() {
        assert!(parse(&["eval", "--dataset", "d"]).is_err());
        assert!(parse(&[
            "eval",
            "--dataset",
            "d",
            "--retriever",
            "bm25",
            "--run",
            "r"
        ])
        .is_err());
        assert!(parse(&["eval", "--dataset", "d", "--run", "r", "--k", "10"]).is_err());
        let config = eval_args(&["eval", "--dataset", "d", "--retriever", "bm25"])
            .validate()
            .unwrap();
        assert!(matches!(
            config.source,
            RunSource::Retriever { k: 1000, .. }
        ));
        let config = eval_args(&[
            "eval",
            "--dataset",
            "d",
            "--retriever",
            "hybrid:interp(0.4,bm25,bm25)",
        ])
        .validate()
        .unwrap();
        assert!(matches!(
            config.source,
            RunSource::Retriever {
                kind: RetrieverSpec::Hybrid { .. },
                ..
            }
        ));
        let err =
            parse(&["eval", "--dataset", "d", "--retriever", "hybrid:rrf(bm25)"]).unwrap_err();
        assert!(err.to_string().contains("rrf takes 2 retrievers"), "{err}");
    }

    #[test]
    fn bad_metrics_and_a_named_metric_deeper_than_k_are_usage_errors() {
        let err = eval_args(&[
            "eval",
            "--dataset",
            "d",
            "--run",
            "r",
            "--metrics",
            "ndcg@ten",
        ])
        .validate()
        .unwrap_err();
        assert!(err.0.contains("ndcg@ten"), "{err}");
        let err = eval_args(&[
            "eval",
            "--dataset",
            "d",
            "--retriever",
            "bm25",
            "--k",
            "100",
            "--metrics",
            "ndcg@10,recall@1000",
        ])
        .validate()
        .unwrap_err();
        assert!(err.0.contains("recall@1000"), "{err}");
        // Without --metrics the defaults deeper than --k are left out.
        let config = eval_args(&[
            "eval",
            "--dataset",
            "d",
            "--retriever",
            "bm25",
            "--k",
            "100",
        ])
        .validate()
        .unwrap();
        let names: Vec<String> = config.metrics.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["ndcg@10", "mrr@10", "recall@100", "map"]);
    }
}
