//! `quarry eval`: get a run (from a retriever, or a run file), score it
//! against the split's qrels, print a table or JSON.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Args;
use quarry_engine::dataset::{read_qrels_file, Corpus, Dataset, MissingQrelsDocs, Query};
use quarry_engine::metrics::{evaluate, parse_metric_list, Evaluation, Metric};
use quarry_engine::retriever::{Retrieval, Retrievers};
use quarry_engine::run::Run;
use quarry_engine::split::queries_for_split;
use serde::Serialize;

use crate::args::{
    check_depth, check_split, parse_retriever, print_report, RetrieverSpec, UsageError, DEFAULT_K,
};
use crate::progress::Progress;
use crate::session::Session;

/// `--metrics` when not given (those deeper than `--k` left out).
const DEFAULT_METRICS: &str = "ndcg@10,mrr@10,recall@100,recall@1000,map";

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["retriever", "run"])))]
#[command(after_help = "Examples:
  quarry eval --dataset nfcorpus --retriever bm25
  quarry eval --dataset nfcorpus --retriever dense:all-minilm-l6-v2 --metrics ndcg_cut.10,map,r-prec
  quarry eval --dataset nfcorpus --retriever 'hybrid:rrf(bm25,dense:all-minilm-l6-v2)' --json
  quarry eval --dataset nfcorpus --run pyserini.trec --per-query
  quarry eval --dataset ./my-beir-folder --retriever bm25 --k 100 --qrels extra-qrels.txt")]
pub struct EvalArgs {
    /// Registry name, or a path to any BEIR folder
    #[arg(long, value_name = "NAME|DIR")]
    pub dataset: String,

    /// Retriever to run: bm25 (Lucene-exact, as Pyserini), dense:NAME,
    /// hnsw:NAME, run:PATH (a TREC run file), hybrid:rrf(A,B),
    /// hybrid:rrf(k=60,A,B) or hybrid:interp(ALPHA,A,B)
    #[arg(long, value_name = "SPEC", value_parser = parse_retriever)]
    pub retriever: Option<RetrieverSpec>,

    /// Score this TREC run file instead of retrieving
    #[arg(long, value_name = "FILE", conflicts_with_all = ["retriever", "k", "run_out"])]
    pub run: Option<PathBuf>,

    /// Qrels split [default: the dataset's, `test` for a bare folder]
    #[arg(long)]
    pub split: Option<String>,

    /// Score against this qrels file instead of the dataset's split: TREC's
    /// four columns (`qid 0 docid grade`) or BEIR's tsv, optionally .gz/.zst
    #[arg(long, value_name = "FILE", conflicts_with = "split")]
    pub qrels: Option<PathBuf>,

    /// Comma-separated metrics: ndcg@K, mrr@K, recall@K, p@K, map, map@K, success@K,
    /// r-prec, or trec_eval's names (ndcg_cut.10, P.5, Rprec, ...) [default:
    /// ndcg@10,mrr@10,recall@100,recall@1000,map, without those deeper than --k]
    #[arg(long)]
    pub metrics: Option<String>,

    /// Write the retrieved run to this TREC run file
    #[arg(long, value_name = "FILE")]
    pub run_out: Option<PathBuf>,

    /// Hits to retrieve per query [default: 1000]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub k: Option<u32>,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// Also give every query's values: as `trec_eval -q` prints them
    /// (measure, query, value; `all` for the means), or under `per_query`
    /// with --json
    #[arg(long)]
    pub per_query: bool,
}

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
    pub qrels: Option<PathBuf>,
    pub metrics: Vec<Metric>,
    pub json: bool,
    pub per_query: bool,
}

