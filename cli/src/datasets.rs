//! `quarry datasets`: the registry, and what of each dataset is on disk.
//! Counts come from counting lines (and reading the default split's
//! qrels), so the listing stays fast.

use std::io::Write;

use anyhow::{bail, Result};
use clap::Args;
use quarry_engine::dataset::Dataset;
use quarry_engine::textio::count_lines;
use serde::Serialize;

use crate::session::Session;

#[derive(Debug, Args)]
pub struct DatasetsArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Listing {
    registry: String,
    datasets: Vec<DatasetStatus>,
}

#[derive(Serialize)]
struct DatasetStatus {
    name: String,
    kind: String,
    path: String,
    split: String,
    remove_self: bool,
    url: String,
    corpus_sha256: String,
    /// Files found locally (`None`: missing).
    corpus: Option<String>,
    queries: Option<String>,
    qrels_splits: Vec<String>,
    /// Non-empty lines of the corpus.
    docs: Option<u64>,
    /// Distinct queries in the default split's qrels.
    split_queries: Option<usize>,
    /// Judgments in the default split's qrels.
    split_qrels: Option<usize>,
    /// A file that is there but could not be read.
    problem: Option<String>,
}

pub fn run(context: &Session, args: &DatasetsArgs) -> Result<()> {
    let Some(registry) = &context.registry else {
        bail!("no datasets.toml found in the current directory or its parents; pass --registry FILE or set QUARRY_REGISTRY");
    };
    let mut statuses = Vec::new();
    for entry in &registry.entries {
        let dataset = Dataset::from_entry(entry);
        let corpus = dataset.find_corpus();
        let queries = dataset.find_queries();
        let mut status = DatasetStatus {
            name: entry.name.clone(),
            kind: format!("{:?}", entry.kind).to_lowercase(),
            path: entry.path.display().to_string(),
            split: entry.split.clone(),
            remove_self: entry.remove_self,
            url: entry.url.clone(),
            corpus_sha256: entry.corpus_sha256.clone(),
            corpus: corpus.as_ref().map(|p| p.display().to_string()),
            queries: queries.as_ref().map(|p| p.display().to_string()),
            qrels_splits: dataset.qrels_splits(),
            docs: None,
            split_queries: None,
            split_qrels: None,
            problem: None,
        };
        let mut problems = Vec::new();
        if let Some(path) = &corpus {
            match count_lines(path) {
                Ok(n) => status.docs = Some(n),
                Err(e) => problems.push(e.to_string()),
            }
        }
        if dataset.find_qrels(&entry.split).is_some() {
            match dataset.read_qrels(&entry.split) {
                Ok(qrels) => {
                    status.split_queries = Some(qrels.by_query.len());
                    status.split_qrels = Some(qrels.num_judgments());
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if !problems.is_empty() {
            status.problem = Some(problems.join("; "));
        }
        statuses.push(status);
    }
    let listing = Listing {
        registry: registry.file.display().to_string(),
        datasets: statuses,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&listing)?)?;
    } else {
        print_table(&mut out, &listing)?;
    }
    Ok(())
}

fn print_table(out: &mut impl Write, listing: &Listing) -> std::io::Result<()> {
    let count = |n: Option<u64>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
    let rows: Vec<[String; 8]> = listing
        .datasets
        .iter()
        .map(|d| {
            [
                d.name.clone(),
                d.kind.clone(),
                d.split.clone(),
                if d.corpus.is_some() { "yes" } else { "missing" }.to_string(),
                if d.queries.is_some() {
                    "yes"
                } else {
                    "missing"
                }
                .to_string(),
                if d.qrels_splits.is_empty() {
                    "none".to_string()
                } else {
                    d.qrels_splits.join(",")
                },
                count(d.docs),
                format!(
                    "{} / {}",
                    count(d.split_queries.map(|n| n as u64)),
                    count(d.split_qrels.map(|n| n as u64))
                ),
            ]
        })
        .collect();
    let header = [
        "name",
        "kind",
        "split",
        "corpus",
        "queries",
        "qrels splits",
        "docs",
        "split queries / qrels",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    writeln!(out, "registry: {}", listing.registry)?;
    let line = |out: &mut dyn Write, cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", padded.join("  ").trim_end())
    };
    line(out, header.to_vec())?;
    for row in &rows {
        line(out, row.iter().map(String::as_str).collect())?;
    }
    for d in &listing.datasets {
        if let Some(problem) = &d.problem {
            writeln!(out, "warning: {}: {problem}", d.name)?;
        }
    }
    Ok(())
}
