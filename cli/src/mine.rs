//! `quarry mine`: hard negatives for a dataset's train split, written as
//! Tevatron/RepLLaMA JSONL training groups (what `quarry train` reads).
//!
//! Retrieval is `quarry eval`'s (`quarry_engine::retriever`): BM25 (built in
//! the catalog on first use), a dense index made by `quarry build` (its
//! query cache holds every query of the queries file, train queries
//! included; missing ones are encoded with the index's model), or a hybrid
//! of two. Choosing negatives is the engine's ([`quarry_engine::mine`]).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use quarry_engine::catalog::safe_name;
use quarry_engine::dataset::Dataset;
use quarry_engine::mine::{mine_to_file, MineConfig, Miner, NegativeSampling};
use quarry_engine::retriever::Retrievers;
use quarry_engine::split::{queries_for_split, read_split};
use quarry_engine::train_data::{file_sha256, GroupFormat};
use serde::Serialize;

use crate::args::{check_split, parse_retriever, print_report, RetrieverSpec, UsageError};
use crate::progress::Progress;
use crate::session::Session;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Tevatron,
    #[value(name = "tevatron-v2")]
    TevatronV2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SampleArg {
    /// The highest-ranked unjudged docs, in rank order (deterministic)
    Top,
    /// A uniform sample of the unjudged docs in the top --depth, seeded by
    /// --seed and the query id (Tevatron's build_train_hn.py samples 30 of 200)
    Random,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  quarry mine --dataset nfcorpus --retriever bm25 --split train --output nfcorpus-train.jsonl
  quarry mine --dataset nfcorpus --retriever 'hybrid:rrf(bm25,dense:NAME)' --split train --depth 200 --negatives 30")]
pub struct MineArgs {
    /// Registry name, or a path to any BEIR folder
    #[arg(long, value_name = "NAME|DIR")]
    pub dataset: String,

    /// Retriever whose rankings give the negatives: bm25, dense:NAME,
    /// hybrid:rrf(bm25,dense:NAME), hybrid:interp(ALPHA,A,B)
    #[arg(long, value_name = "SPEC", value_parser = parse_retriever)]
    pub retriever: RetrieverSpec,

    /// Qrels split whose queries become training groups
    #[arg(long, default_value = "train")]
    pub split: String,

    /// Docs retrieved per query (the window negatives come from)
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub depth: u32,

    /// Negatives kept per group
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub negatives: u32,

    /// Groups with fewer negatives than this are left out (as Tevatron's --min_hn)
    #[arg(long, default_value_t = 1)]
    pub min_negatives: u32,

    /// Skip this many of the highest-ranked unjudged docs (likely unjudged positives)
    #[arg(long, default_value_t = 0)]
    pub skip_top: u32,

    /// How negatives are taken from the unjudged docs
    #[arg(long, value_enum, default_value = "top")]
    pub sample: SampleArg,

    /// Seed of --sample random
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// tevatron: passages inline (Tevatron v1 / RepLLaMA, self-contained); tevatron-v2:
    /// passage ids only (`positive_document_ids`), read back with the corpus
    /// (`quarry train --corpus FILE`)
    #[arg(long, value_enum, default_value = "tevatron")]
    pub format: FormatArg,

    /// Output JSONL file [default: <dataset>-<split>-<retriever>.jsonl]
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// What `quarry mine` reports (`--json`).
#[derive(Serialize)]
struct Summary {
    dataset: String,
    split: String,
    retriever: String,
    depth: usize,
    negatives: usize,
    min_negatives: usize,
    skip_top: usize,
    sample: String,
    /// Queries of the split's qrels.
    queries: usize,
    queries_without_text: usize,
    /// Skipped: no relevant qrels doc in the corpus.
    queries_without_positives: usize,
    /// Skipped: fewer than --min-negatives negatives left.
    queries_below_min_negatives: usize,
    groups_written: usize,
    positives_total: usize,
    negatives_total: usize,
    avg_positives: f64,
    avg_negatives: f64,
    /// Groups that got fewer than --negatives negatives (written anyway).
    groups_short_of_negatives: usize,
    /// Relevant qrels docs absent from the corpus (left out of positives).
    positives_missing_from_corpus: usize,
    /// Retrieved docs dropped because the query's qrels judge them.
    judged_docs_dropped: usize,
    self_hits_removed: usize,
    index_dir: String,
    output: String,
    output_bytes: u64,
    output_sha256: String,
    timings_s: Timings,
}

#[derive(Serialize)]
struct Timings {
    read_data: f64,
    retrieve: f64,
    write: f64,
    total: f64,
}

fn default_output(dataset: &str, split: &str, retriever: &str) -> PathBuf {
    let safe = safe_name(&format!("{dataset}-{split}-{retriever}"));
    PathBuf::from(format!("{safe}.jsonl"))
}

pub fn run(context: &Session, args: MineArgs) -> Result<()> {
    let total_started = Instant::now();
    check_split(&args.split)?;
    let depth = args.depth as usize;
    let config = MineConfig {
        negatives: args.negatives as usize,
        skip_top: args.skip_top as usize,
        sampling: match args.sample {
            SampleArg::Top => NegativeSampling::Top,
            SampleArg::Random => NegativeSampling::Random { seed: args.seed },
        },
        format: match args.format {
            FormatArg::Tevatron => GroupFormat::TevatronV1,
            FormatArg::TevatronV2 => GroupFormat::TevatronV2,
        },
    };
    if config.negatives + config.skip_top > depth {
        return Err(UsageError(format!(
            "--depth {depth} cannot give {} negatives after skipping {}; raise --depth",
            config.negatives, config.skip_top
        ))
        .into());
    }
    if args.min_negatives as usize > config.negatives {
        return Err(UsageError(format!(
            "--min-negatives {} is more than --negatives {}",
            args.min_negatives, config.negatives
        ))
        .into());
    }
    let dataset = Dataset::resolve(&args.dataset, Some(&context.registry))?;
    let retriever = args.retriever.name();
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| default_output(&dataset.name, &args.split, &retriever));

    let started = Instant::now();
    let (qrels, corpus, queries) = read_split(&dataset, &args.split)?;
    let (selected, without_text) = queries_for_split(&queries, &qrels);
    let read_time = started.elapsed();

    let started = Instant::now();
    if !args.json {
        eprintln!(
            "retrieving {depth} docs for {} {} queries with {retriever}",
            selected.len(),
            args.split
        );
    }
    let build_progress = Progress::new("building BM25 index", "docs", args.json);
    let mut retrievers = Retrievers::new(
        &context.catalog,
        &dataset,
        corpus,
        build_progress.bar().clone(),
    );
    let opened = retrievers
        .open(&args.retriever)
        .with_context(|| format!("opening {retriever} on {}", dataset.name))?;
    let retrieved = retrievers
        .retrieve(&opened, &selected, depth)
        .with_context(|| format!("retrieving with {retriever} on {}", dataset.name))?;
    build_progress.finish();
    let retrieve_time = started.elapsed();

    let started = Instant::now();
    let miner = Miner::new(retrievers.corpus(), config);
    let min_negatives = args.min_negatives as usize;
    let progress = Progress::new("mining", "queries", args.json);
    let stats = mine_to_file(
        &miner,
        &selected,
        &qrels,
        &retrieved.run,
        min_negatives,
        &output,
        progress.bar(),
    )
    .with_context(|| format!("writing the training groups to {}", output.display()))?;
    progress.finish();
    let written = stats.groups_written;
    let write_time = started.elapsed();
    let output_bytes = std::fs::metadata(&output)
        .with_context(|| format!("reading back {}", output.display()))?
        .len();
    let output_sha256 = file_sha256(&output)?;

    let per_group = |total: usize| {
        if written == 0 {
            0.0
        } else {
            total as f64 / written as f64
        }
    };
    let summary = Summary {
        dataset: dataset.name.clone(),
        split: args.split.clone(),
        retriever,
        depth,
        negatives: config.negatives,
        min_negatives,
        skip_top: config.skip_top,
        sample: config.sampling.name(),
        queries: qrels.by_query.len(),
        queries_without_text: without_text.len(),
        queries_without_positives: stats.without_positives,
        queries_below_min_negatives: stats.below_min_negatives,
        groups_written: written,
        positives_total: stats.positives,
        negatives_total: stats.negatives,
        avg_positives: per_group(stats.positives),
        avg_negatives: per_group(stats.negatives),
        groups_short_of_negatives: stats.short_of_negatives,
        positives_missing_from_corpus: stats.positives_missing,
        judged_docs_dropped: stats.judged_dropped,
        self_hits_removed: retrieved.self_hits_removed,
        index_dir: retrieved.index_dir.display().to_string(),
        output: output.display().to_string(),
        output_bytes,
        output_sha256,
        timings_s: Timings {
            read_data: read_time.as_secs_f64(),
            retrieve: retrieve_time.as_secs_f64(),
            write: write_time.as_secs_f64(),
            total: total_started.elapsed().as_secs_f64(),
        },
    };
    print_report(args.json, &summary, print_summary)
}

fn print_summary(out: &mut impl std::io::Write, s: &Summary) -> std::io::Result<()> {
    writeln!(
        out,
        "{} ({} split, {} queries) mined with {} (depth {}, {} negatives, sample {}, skip-top {})",
        s.dataset, s.split, s.queries, s.retriever, s.depth, s.negatives, s.sample, s.skip_top
    )?;
    writeln!(
        out,
        "wrote {} groups to {} ({} bytes, sha256 {})",
        s.groups_written, s.output, s.output_bytes, s.output_sha256
    )?;
    writeln!(
        out,
        "per group: {:.2} positives, {:.2} negatives on average; {} groups short of {} negatives",
        s.avg_positives, s.avg_negatives, s.groups_short_of_negatives, s.negatives
    )?;
    writeln!(
        out,
        "skipped: {} queries without text, {} without a positive in the corpus, {} with fewer than {} negatives",
        s.queries_without_text, s.queries_without_positives, s.queries_below_min_negatives, s.min_negatives
    )?;
    if s.positives_missing_from_corpus > 0 {
        writeln!(
            out,
            "warning: {} relevant qrels docs are not in the corpus and were left out of positives",
            s.positives_missing_from_corpus
        )?;
    }
    let t = &s.timings_s;
    writeln!(
        out,
        "time: read {:.2}s, retrieve {:.2}s, write {:.2}s, total {:.2}s",
        t.read_data, t.retrieve, t.write, t.total
    )
}
