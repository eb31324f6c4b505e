//! `quarry index …`: list the dense indexes of the data home, and inspect,
//! verify and query one (a folder, or `NAME@DATASET` in the home; see
//! `index/FORMAT.md`) without a dataset or model (`quarry_engine::inspect`
//! does the work; this module prints).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use quarry_engine::inspect::{
    build_hnsw, list_indexes, open_index, read_query_vectors, resolve_index_dir, search_vectors,
    verify_index, DenseIndex, HnswParams, ShardStatus, Verify,
};

#[derive(Args, Debug)]
pub struct IndexArgs {
    #[command(subcommand)]
    pub command: IndexCommand,
}

#[derive(Subcommand, Debug)]
#[command(after_help = "Examples:
  quarry index list
  quarry index info all-minilm-l6-v2@nfcorpus
  quarry index verify all-minilm-l6-v2@nfcorpus
  quarry index search all-minilm-l6-v2@nfcorpus --row 0 -k 5

DIR is an index folder, or NAME@DATASET in the data home (--home).")]
pub enum IndexCommand {
    /// The dense indexes of the data home: name, rows, dimension, storage, size, model.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Rows, dimension, element type, encoder fingerprint, model, size, checksum status.
    Info {
        /// Index directory (holds manifest.json), or NAME@DATASET in the data home.
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Recompute every shard's checksum (exit status 1 on any corruption).
    Verify {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Exact (or HNSW) top-k for query vectors from a file or a stored row.
    Search {
        dir: PathBuf,
        /// Queries: `.npy` (f32, 1-D or 2-D), `.json` (array or array of arrays) or raw little-endian f32.
        #[arg(long, conflicts_with = "row")]
        query_file: Option<PathBuf>,
        /// Use stored row N as the query.
        #[arg(long)]
        row: Option<u64>,
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Encoder fingerprint of the queries (defaults to the index's: the vectors are taken as given).
        #[arg(long)]
        encoder: Option<String>,
        /// Search the HNSW graph instead of the exact scan.
        #[arg(long)]
        hnsw: bool,
        /// HNSW ef at search time (default: the manifest's ef_search).
        #[arg(long)]
        ef: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Merge the slices of a sharded build (`quarry build --shard I/N`) into the
    /// index; the last slice's build does this itself, so this is for a merge
    /// that build could not do (it was killed, or ran elsewhere).
    #[command(after_help = "Example:
  quarry index merge all-minilm-l6-v2@nfcorpus")]
    Merge {
        /// Index directory (holds slices/I-of-N/ folders).
        dir: PathBuf,
    },
    /// Build (or rebuild) the HNSW graph next to the shards and report recall@10 vs exact.
    Hnsw {
        dir: PathBuf,
        #[arg(long, default_value_t = 16)]
        m: usize,
        #[arg(long, default_value_t = 200)]
        ef_construction: usize,
        #[arg(long, default_value_t = 64)]
        ef_search: usize,
    },
}

fn list(home: &Path, json: bool) -> Result<()> {
    let listings = list_indexes(home)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&listings)?);
        return Ok(());
    }
    if listings.is_empty() {
        println!(
            "no dense indexes in {} (build one with `quarry build`)",
            home.join("dense").display()
        );
        return Ok(());
    }
    println!(
        "{:<40} {:>10} {:>5} {:>5} {:>10}  model, mode, max length",
        "NAME@DATASET (dense:NAME)", "rows", "dim", "store", "MiB"
    );
    for l in &listings {
        let state = if l.pending_slices > 0 {
            format!("  [{} slices waiting to be merged]", l.pending_slices)
        } else if !l.complete {
            "  [incomplete: rerun its build to resume]".to_string()
        } else {
            String::new()
        };
        let model = match (&l.model, &l.mode, l.max_length) {
            (Some(model), Some(mode), Some(max)) => format!("{model}, {mode}, {max}"),
            _ => "-".to_string(),
        };
        println!(
            "{:<40} {:>10} {:>5} {:>5} {:>10.1}  {model}{}{state}",
            l.name,
            l.rows,
            l.dim,
            l.element_type,
            l.bytes as f64 / (1 << 20) as f64,
            if l.hnsw { " (+hnsw)" } else { "" }
        );
    }
    Ok(())
}

fn status_name(s: &ShardStatus) -> &'static str {
    match s {
        ShardStatus::VerifiedNow => "verified now",
        ShardStatus::VerifiedBefore => "verified earlier, file unchanged",
        ShardStatus::Unverified => "not yet verified",
    }
}

fn open(dir: &Path, verify: Verify) -> Result<DenseIndex> {
    open_index(dir, verify).with_context(|| format!("opening index {}", dir.display()))
}