impl EvalArgs {
    pub fn validate(self) -> Result<EvalConfig, UsageError> {
        let k = self.k.map_or(DEFAULT_K, |k| k as usize);
        let metrics = match &self.metrics {
            Some(list) => parse_metric_list(list).map_err(|e| UsageError(e.to_string()))?,
            // The defaults fit the hits asked for: `--k 100` drops recall@1000
            // rather than refusing a metric the user never named.
            None => parse_metric_list(DEFAULT_METRICS)
                .expect("the default metrics parse")
                .into_iter()
                .filter(|m| self.run.is_some() || m.depth().is_none_or(|d| d <= k))
                .collect(),
        };
        let source = match (self.retriever, self.run) {
            (Some(kind), None) => {
                check_depth(&metrics, k)?;
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
            check_split(split)?;
        }
        Ok(EvalConfig {
            dataset: self.dataset,
            source,
            split: self.split,
            qrels: self.qrels,
            metrics,
            json: self.json,
            per_query: self.per_query,
        })
    }
}

/// Everything `quarry eval` reports; printed as JSON with `--json`.
#[derive(Serialize)]
struct Report {
    dataset: String,
    dataset_dir: String,
    split: String,
    source: SourceReport,
    corpus_sha256: Option<String>,
    queries_evaluated: usize,
    metrics: serde_json::Map<String, serde_json::Value>,
    /// trec_eval measure computing the same number, per metric.
    trec_eval_measures: serde_json::Map<String, serde_json::Value>,
    missing_qrels_docs: Option<MissingQrelsDocs>,
    queries_without_results: Vec<String>,
    queries_without_relevant: Vec<String>,
    queries_without_text: Vec<String>,
    run_queries_without_qrels: usize,
    warnings: Vec<String>,
    timings_s: Timings,
    /// With `--per-query`: query id → metric → value.
    #[serde(skip_serializing_if = "Option::is_none")]
    per_query:
        Option<std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum SourceReport {
    Retriever {
        retriever: String,
        k: usize,
        index_dir: String,
        index_reused: bool,
        self_hits_removed: usize,
        run_out: Option<String>,
    },
    RunFile {
        run: String,
    },
}

#[derive(Serialize, Default)]
struct Timings {
    read_data: f64,
    index: Option<f64>,
    search: Option<f64>,
    evaluate: f64,
    total: f64,
}

pub fn run(context: &Session, config: EvalConfig) -> Result<()> {
    let total_started = Instant::now();
    let dataset = Dataset::resolve(&config.dataset, Some(&context.registry))?;
    let split = match &config.qrels {
        Some(path) => path.display().to_string(),
        None => config
            .split
            .clone()
            .unwrap_or_else(|| dataset.default_split.clone()),
    };
    let mut warnings = Vec::new();

    let started = Instant::now();
    let qrels = match &config.qrels {
        Some(path) => read_qrels_file(path).context("reading the qrels file")?,
        None => dataset
            .read_qrels(&split)
            .with_context(|| format!("reading the qrels of {}", dataset.name))?,
    };
    // The corpus is needed to retrieve; for a run file it only serves the
    // missing-docs check, which is skipped when the corpus is not there.
    let mut corpus: Option<Corpus> = match (&config.source, dataset.find_corpus()) {
        (RunSource::Retriever { .. }, _) | (RunSource::RunFile(_), Some(_)) => Some(
            dataset
                .read_corpus()
                .with_context(|| format!("reading the corpus of {}", dataset.name))?,
        ),
        (RunSource::RunFile(_), None) => {
            warnings.push(format!(
                "{} has no corpus here: qrels doc ids were not checked against it",
                dataset.name
            ));
            None
        }
    };
    let missing = corpus.as_ref().map(|c| qrels.missing_docs(&c.doc_ids()));
    let corpus_sha256 = corpus.as_ref().map(|c| c.sha256.clone());
    if let Some(missing) = missing.as_ref().filter(|m| m.judgments > 0) {
        warnings.push(format!(
            "{} qrels judgments name {} doc ids missing from the corpus (e.g. {}); they still count as relevant",
            missing.judgments,
            missing.distinct_docs,
            missing.examples.join(", ")
        ));
    }
    let mut queries_without_text = Vec::new();
    let queries: Vec<Query> = match &config.source {
        RunSource::Retriever { .. } => dataset
            .read_queries()
            .with_context(|| format!("reading the queries of {}", dataset.name))?,
        RunSource::RunFile(_) => Vec::new(),
    };
    let read_time = started.elapsed();

    let mut timings = Timings {
        read_data: read_time.as_secs_f64(),
        ..Timings::default()
    };
    let (run, source) = match &config.source {
        RunSource::Retriever { kind, k, run_out } => {
            let (selected, without_text) = queries_for_split(&queries, &qrels);
            if !without_text.is_empty() {
                warnings.push(format!(
                    "{} qrels queries have no text in the queries file and score 0 (e.g. {})",
                    without_text.len(),
                    without_text
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            queries_without_text = without_text;
            let corpus = corpus.take().expect("read above for retrievers");
            let retrieved = retrieve(context, &dataset, corpus, &selected, kind, *k, config.json)?;
            timings.index = Some(retrieved.index_time.as_secs_f64());
            timings.search = Some(retrieved.search_time.as_secs_f64());
            if let Some(path) = run_out {
                retrieved
                    .run
                    .write(path, &format!("quarry-{}", kind.name()))
                    .with_context(|| format!("writing the run to {}", path.display()))?;
            }
            let source = SourceReport::Retriever {
                retriever: kind.name(),
                k: *k,
                index_dir: retrieved.index_dir.display().to_string(),
                index_reused: retrieved.index_reused,
                self_hits_removed: retrieved.self_hits_removed,
                run_out: run_out.as_ref().map(|p| p.display().to_string()),
            };
            (retrieved.run, source)
        }
        RunSource::RunFile(path) => {
            let started = Instant::now();
            let run = Run::read(path).context("reading the run file")?;
            timings.read_data += started.elapsed().as_secs_f64();
            let deepest = run.by_query.values().map(Vec::len).max().unwrap_or(0);
            for metric in &config.metrics {
                if metric.depth().is_some_and(|d| d > deepest) {
                    warnings.push(format!(
                        "the run has at most {deepest} hits per query, so {metric} sees only those"
                    ));
                }
            }
            (
                run,
                SourceReport::RunFile {
                    run: path.display().to_string(),
                },
            )
        }
    };

    let started = Instant::now();
    let evaluation = evaluate(&qrels, &run, &config.metrics);
    timings.evaluate = started.elapsed().as_secs_f64();
    if !evaluation.queries_without_results.is_empty() {
        warnings.push(format!(
            "{} queries have qrels but no results and score 0",
            evaluation.queries_without_results.len()
        ));
    }
    if !evaluation.queries_without_relevant.is_empty() {
        warnings.push(format!(
            "{} queries have only grade-0 judgments and are left out of the means",
            evaluation.queries_without_relevant.len()
        ));
    }
    if evaluation.run_queries_without_qrels > 0 {
        warnings.push(format!(
            "{} run queries have no qrels in split {split} and were ignored",
            evaluation.run_queries_without_qrels
        ));
    }
    if evaluation.num_queries() == 0 {
        warnings.push(format!(
            "no query of split {split} has a relevant judgment; every mean is 0"
        ));
    }
    timings.total = total_started.elapsed().as_secs_f64();

    let mut report = build_report(
        &dataset,
        split,
        source,
        corpus_sha256,
        &evaluation,
        missing,
        queries_without_text,
        warnings,
        timings,
    );
    if config.per_query && config.json {
        report.per_query = Some(per_query_json(&evaluation));
    }
    if config.per_query && !config.json {
        // stdout holds only trec_eval's lines, for scripts that parse them.
        for warning in &report.warnings {
            eprintln!("warning: {warning}");
        }
        let mut out = std::io::stdout().lock();
        print_per_query(&mut out, &evaluation)?;
        return out.flush().map_err(Into::into);
    }
    print_report(config.json, &report, |out, report| {
        print_table(out, report, &evaluation)
    })
}

/// Query id → metric name → value.
fn per_query_json(
    evaluation: &Evaluation,
) -> std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>> {
    evaluation
        .per_query
        .iter()
        .map(|(query, values)| (query.clone(), by_metric(&evaluation.metrics, values)))
        .collect()
}

/// Metric name → value, as the report's JSON holds means and per-query values.
fn by_metric(metrics: &[Metric], values: &[f64]) -> serde_json::Map<String, serde_json::Value> {
    metrics
        .iter()
        .zip(values)
        .map(|(metric, value)| (metric.to_string(), serde_json::json!(value)))
        .collect()
}

/// `trec_eval -q`'s layout: `measure<TAB>query<TAB>value` for every query
/// (in trec_eval's query order: ids as strings) and measure, then the means
/// as query `all`; values to 4 decimals as trec_eval prints them. The
/// measure is quarry's name (`ndcg@10`; `--json` has full precision).
fn print_per_query(out: &mut impl Write, evaluation: &Evaluation) -> std::io::Result<()> {
    let names: Vec<String> = evaluation.metrics.iter().map(Metric::to_string).collect();
    for (query, values) in &evaluation.per_query {
        for (name, value) in names.iter().zip(values) {
            writeln!(out, "{name:<22}\t{query}\t{value:.4}")?;
        }
    }
    writeln!(out, "{:<22}\tall\t{}", "num_q", evaluation.num_queries())?;
    for (name, value) in names.iter().zip(&evaluation.means) {
        writeln!(out, "{name:<22}\tall\t{value:.4}")?;
    }
    Ok(())
}

/// Runs one retriever over the split's queries: BM25 (built in the catalog
/// on first use; the bar shows the build unless `quiet`), a dense index
/// built by `quarry build`, or a hybrid.
fn retrieve(
    context: &Session,
    dataset: &Dataset,
    corpus: Corpus,
    queries: &[&Query],
    spec: &RetrieverSpec,
    k: usize,
    quiet: bool,
) -> Result<Retrieval> {
    let progress = Progress::new("building BM25 index", "docs", quiet);
    let mut retrievers = Retrievers::new(&context.catalog, dataset, corpus, progress.bar().clone());
    let retriever = retrievers
        .open(spec)
        .with_context(|| format!("opening {spec} on {}", dataset.name))?;
    let retrieval = retrievers
        .retrieve(&retriever, queries, k)
        .with_context(|| format!("retrieving with {spec} on {}", dataset.name))?;
    progress.finish();
    Ok(retrieval)
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    dataset: &Dataset,
    split: String,
    source: SourceReport,
    corpus_sha256: Option<String>,
    evaluation: &Evaluation,
    missing: Option<MissingQrelsDocs>,
    queries_without_text: Vec<String>,
    warnings: Vec<String>,
    timings: Timings,
) -> Report {
    let metrics = by_metric(&evaluation.metrics, &evaluation.means);
    let trec_eval_measures = evaluation
        .metrics
        .iter()
        .map(|m| (m.to_string(), serde_json::json!(m.trec_eval_name())))
        .collect();
    Report {
        dataset: dataset.name.clone(),
        dataset_dir: dataset.root.display().to_string(),
        split,
        source,
        corpus_sha256,
        queries_evaluated: evaluation.num_queries(),
        metrics,
        trec_eval_measures,
        missing_qrels_docs: missing,
        queries_without_results: evaluation.queries_without_results.clone(),
        queries_without_relevant: evaluation.queries_without_relevant.clone(),
        queries_without_text,
        run_queries_without_qrels: evaluation.run_queries_without_qrels,
        warnings,
        timings_s: timings,
        per_query: None,
    }
}

fn print_table(
    out: &mut impl Write,
    report: &Report,
    evaluation: &Evaluation,
) -> std::io::Result<()> {
    let source = match &report.source {
        SourceReport::Retriever {
            retriever,
            k,
            index_reused,
            ..
        } => format!(
            "{retriever} (k={k}, index {})",
            if *index_reused { "reused" } else { "built" }
        ),
        SourceReport::RunFile { run } => format!("run file {run}"),
    };
    writeln!(
        out,
        "{} ({} split): {} queries evaluated, {source}",
        report.dataset, report.split, report.queries_evaluated
    )?;
    let width = evaluation
        .metrics
        .iter()
        .map(|m| m.to_string().len())
        .max()
        .unwrap_or(6)
        .max(6);
    writeln!(out, "{:<width$}  value", "metric")?;
    for (metric, value) in evaluation.metrics.iter().zip(&evaluation.means) {
        writeln!(out, "{:<width$}  {value:.4}", metric.to_string())?;
    }
    for warning in &report.warnings {
        writeln!(out, "warning: {warning}")?;
    }
    let t = &report.timings_s;
    let mut parts = vec![format!("read {:.2}s", t.read_data)];
    if let Some(index) = t.index {
        parts.push(format!("index {index:.2}s"));
    }
    if let Some(search) = t.search {
        parts.push(format!("search {search:.2}s"));
    }
    parts.push(format!("evaluate {:.3}s", t.evaluate));
    parts.push(format!("total {:.2}s", t.total));
    writeln!(out, "time: {}", parts.join(", "))?;
    Ok(())
}
