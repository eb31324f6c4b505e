//! `quarry index …`: list the dense indexes of the data home, and inspect,
//! verify and query one (a folder, or `NAME@DATASET` in the home; see
//! `index/FORMAT.md`) without a dataset or model (`quarry_engine::inspect`
//! does the work; this module prints).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::io::Write as _;

use quarry_engine::inspect::{
    build_hnsw, footprint, list_indexes, open_index, read_query_vectors, resolve_index_dir,
    search_vectors, stored_queries, verify_index, DenseIndex, HnswParams, ShardStatus, Verify,
};
use quarry_engine::run::format_score;
use quarry_engine::vector_io::{
    export_index, import_vectors, read_ids, ImportRequest, VectorFiles,
};

use crate::args::print_report;

/// Where `quarry index import DIR` writes: a path as given, or a bare `NAME@DATASET` (no
/// slash, no such folder here) in the data home's `dense/`, where `index list` and
/// `dense:NAME` look.
fn import_dir(home: &Path, arg: &Path) -> PathBuf {
    let name = arg.to_string_lossy();
    if !arg.exists() && name.contains('@') && !name.contains(['/', '\\']) {
        home.join("dense").join(name.as_ref())
    } else {
        arg.to_path_buf()
    }
}

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
    /// Exact (or HNSW) top-k for query vectors from a file, a stored row, or the index's
    /// stored queries
    #[command(after_help = "Examples:
  quarry index search all-minilm-l6-v2@nfcorpus --row 0 -k 5
  quarry index search DIR --query-file q.npy --query-ids q.txt -k 1000 --trec > run.trec
  quarry index search DIR --stored-queries -k 1000 --trec > run.trec   # an imported index