fn info(dir: &Path, json: bool, index: &DenseIndex) -> Result<()> {
    let m = index.manifest();
    let shards: Vec<_> = m
        .shards
        .iter()
        .zip(index.shard_status())
        .map(|(s, st)| {
            serde_json::json!({"file": s.file, "rows": s.rows, "bytes": s.bytes,
                                "checksum": s.checksum, "status": status_name(st)})
        })
        .collect();
    if json {
        let v = serde_json::json!({
            "dir": dir, "format_version": m.format_version, "rows": index.rows(), "dim": m.dim,
            "element_type": m.element_type, "encoder_fingerprint": m.encoder_fingerprint,
            "corpus_checksum": m.corpus_checksum, "complete": m.complete,
            "size_on_disk": index.size_on_disk(), "shards": shards, "hnsw": m.hnsw,
            "simd": index.isa_name(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("index            {}", dir.display());
    println!("format version   {}", m.format_version);
    println!("rows             {}", index.rows());
    println!("dimension        {}", m.dim);
    println!("element type     {}", m.element_type);
    println!("encoder          {}", m.encoder_fingerprint);
    println!("corpus checksum  {}", m.corpus_checksum);
    println!("complete         {}", m.complete);
    if let Ok(Some(build)) = quarry_engine::build::BuildInfo::load(dir) {
        println!("model            {}", build.encoder.model.display());
        println!(
            "mode             {} ({})",
            build.template_mode, build.family
        );
        println!("max length       {} tokens", build.max_length);
        println!("dataset          {} ({} docs)", build.dataset, build.docs);
    }
    println!(
        "size on disk     {} bytes ({:.1} MiB)",
        index.size_on_disk(),
        index.size_on_disk() as f64 / (1 << 20) as f64
    );
    println!("search kernel    {}", index.isa_name());
    match &m.hnsw {
        Some(h) => println!(
            "hnsw             M={} ef_construction={} ef_search={} recall@{}={:.4} ({} queries)",
            h.m, h.ef_construction, h.ef_search, h.recall_k, h.recall_at_k, h.recall_queries
        ),
        None => println!("hnsw             none"),
    }
    println!("shards           {}", m.shards.len());
    for (s, st) in m.shards.iter().zip(index.shard_status()) {
        println!(
            "  {}  {:>9} rows  {:>12} bytes  xxh3 {}  {}",
            s.file,
            s.rows,
            s.bytes,
            s.checksum,
            status_name(st)
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn search(
    dir: &Path,
    query_file: Option<&Path>,
    row: Option<u64>,
    k: usize,
    encoder: Option<&str>,
    use_hnsw: bool,
    ef: Option<usize>,
    json: bool,
) -> Result<()> {
    let index = open(dir, Verify::Once)?;
    let queries = match (query_file, row) {
        (Some(f), _) => read_query_vectors(f, index.dim())?,
        (None, Some(r)) => index.row_vector(r)?,
        (None, None) => bail!("give --query-file FILE or --row N"),
    };
    let (results, seconds) = search_vectors(&index, &queries, k, encoder, use_hnsw.then_some(ef))?;
    let mut out = Vec::new();
    for (qi, hits) in results.iter().enumerate() {
        let mut list = Vec::new();
        for (rank, (row, doc, score)) in hits.iter().enumerate() {
            if json {
                list.push(serde_json::json!({"rank": rank + 1, "row": row, "doc_id": doc, "score": score}));
            } else {
                println!("{qi}\t{}\t{}\t{}\t{:.6}", rank + 1, row, doc, score);
            }
        }
        if json {
            out.push(serde_json::json!({"query": qi, "hits": list}));
        }
    }
    if json {
        let v = serde_json::json!({"method": if use_hnsw {"hnsw"} else {"flat"}, "k": k,
                                   "seconds": seconds, "results": out});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        eprintln!(
            "{} queries in {:.3} s ({})",
            results.len(),
            seconds,
            if use_hnsw { "hnsw" } else { "exact flat scan" }
        );
    }
    Ok(())
}

pub fn run(args: IndexArgs, home: &Path) -> Result<()> {
    let resolve = |dir: &Path| -> Result<PathBuf> { Ok(resolve_index_dir(home, dir)?) };
    match args.command {
        IndexCommand::List { json } => list(home, json),
        IndexCommand::Info { dir, json } => {
            let dir = resolve(&dir)?;
            info(&dir, json, &open(&dir, Verify::Never)?)
        }
        IndexCommand::Verify { dir, json } => {
            let dir = resolve(&dir)?;
            // Every shard, the HNSW graph and the query cache checksummed; the
            // first mismatch is the error.
            let (index, _) =
                verify_index(&dir).with_context(|| format!("verifying index {}", dir.display()))?;
            info(&dir, json, &index)
        }
        IndexCommand::Search {
            dir,
            query_file,
            row,
            k,
            encoder,
            hnsw,
            ef,
            json,
        } => search(
            &resolve(&dir)?,
            query_file.as_deref(),
            row,
            k,
            encoder.as_deref(),
            hnsw,
            ef,
            json,
        ),
        IndexCommand::Merge { dir } => {
            let dir = resolve(&dir)?;
            let progress = indicatif::ProgressBar::hidden();
            let manifest = quarry_engine::build::slices::merge_by_hand(&dir, &progress)
                .with_context(|| format!("merging the slices of {}", dir.display()))?;
            println!(
                "merged {} shards ({} rows) into {}; queries are encoded by the next `quarry build` or `eval` of this index",
                manifest.shards.len(),
                manifest.total_rows(),
                dir.display()
            );
            Ok(())
        }
        IndexCommand::Hnsw {
            dir,
            m,
            ef_construction,
            ef_search,
        } => {
            let index = open(&resolve(&dir)?, Verify::Once)?;
            let params = HnswParams {
                m,
                ef_construction,
                ef_search,
            };
            let report = build_hnsw(&index, params)?;
            println!(
                "built HNSW over {} rows in {:.1} s: M={m} ef_construction={ef_construction}; \
                 recall@10 vs exact at ef_search={ef_search}: {:.4} ({} stored rows as queries)",
                report.entry.rows,
                report.build_seconds,
                report.entry.recall_at_k,
                report.entry.recall_queries
            );
            Ok(())
        }
    }
}
