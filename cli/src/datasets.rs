//! `quarry datasets`: the registry, and where each dataset stands on disk
//! (fetched, bundled, fetchable, corrupt, missing) with counts and sizes;
//! `quarry datasets fetch`: downloads and converts datasets by name.
//!
//! Counts come from `fetched.json` for fetched copies and from counting
//! lines otherwise, so the listing stays fast.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use quarry_engine::dataset::Dataset;
use quarry_engine::fetch::{self, FetchOptions, State};
use quarry_engine::registry::RegistryEntry;
use quarry_engine::textio::count_lines;
use serde::Serialize;

use crate::progress::Progress;
use crate::session::Session;

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  quarry datasets\n  quarry datasets --verify --json\n  \
                  quarry datasets fetch scifact fiqa\n  quarry datasets fetch --group msmarco \
                  --mirror http://mirror.lan/data"
)]
pub struct DatasetsArgs {
    #[command(subcommand)]
    pub command: Option<DatasetsCommand>,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// Also re-hash every fetched file against fetched.json (slow on large corpora)
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// Download datasets by name, check them and convert them into the data folder
    Fetch(FetchArgs),
    /// Register a BEIR folder under a name, in the data home's datasets.toml (laid over
    /// the built-in registry), so every command takes `--dataset NAME`
    #[command(after_help = "Examples:
  quarry datasets add my-arguana ./arguana --remove-self
  quarry datasets add my-code ./code-beir --kind code --split dev")]
    Add(AddArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The name to use with --dataset (no slashes or spaces)
    pub name: String,
    /// A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv (.gz/.zst too)
    pub path: PathBuf,
    /// The qrels split evaluated by default
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Drop hits whose doc id equals the query id, as Pyserini's --remove-query (BEIR's
    /// ArguAna and Quora are scored so)
    #[arg(long)]
    pub remove_self: bool,
    /// How compare groups it: text or code
    #[arg(long, value_enum, default_value = "text")]
    pub kind: KindArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    Text,
    Code,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  quarry datasets fetch nfcorpus scifact\n  \
                        quarry datasets fetch --group beir\n  \
                        quarry datasets fetch nfcorpus --from ~/Downloads/nfcorpus.zip\n  \
                        QUARRY_MIRROR=http://mirror.lan quarry datasets fetch --all\n\n\
                        A cut download resumes when the command is run again. Exit codes: 0 \
                        all fetched, 1 a download or check failed, 2 a usage error.")]
pub struct FetchArgs {
    /// Registry names to fetch
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// Fetch every dataset of a group (beir, coir, msmarco)
    #[arg(long, value_name = "GROUP", conflicts_with = "all")]
    pub group: Option<String>,

    /// Fetch every fetchable dataset of the registry
    #[arg(long)]
    pub all: bool,

    /// Base URL that replaces each source's host (`https://host/a/b.zip` is
    /// fetched as `MIRROR/a/b.zip`)
    #[arg(long, env = "QUARRY_MIRROR", value_name = "URL")]
    pub mirror: Option<String>,

    /// Convert a download you already have: the file itself, or a folder holding the
    /// downloads by their file names (for CoIR: a copy of each hub repo, by repo name)
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,

    /// Seconds a download may wait for the server before it stops (and resumes next time)
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub stall_timeout: u64,

    /// Keep the downloaded archives after converting them
    #[arg(long)]
    pub keep_downloads: bool,

    /// Convert again even when a complete copy is there
    #[arg(long)]
    pub force: bool,

    /// Print JSON instead of lines
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Listing {
    registry: String,
    data: String,
    datasets: Vec<DatasetStatus>,
    /// The study's checkpoints (`[[model]]`), which `--model NAME` takes.
    models: Vec<quarry_engine::registry::ModelEntry>,
}

#[derive(Serialize)]
struct DatasetStatus {
    name: String,
    kind: String,
    group: Option<String>,
    /// fetched | bundled | fetchable | corrupt | missing
    state: String,
    /// What is wrong with a corrupt copy.
    corrupt: Option<String>,
    /// The folder read.
    path: String,
    split: String,
    remove_self: bool,
    url: String,
    corpus_sha256: String,
    /// Files found locally (`None`: missing).
    corpus: Option<String>,
    queries: Option<String>,
    qrels_splits: Vec<String>,
    /// Documents of the corpus.
    docs: Option<u64>,
    /// Bytes of the dataset's folder on disk.
    bytes: u64,
    /// Distinct queries in the default split's qrels.
    split_queries: Option<usize>,
    /// Judgments in the default split's qrels.
    split_qrels: Option<usize>,
    /// A file that is there but could not be read.
    problem: Option<String>,
}

pub fn run(session: &Session, args: DatasetsArgs) -> Result<()> {
    match args.command {
        Some(DatasetsCommand::Fetch(fetch_args)) => run_fetch(session, fetch_args),
        Some(DatasetsCommand::Add(add_args)) => add(session, add_args),
        None => list(session, &args),
    }
}

/// Registers the folder in `<home>/datasets.toml` after checking that it reads as a
/// dataset with the split asked for.
fn add(session: &Session, args: AddArgs) -> Result<()> {
    use quarry_engine::registry::{DatasetKind, Registry};
    let path = std::path::absolute(&args.path)
        .with_context(|| format!("resolving {}", args.path.display()))?;
    let dataset = quarry_engine::dataset::Dataset::from_folder(&path)?;
    // The corpus and queries must be there (an error naming what is missing, exit 1).
    dataset.corpus_path()?;
    dataset.queries_path()?;
    if dataset.find_qrels(&args.split).is_none() {
        return Err(crate::args::UsageError(format!(
            "{} has no qrels/{}.tsv (splits present: {})",
            path.display(),
            args.split,
            dataset.qrels_splits().join(", ")
        ))
        .into());
    }
    let file = session.catalog.home.join(Registry::FILE_NAME);
    let kind = match args.kind {
        KindArg::Text => DatasetKind::Text,
        KindArg::Code => DatasetKind::Code,
    };
    Registry::append_entry(
        &file,
        &args.name,
        &path,
        &args.split,
        args.remove_self,
        kind,
    )?;
    println!(
        "added `{}` ({}, split {}{}) to {}",
        args.name,
        path.display(),
        args.split,
        if args.remove_self {
            ", self hits removed"
        } else {
            ""
        },
        file.display()
    );
    Ok(())
}

fn list(session: &Session, args: &DatasetsArgs) -> Result<()> {
    let registry = &session.registry;
    let statuses: Vec<DatasetStatus> = registry
        .entries
        .iter()
        .map(|entry| status(entry, args.verify))
        .collect();
    let listing = Listing {
        registry: registry.file.display().to_string(),
        data: session.data.display().to_string(),
        datasets: statuses,
        models: registry.models.clone(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&listing)?)?;
    } else {
        print_table(&mut out, &listing)?;
    }
    Ok(())
}

fn status(entry: &RegistryEntry, verify: bool) -> DatasetStatus {
    let dataset = Dataset::from_entry(entry);
    let corpus = dataset.find_corpus();
    // One look at fetched.json: its count stands for the corpus' (no re-count).
    let state = fetch::state(entry, verify);
    let mut problems = Vec::new();
    let mut docs = None;
    if let State::Fetched { docs: fetched } = state {
        docs = Some(fetched);
    } else if let Some(path) = &corpus {
        match count_lines(path) {
            Ok(n) => docs = Some(n),
            Err(e) => problems.push(e.to_string()),
        }
    }
    let (split_queries, split_qrels) = if dataset.find_qrels(&entry.split).is_some() {
        match dataset.read_qrels(&entry.split) {
            Ok(qrels) => (Some(qrels.by_query.len()), Some(qrels.num_judgments())),
            Err(e) => {
                problems.push(e.to_string());
                (None, None)
            }
        }
    } else {
        (None, None)
    };
    let (state_name, corrupt) = match state {
        State::Fetched { .. } => ("fetched", None),
        State::Bundled => ("bundled", None),
        State::Fetchable => ("fetchable", None),
        State::Corrupt(why) => ("corrupt", Some(why)),
        State::Missing => ("missing", None),
    };
    DatasetStatus {
        name: entry.name.clone(),
        kind: format!("{:?}", entry.kind).to_lowercase(),
        group: entry.group.clone(),
        state: state_name.to_string(),
        corrupt,
        path: dataset.root.display().to_string(),
        split: entry.split.clone(),
        remove_self: entry.remove_self,
        url: entry.url.clone(),
        corpus_sha256: entry.corpus_sha256.clone(),
        corpus: corpus.as_ref().map(|p| p.display().to_string()),
        queries: dataset.find_queries().map(|p| p.display().to_string()),
        qrels_splits: dataset.qrels_splits(),
        docs,
        bytes: folder_bytes(&dataset.root),
        split_queries,
        split_qrels,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// Bytes of the files below `dir` (0 when it is not there).
fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// `1.4 MB`, `3.1 GB`: sizes as people read them.
fn human_bytes(bytes: u64) -> String {
    if bytes == 0 {
        return "-".to_string();
    }
    indicatif::DecimalBytes(bytes).to_string()
}

fn print_table(out: &mut impl Write, listing: &Listing) -> std::io::Result<()> {
    let count = |n: Option<u64>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
    let rows: Vec<[String; 8]> = listing
        .datasets
        .iter()
        .map(|d| {
            [
                d.name.clone(),
                d.group.clone().unwrap_or_else(|| "-".to_string()),
                d.kind.clone(),
                d.state.clone(),
                count(d.docs),
                human_bytes(d.bytes),
                if d.qrels_splits.is_empty() {
                    "none".to_string()
                } else {
                    d.qrels_splits.join(",")
                },
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
        "group",
        "kind",
        "state",
        "docs",
        "size",
        "qrels splits",
        "split queries / qrels",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    writeln!(out, "registry: {}", listing.registry)?;
    writeln!(out, "data folder: {}", listing.data)?;
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
    if !listing.models.is_empty() {
        writeln!(out, "\nmodels (--model NAME):")?;
        let width = listing
            .models
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(0);
        for m in &listing.models {
            writeln!(
                out,
                "{:<width$}  {}  ({}, {})",
                m.name, m.hub, m.architecture, m.family
            )?;
        }
    }
    for d in &listing.datasets {
        if let Some(why) = &d.corrupt {
            writeln!(
                out,
                "corrupt: {}: {why} (`quarry datasets fetch {} --force` fetches it again)",
                d.name, d.name
            )?;
        }
        if let Some(problem) = &d.problem {
            writeln!(out, "warning: {}: {problem}", d.name)?;
        }
    }
    Ok(())
}

/// The registry entries a fetch names, in registry order for groups.
fn selected<'a>(session: &'a Session, args: &FetchArgs) -> Result<Vec<&'a RegistryEntry>> {
    let registry = &session.registry;
    let given = usize::from(!args.names.is_empty())
        + usize::from(args.group.is_some())
        + usize::from(args.all);
    if given != 1 {
        return Err(crate::args::UsageError(
            "name the datasets to fetch, or give --group GROUP or --all (one of them)".into(),
        )
        .into());
    }
    if args.all {
        return Ok(registry.entries.iter().filter(|e| e.fetchable()).collect());
    }
    if let Some(group) = &args.group {
        let chosen: Vec<&RegistryEntry> = registry
            .entries
            .iter()
            .filter(|e| e.group.as_deref() == Some(group.as_str()))
            .collect();
        if chosen.is_empty() {
            let mut groups: Vec<&str> = registry
                .entries
                .iter()
                .filter_map(|e| e.group.as_deref())
                .collect();
            groups.sort();
            groups.dedup();
            return Err(crate::args::UsageError(format!(
                "no dataset of group `{group}` in {}; groups: {}",
                registry.file.display(),
                groups.join(", ")
            ))
            .into());
        }
        return Ok(chosen);
    }
    args.names
        .iter()
        .map(|name| {
            registry.get(name).ok_or_else(|| {
                crate::args::UsageError(format!(
                    "unknown dataset `{name}`; known: {}",
                    registry.names().join(", ")
                ))
                .into()
            })
        })
        .collect()
}

fn run_fetch(session: &Session, args: FetchArgs) -> Result<()> {
    let entries = selected(session, &args)?;
    if args.from.is_some() && entries.len() != 1 {
        return Err(crate::args::UsageError("--from goes with exactly one dataset".into()).into());
    }
    if args.stall_timeout == 0 {
        return Err(
            crate::args::UsageError("--stall-timeout must be at least 1 second".into()).into(),
        );
    }
    let options = FetchOptions {
        data: session.data.clone(),
        mirror: args.mirror.clone(),
        from: args.from.clone(),
        stall: Duration::from_secs(args.stall_timeout),
        force: args.force,
    };
    std::fs::create_dir_all(&options.data)
        .with_context(|| format!("creating the data folder {}", options.data.display()))?;
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for entry in entries {
        let progress = Progress::bytes(&entry.name, args.json);
        let outcome = fetch::fetch(entry, &options, progress.bar());
        progress.finish();
        match outcome {
            Ok(fetched) => {
                if !args.json {
                    let verb = if fetched.converted {
                        "fetched"
                    } else {
                        "already present"
                    };
                    eprintln!(
                        "{}: {verb}: {} documents in {}",
                        fetched.name,
                        fetched.record.docs,
                        fetched.dir.display()
                    );
                    if fetched.converted {
                        for check in &fetched.record.checks {
                            eprintln!("  {check}");
                        }
                    }
                }
                results.push(fetched);
            }
            Err(err) => {
                eprintln!("error: {}: {err}", entry.name);
                failures.push(entry.name.clone());
            }
        }
    }
    if !args.keep_downloads {
        fetch::remove_downloads(&options, &results);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} datasets failed: {}",
            failures.len(),
            failures.len() + results.len(),
            failures.join(", ")
        );
    }
    Ok(())
}
