//! Command-line flags (defined once, here) and their validation into the
//! typed configuration the commands run on. Anything wrong at this stage is
//! a usage error (exit code 2).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
pub use quarry_engine::fusion::RetrieverSpec;
use quarry_engine::metrics::{parse_metric_list, Metric};

#[derive(Debug, Parser)]
#[command(
    name = "quarry",
    version,
    about = "LLMs as dense retrievers, measured honestly"
)]
pub struct Cli {
    /// Dataset registry to use [default: datasets.toml in the current
    /// directory or the nearest parent that has one, else the one of the
    /// checkout quarry was built from]
    #[arg(long, global = true, env = "QUARRY_REGISTRY", value_name = "FILE")]
    pub registry: Option<PathBuf>,

    /// Data home where indexes are kept [default: .quarry in the current directory]
    #[arg(long, global = true, env = "QUARRY_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the registry's datasets and what of them is present locally
    Datasets(DatasetsArgs),
    /// Retrieve with a retriever (or read a run file) and score it against qrels
    Eval(EvalArgs),
    /// Inspect, verify and query dense embedding indexes
    Index(crate::index_cmd::IndexArgs),
    /// Interactive search shell over a dataset (reads queries line by line from a pipe)
    Search(crate::search::SearchArgs),
    /// Encode a dataset's corpus and queries once into a dense index (resumable, idempotent)
    Build(crate::build::BuildArgs),
    /// Score several retrievers on several datasets: one table (md, csv, json) or an SVG chart
    Compare(crate::compare::CompareArgs),
    /// Mine hard negatives for a train split: Tevatron JSONL training groups for `quarry train`
    Mine(crate::mine::MineArgs),
    /// LoRA-fine-tune a Qwen2 encoder contrastively (RepLLaMA recipe) into a PEFT adapter
    Train(Box<crate::train::TrainArgs>),
    /// Measure GPU encoding throughput (fixed shapes and real documents)
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Args)]
pub struct DatasetsArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["retriever", "run"])))]
pub struct EvalArgs {
    /// Registry name, or a path to any BEIR folder
    #[arg(long, value_name = "NAME|DIR")]
    pub dataset: String,

    /// Retriever to run: bm25 (Lucene-exact, as Pyserini), dense:NAME,
    /// hybrid:rrf(A,B), hybrid:rrf(k=60,A,B) or hybrid:interp(ALPHA,A,B)
    #[arg(long, value_name = "SPEC", value_parser = parse_retriever)]
    pub retriever: Option<RetrieverSpec>,

    /// Score this TREC run file instead of retrieving
    #[arg(long, value_name = "FILE", conflicts_with_all = ["retriever", "k", "run_out"])]
    pub run: Option<PathBuf>,

    /// Qrels split [default: the dataset's, `test` for a bare folder]
    #[arg(long)]
    pub split: Option<String>,

    /// Comma-separated metrics: ndcg@K, mrr@K, recall@K, p@K, map
    #[arg(long, default_value = "ndcg@10,mrr@10,recall@100,recall@1000,map")]
    pub metrics: String,

    /// Write the retrieved run to this TREC run file
    #[arg(long, value_name = "FILE")]
    pub run_out: Option<PathBuf>,

    /// Hits to retrieve per query [default: 1000]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub k: Option<u32>,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// `--retriever` values (see [`RetrieverSpec::parse`]).
pub fn parse_retriever(spec: &str) -> Result<RetrieverSpec, String> {
    RetrieverSpec::parse(spec).map_err(|e| e.to_string())
}

/// One `--retrievers` value: retriever specs separated by commas outside
/// parentheses (see [`RetrieverSpec::parse_list`]).
#[derive(Debug, Clone)]
pub struct RetrieverList(pub Vec<RetrieverSpec>);

/// `--retrievers` values.
pub fn parse_retriever_list(list: &str) -> Result<RetrieverList, String> {
    RetrieverSpec::parse_list(list)
        .map(RetrieverList)
        .map_err(|e| e.to_string())
}

/// A usage mistake found after parsing (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Where the run to score comes from.
#[derive(Debug, Clone)]
pub enum RunSource {
    Retriever {
        kind: RetrieverSpec,
        k: usize,
        run_out: Option<PathBuf>,
    },
    RunFile(PathBuf),
}

/// `quarry eval`, validated.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    pub dataset: String,
    pub source: RunSource,
    pub split: Option<String>,
    pub metrics: Vec<Metric>,
    pub json: bool,
}

pub const DEFAULT_K: usize = 1000;

impl EvalArgs {
    pub fn validate(self) -> Result<EvalConfig, UsageError> {
        let metrics = parse_metric_list(&self.metrics).map_err(|e| UsageError(e.to_string()))?;
        let source = match (self.retriever, self.run) {
            (Some(kind), None) => {
                let k = self.k.map_or(DEFAULT_K, |k| k as usize);
                if let Some(metric) = metrics.iter().find(|m| m.depth().is_some_and(|d| d > k)) {
                    return Err(UsageError(format!(
                        "{metric} looks deeper than the {k} hits retrieved (--k {k}); raise --k or drop the metric"
                    )));
                }
                RunSource::Retriever {
                    kind,
                    k,
                    run_out: self.run_out,
                }
            }
            (None, Some(path)) => RunSource::RunFile(path),
            // clap's "source" group makes these unreachable; say so plainly anyway.
            _ => {
                return Err(UsageError(
                    "give exactly one of --retriever or --run".into(),
                ))
            }
        };
        if let Some(split) = &self.split {
            if split.is_empty() || split.contains(['/', '\\']) {
                return Err(UsageError(format!("--split `{split}` is not a split name")));
            }
        }
        Ok(EvalConfig {
            dataset: self.dataset,
            source,
            split: self.split,
            metrics,
            json: self.json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("quarry").chain(args.iter().copied()))
    }

    fn eval_args(args: &[&str]) -> EvalArgs {
        match parse(args).unwrap().command {
            Command::Eval(args) => args,
            other => panic!("{other:?}"),
        }
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
    fn bad_metrics_and_too_shallow_k_are_usage_errors() {
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
        ])
        .validate()
        .unwrap_err();
        assert!(err.0.contains("recall@1000"), "{err}");
    }
}