then: quarry eval --dataset nfcorpus --retriever run:run.trec")]
    Search(VectorSearchArgs),
    /// Write an index's vectors to a .npy matrix (f32, rows in order) and its ids to a
    /// text file (one per line)
    #[command(after_help = "Example:
  quarry index export all-minilm-l6-v2@nfcorpus --npy nfcorpus.npy --ids nfcorpus.ids.txt")]
    Export {
        dir: PathBuf,
        /// The .npy file to write
        #[arg(long, value_name = "FILE.npy")]
        npy: PathBuf,
        /// The ids file to write [default: the .npy path with .ids.txt]
        #[arg(long, value_name = "FILE")]
        ids: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Store vectors made elsewhere (a .npy matrix, f32 or f16, and one id per line) as a
    /// quarry index, with their queries for `index search --stored-queries`
    #[command(after_help = "Example:
  quarry index import my-e5@nfcorpus --npy corpus.npy --ids corpus.ids.txt \\
      --queries-npy queries.npy --query-ids queries.ids.txt
  quarry index search my-e5@nfcorpus --stored-queries -k 1000 --trec > run.trec
  quarry eval --dataset nfcorpus --retriever run:run.trec

DIR is a folder, or NAME@DATASET for <home>/dense/NAME@DATASET.")]
    Import {
        dir: PathBuf,
        /// The documents' vectors: .npy, 2-D, little-endian f32 or f16
        #[arg(long, value_name = "FILE.npy")]
        npy: PathBuf,
        /// The documents' ids, one per line, in the rows' order
        #[arg(long, value_name = "FILE")]
        ids: PathBuf,
        /// The queries' vectors (same dimension)
        #[arg(long, value_name = "FILE.npy", requires = "query_ids")]
        queries_npy: Option<PathBuf>,
        /// The queries' ids, one per line
        #[arg(long, value_name = "FILE", requires = "queries_npy")]
        query_ids: Option<PathBuf>,
        /// Storage type of the document vectors
        #[arg(long, value_enum, default_value = "f32")]
        store: crate::build::StoreArg,
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
    let footprint = footprint(dir)?;
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
            "simd": index.isa_name(), "footprint": footprint,
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
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!(
        "footprint        {:.1} MiB on disk: shards {:.1}, HNSW graph {:.1}, query cache {:.1}, records {:.1}",
        mib(footprint.total),
        mib(footprint.shards),
        mib(footprint.hnsw),
        mib(footprint.queries),
        mib(footprint.records)
    );
    println!(
        "search memory    shards mapped read-only ({:.1} MiB of shared, evictable page cache); \
         top-k heaps at most {:.0} MiB whatever the corpus ({} queries per scan at k=1000)",
        mib(footprint.mapped),
        mib(footprint.search_heap_budget),
        footprint.queries_per_scan_at_1000
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

/// `quarry index search`'s flags.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("queries").required(true).args(["query_file", "row", "stored_queries"])))]
pub struct VectorSearchArgs {
    dir: PathBuf,
    /// Queries: `.npy` (f32 or f16, 1-D or 2-D), `.json` (array or array of arrays) or raw
    /// little-endian f32
    #[arg(long)]
    query_file: Option<PathBuf>,
    /// Ids of the --query-file's queries, one per line [default: 0, 1, 2, ...]
    #[arg(long, value_name = "FILE", requires = "query_file")]
    query_ids: Option<PathBuf>,
    /// Use stored row N as the query (its doc id is the query id)
    #[arg(long)]
    row: Option<u64>,
    /// Every query vector stored with the index (its `queries/`: those `quarry index
    /// import --queries-npy` stored, or the queries a build encoded), by query id
    #[arg(long)]
    stored_queries: bool,
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
    #[arg(long, conflicts_with = "trec")]
    json: bool,
    /// Print a TREC run (`qid Q0 doc rank score quarry`) for `quarry eval --retriever run:FILE`
    #[arg(long)]
    trec: bool,
}

/// The query vectors a search was asked for, back to back, and their ids.
fn search_queries(index: &DenseIndex, args: &VectorSearchArgs) -> Result<(Vec<f32>, Vec<String>)> {
    if let Some(file) = &args.query_file {
        let vectors = read_query_vectors(file, index.dim())?;
        let n = vectors.len() / index.dim().max(1);
        let ids = match &args.query_ids {
            Some(path) => read_ids(path, n)?,
            None => (0..n).map(|i| i.to_string()).collect(),
        };
        return Ok((vectors, ids));
    }
    if let Some(row) = args.row {
        return Ok((index.row_vector(row)?, vec![index.doc_id(row)?.to_string()]));
    }
    Ok(stored_queries(index)?)
}

fn search(dir: &Path, args: &VectorSearchArgs) -> Result<()> {
    let index = open(dir, Verify::Once)?;
    let (queries, qids) = search_queries(&index, args)?;
    let (results, seconds) = search_vectors(
        &index,
        &queries,
        args.k,
        args.encoder.as_deref(),
        args.hnsw.then_some(args.ef),
    )?;
    let (json, use_hnsw, k) = (args.json, args.hnsw, args.k);
    let mut out = Vec::new();
    let mut stdout = std::io::stdout().lock();
    for (qid, hits) in qids.iter().zip(&results) {
        let mut list = Vec::new();
        for (rank, (row, doc, score)) in hits.iter().enumerate() {
            if json {
                list.push(serde_json::json!({"rank": rank + 1, "row": row, "doc_id": doc, "score": score}));
            } else if args.trec {
                writeln!(
                    stdout,
                    "{qid} Q0 {doc} {} {} quarry",
                    rank + 1,
                    format_score(f64::from(*score))
                )?;
            } else {
                writeln!(
                    stdout,
                    "{qid}\t{}\t{}\t{}\t{:.6}",
                    rank + 1,
                    row,
                    doc,
                    score
                )?;
            }
        }
        if json {
            out.push(serde_json::json!({"query": qid, "hits": list}));
        }
    }
    if json {
        let v = serde_json::json!({"method": if use_hnsw {"hnsw"} else {"flat"}, "k": k,
                                   "seconds": seconds, "results": out});
        writeln!(stdout, "{}", serde_json::to_string_pretty(&v)?)?;
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
        IndexCommand::Search(args) => search(&resolve(&args.dir)?, &args),
        IndexCommand::Export {
            dir,
            npy,
            ids,
            json,
        } => {
            let index = open(&resolve(&dir)?, Verify::Once)?;
            let ids = ids.unwrap_or_else(|| npy.with_extension("ids.txt"));
            let report = export_index(&index, &npy, &ids)?;
            print_report(json, &report, |out, r| {
                writeln!(
                    out,
                    "wrote {} rows x {} (f32) to {} and their ids to {} in {:.1} s",
                    r.rows,
                    r.dim,
                    r.npy.display(),
                    r.ids.display(),
                    r.seconds
                )
            })
        }
        IndexCommand::Import {
            dir,
            npy,
            ids,
            queries_npy,
            query_ids,
            store,
            json,
        } => {
            let dir = import_dir(home, &dir);
            let mut request = ImportRequest::new(dir, VectorFiles { npy, ids });
            request.queries = queries_npy
                .zip(query_ids)
                .map(|(npy, ids)| VectorFiles { npy, ids });
            request.store = store.element_type();
            let report = import_vectors(&request)?;
            print_report(json, &report, |out, r| {
                writeln!(
                    out,
                    "imported {} rows x {} into {} ({}{}{}) in {:.1} s; search it with \
                     quarry index search {} --stored-queries -k 1000 --trec",
                    r.rows,
                    r.dim,
                    r.dir.display(),
                    r.fingerprint,
                    r.queries
                        .map(|q| format!(", {q} queries"))
                        .unwrap_or_default(),
                    if r.resumed_rows > 0 {
                        format!(", resumed after {} rows", r.resumed_rows)
                    } else {
                        String::new()
                    },
                    r.seconds,
                    r.dir.display()
                )
            })
        }
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
