//! `quarry compare`: several retrievers on several datasets under several
//! metrics, with 95% intervals, paired significance tests against a
//! baseline and published values (the engine's `compare` does the work);
//! printed as markdown (default), CSV, JSON or LaTeX, and with `--report DIR`
//! written as all of those plus SVG pictures.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use quarry_engine::compare::{self, CompareRequest, Significance};
use quarry_engine::metrics::{parse_metric_list, Metric};
use quarry_engine::stats::{Correction, PairedTest, DEFAULT_PERMUTATIONS, DEFAULT_SEED};

use crate::args::{
    check_depth, check_split, parse_retriever, parse_retriever_list, RetrieverList, RetrieverSpec,
    UsageError, DEFAULT_K,
};
use crate::session::Session;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Md,
    Csv,
    Json,
    Latex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestArg {
    /// Paired Student's t-test (as ranx `student`, scipy `ttest_rel`)
    T,
    /// Fisher's randomization test (as ranx `fisher`), seeded
    Randomization,
    /// Sakai's studentized paired bootstrap test, seeded
    Bootstrap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CorrectionArg {
    Holm,
    Bonferroni,
    None,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  quarry compare --datasets nfcorpus,scifact --retrievers bm25,dense:all-minilm-l6-v2
  quarry compare --datasets nfcorpus --retrievers bm25,dense:all-minilm-l6-v2,hybrid:rrf(bm25,dense:all-minilm-l6-v2) \\
      --metrics ndcg@10,mrr@10,recall@100 --baseline bm25 --test randomization --report report/
  quarry compare --datasets nfcorpus --retrievers bm25,dense:qwen2.5-7b-zero-shot --paper --format latex

Cells marked ▲/▼ are significantly better/worse than the baseline at --alpha after
--correction over the retrievers tested against it (per dataset and metric).")]
pub struct CompareArgs {
    /// Comma-separated registry names or BEIR folders
    #[arg(long, value_delimiter = ',', required = true)]
    pub datasets: Vec<String>,

    /// Comma-separated retrievers (the rows): bm25, dense:NAME, hnsw:NAME,
    /// run:PATH (a TREC run file), or a hybrid such as
    /// hybrid:rrf(bm25,dense:NAME) (its commas don't split)
    #[arg(long, required = true, value_parser = parse_retriever_list)]
    pub retrievers: Vec<RetrieverList>,

    /// Comma-separated metrics, one column group each (ndcg@K, mrr@K, recall@K, p@K, map,
    /// map@K, success@K, r-prec, or trec_eval's names such as ndcg_cut.10)
    #[arg(long, alias = "metric", default_value = "ndcg@10")]
    pub metrics: String,

    /// Test every other retriever against this one (one of --retrievers);
    /// with --test and no --baseline, the first retriever
    #[arg(long, value_name = "RETRIEVER", value_parser = parse_retriever)]
    pub baseline: Option<RetrieverSpec>,

    /// Paired significance test against the baseline [default with --baseline: t]
    #[arg(long, value_enum)]
    pub test: Option<TestArg>,

    /// Significance level of the ▲/▼ markers
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,

    /// Correction for testing several retrievers against the baseline
    #[arg(long, value_enum, default_value = "holm")]
    pub correction: CorrectionArg,

    /// Permutations (randomization) or resamples (bootstrap)
    #[arg(long, default_value_t = DEFAULT_PERMUTATIONS, value_parser = clap::value_parser!(u32).range(1..))]
    pub permutations: u32,

    /// Seed of the randomization and bootstrap tests
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,

    /// Show the registry's published values beside quarry's (`[[published]]`)
    #[arg(long)]
    pub paper: bool,

    /// Qrels split [default: each dataset's]
    #[arg(long)]
    pub split: Option<String>,

    /// Hits to retrieve per query [default: 1000]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub k: Option<u32>,

    /// Output format on stdout
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,

    /// Also write the table (md, csv, json, tex), per-query scores and SVG
    /// pictures into this folder
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,

    /// Also write the bar chart of the first metric to this SVG file
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

impl CompareArgs {
    /// Checks the flags against each other and builds the engine's request.
    pub fn validate(self) -> Result<(CompareRequest, Output), UsageError> {
        let metrics: Vec<Metric> =
            parse_metric_list(&self.metrics).map_err(|e| UsageError(e.to_string()))?;
        let k = self.k.map_or(DEFAULT_K, |k| k as usize);
        check_depth(&metrics, k)?;
        let retrievers: Vec<RetrieverSpec> = self
            .retrievers
            .into_iter()
            .flat_map(|list| list.0)
            .collect();
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(UsageError(format!(
                "--alpha {} is not between 0 and 1",
                self.alpha
            )));
        }
        if let Some(split) = &self.split {
            check_split(split)?;
        }
        let significance = match (&self.baseline, self.test) {
            (None, None) => None,
            (baseline, test) => {
                let baseline = match baseline {
                    Some(spec) => retrievers.iter().position(|r| r == spec).ok_or_else(|| {
                        UsageError(format!(
                            "--baseline {spec} is not one of --retrievers ({})",
                            retrievers
                                .iter()
                                .map(RetrieverSpec::name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?,
                    None => 0,
                };
                if retrievers.len() < 2 {
                    return Err(UsageError(
                        "a significance test needs at least two retrievers".into(),
                    ));
                }
                let test = match test.unwrap_or(TestArg::T) {
                    TestArg::T => PairedTest::T,
                    TestArg::Randomization => PairedTest::Randomization {
                        permutations: self.permutations,
                        seed: self.seed,
                    },
                    TestArg::Bootstrap => PairedTest::Bootstrap {
                        resamples: self.permutations,
                        seed: self.seed,
                    },
                };
                Some(Significance {
                    baseline,
                    test,
                    alpha: self.alpha,
                    correction: match self.correction {
                        CorrectionArg::Holm => Correction::Holm,
                        CorrectionArg::Bonferroni => Correction::Bonferroni,
                        CorrectionArg::None => Correction::None,
                    },
                })
            }
        };
        let request = CompareRequest {
            datasets: self.datasets,
            retrievers,
            metrics,
            split: self.split,
            k,
            significance,
            published: self.paper,
        };
        let output = Output {
            format: self.format,
            report: self.report,
            svg: self.svg,
        };
        Ok((request, output))
    }
}

/// Where the comparison goes.
#[derive(Debug)]
pub struct Output {
    pub format: Format,
    pub report: Option<PathBuf>,
    pub svg: Option<PathBuf>,
}

pub fn run(context: &Session, request: CompareRequest, output: Output) -> Result<()> {
    let table = compare::compare(
        &context.catalog,
        &context.registry,
        &request,
        ProgressBar::hidden(),
    )?;
    let mut out = std::io::stdout().lock();
    match output.format {
        Format::Md => compare::markdown::write(&mut out, &table)?,
        Format::Csv => compare::csv_table::write(&mut out, &table)?,
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&table)?)?,
        Format::Latex => compare::latex::write(&mut out, &table)?,
    }
    out.flush()?;
    if let Some(path) = &output.svg {
        let svg = compare::plots::bars(&table, 0);
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = &output.report {
        let files = compare::report::write(dir, &table)
            .with_context(|| format!("writing the report into {}", dir.display()))?;
        eprintln!("report: {} files in {}", files.len(), dir.display());
    }
    if !table.missing.is_empty() {
        for line in &table.missing {
            eprintln!("missing: {line}");
        }
        anyhow::bail!(
            "{} retriever(s) could not be run (see `missing` above)",
            table.missing.len()
        );
    }
    Ok(())
}
