//! Build once, evaluate many: encodes a dataset's corpus with an embedding
//! model and streams the vectors into a dense index in the catalog
//! (`<home>/dense/<name>@<dataset>/`), plus a cache of query embeddings
//! next to it, so that every later evaluation searches without loading the
//! model.
//!
//! Place in the data flow: `dataset` (corpus, queries) -> [`encoder`]
//! (prompts, forward pass) -> [`chunks`] / [`devices`] -> [`shards`]
//! (`quarry_index::dense`: shards + manifest) -> [`crate::retriever`], which
//! reads it back into a run.
//!
//! - [`encoder`]: what encodes (spec) and its identity before loading.
//! - [`chunks`]: the corpus cut into chunks (progress, resumption, work units).
//! - [`devices`]: chunks spread over several GPUs, delivered in order.
//! - [`shards`]: chunks appended to the index writer, stored rows skipped.
//! - [`build_info`]: `build.json`, how the index was built.
//! - [`query_cache`]: `queries/`, the cached query embeddings.
//!
//! Identity: the manifest records the encoder fingerprint (weights, tokenizer,
//! prompt template, pooling, normalisation, max length, dtype) and the corpus
//! sha256. Re-running a build checks both *before* the model is loaded: the
//! same model on the same corpus is a no-op; a different one under the same
//! name is refused with a message naming what changed (pick another `--name`
//! or delete the folder): silently replacing an index would change numbers
//! other runs were compared against.
//!
//! Resumability: documents are encoded in fixed chunks of `chunk_docs` file
//! positions, each chunk sorted by length inside the encoder's batching, and
//! the writer publishes whole shards; a resumed build restarts the chunk that
//! holds the first missing row and skips the rows already stored, so its
//! batches (and therefore its bytes) equal those of an uninterrupted build.

pub mod build_info;
pub mod chunks;
pub mod devices;
pub mod encoder;
pub mod lock;
pub mod query_cache;
pub mod shards;
pub mod slices;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use quarry_encoder::prompt::TextKind;
use quarry_encoder::{ComputeDevice, EmbeddingModel};
use quarry_index::dense::{DenseIndex, HnswIndex, HnswParams, IndexSpec, Manifest};
/// Storage types of the vectors, and the shard size (the binary's `--store`, `--shard-rows`).
pub use quarry_index::dense::{ElementType, DEFAULT_SHARD_ROWS};

pub use build_info::{BuildInfo, BUILD_INFO_FILE};
pub use chunks::DEFAULT_CHUNK_DOCS;
pub use encoder::{
    default_index_name, precision_name, BuildMode, EncoderSpec, PreparedEncoder, CPU_BATCH_TOKENS,
};
pub use query_cache::{query_key, QueryCache, QUERY_CACHE_DIR};
pub use slices::Slice;

use crate::catalog::{ensure_parent, Catalog};
use crate::dataset::{Corpus, Dataset, Query};
use crate::error::{EngineError, Result};
use shards::ShardSink;

/// What `quarry build` asks for.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub encoder: EncoderSpec,
    /// Index name without the dataset; `None`: [`default_index_name`].
    pub name: Option<String>,
    pub store: ElementType,
    pub shard_rows: usize,
    pub chunk_docs: usize,
    pub hnsw: bool,
    pub command: Vec<String>,
    /// Further devices that encode corpus chunks alongside `encoder.device`
    /// (`--device cuda:all`): one model copy and one thread per device, the
    /// chunks written in corpus order by one writer. Queries stay on the first.
    pub extra_devices: Vec<ComputeDevice>,
    /// `--shard I/N`: encode slice I of N only (see [`slices`]).
    pub slice: Option<Slice>,
}

#[derive(Debug)]
pub struct BuildOutcome {
    pub dir: PathBuf,
    pub name: String,
    /// True when the index and the query cache were already current.
    pub up_to_date: bool,
    /// Rows found already stored by an interrupted build.
    pub resumed_rows: u64,
    pub docs_encoded: usize,
    pub tokens_encoded: usize,
    pub queries_encoded: usize,
    pub encode_time: Duration,
    pub total_time: Duration,
    pub fingerprint: String,
    /// A sharded build: slices finished (of `--shard`'s N) when this process
    /// was done with its own; `Some(N)` means this process merged them.
    pub slices_finished: Option<usize>,
}

impl BuildOutcome {
    fn new(dir: PathBuf, name: String, fingerprint: String) -> BuildOutcome {
        BuildOutcome {
            dir,
            name,
            up_to_date: false,
            resumed_rows: 0,
            docs_encoded: 0,
            tokens_encoded: 0,
            queries_encoded: 0,
            encode_time: Duration::ZERO,
            total_time: Duration::ZERO,
            fingerprint,
            slices_finished: None,
        }
    }
}

/// Builds (or resumes, or confirms) the dense index of `dataset`.
pub fn build_dense(
    catalog: &Catalog,
    dataset: &Dataset,
    request: &BuildRequest,
    progress: &ProgressBar,
) -> Result<BuildOutcome> {
    let started = Instant::now();
    let corpus = dataset.read_corpus()?;
    let queries = dataset.read_queries()?;
    let prepared = PreparedEncoder::prepare(&request.encoder)?;
    let name = index_name(request, &prepared);
    let dir = catalog.dense_dir(&name, &dataset.name);
    ensure_parent(&dir).map_err(|e| EngineError::io(&dir, e))?;
    let mut outcome = BuildOutcome::new(dir.clone(), name.clone(), prepared.fingerprint.clone());
    let mut model = None;
    if let Some(slice) = request.slice {
        let encoded = encode_slice(
            &prepared, &mut model, &corpus, dataset, &name, &dir, slice, request, progress,
        )?;
        if let Some((resumed, docs, tokens, time)) = encoded {
            outcome.resumed_rows = resumed;
            outcome.docs_encoded = docs;
            outcome.tokens_encoded = tokens;
            outcome.encode_time = time;
        }
    }
    // Held until the build returns: a second build of this index waits here, then
    // sees what the first one wrote.
    let mut lock = lock::BuildLock::open(&dir)?;
    let _held = lock.acquire(progress)?;
    let mut existing = Manifest::load(&dir).map_err(|e| stale_format(&dir, e))?;
    if let Some(slice) = request
        .slice
        .filter(|_| !existing.as_ref().is_some_and(|m| m.complete))
    {
        let finished = slice.count - slices::unfinished(&dir, slice.count)?.len();
        outcome.slices_finished = Some(finished);
        if finished < slice.count {
            // The last slice to finish merges and encodes the queries.
            outcome.total_time = started.elapsed();
            return Ok(outcome);
        }
        progress.set_message("merging the slices");
        existing = Some(slices::merge(&dir, slice.count, corpus.docs.len())?);
    }
    if let Some(manifest) = &existing {
        refuse_if_changed(manifest, &prepared, &corpus, request, &name, dataset, &dir)?;
    }
    let corpus_done = existing.as_ref().is_some_and(|m| m.complete)
        && BuildInfo::load(&dir)?.is_some()
        && (!request.hnsw || existing.as_ref().is_some_and(|m| m.hnsw.is_some()));
    let mut cache = QueryCache::open(&dir, &prepared.fingerprint)?;
    if corpus_done && cache.missing(&queries).is_empty() {
        outcome.up_to_date = outcome.docs_encoded == 0 && outcome.slices_finished.is_none();
        outcome.total_time = started.elapsed();
        return Ok(outcome);
    }

    let model = loaded(&mut model, &prepared, request)?;
    let encode_started = Instant::now();
    if !existing.as_ref().is_some_and(|m| m.complete) {
        let rows = (0, corpus.docs.len());
        let (resumed, tokens) =
            encode_corpus(&prepared, model, &corpus, &dir, rows, request, progress)?;
        outcome.resumed_rows = resumed;
        outcome.docs_encoded = corpus.docs.len() - resumed as usize;
        outcome.tokens_encoded = tokens;
    }
    if request.hnsw && Manifest::load(&dir)?.is_some_and(|m| m.hnsw.is_none()) {
        progress.set_message("building HNSW graph");
        let index = DenseIndex::open(&dir)?;
        HnswIndex::build(&index, HnswParams::default(), &[], 10)?;
    }
    outcome.encode_time += encode_started.elapsed();
    let encode_seconds = match BuildInfo::load(&dir)? {
        Some(old) if outcome.docs_encoded == 0 || outcome.slices_finished.is_some() => {
            old.encode_seconds
        }
        _ => outcome.encode_time.as_secs_f64(),
    };
    build_info(request, &prepared, dataset, &corpus, name, encode_seconds).store(&dir)?;
    progress.set_message("encoding queries");
    let all: Vec<&Query> = queries.iter().collect();
    outcome.queries_encoded = cache.ensure(&all, &prepared, Some(model))?;
    outcome.total_time = started.elapsed();
    Ok(outcome)
}

/// The model, loaded on first use (a sharded build may need it for its
/// slice, then again for the queries).
fn loaded<'m>(
    slot: &'m mut Option<EmbeddingModel>,
    prepared: &PreparedEncoder,
    request: &BuildRequest,
) -> Result<&'m EmbeddingModel> {
    if slot.is_none() {
        let model = prepared.load()?;
        if model.dimension() != prepared.dim {
            return Err(EngineError::Build {
                path: request.encoder.model.clone(),
                detail: format!(
                    "the model produces {} dimensions, its config says {}",
                    model.dimension(),
                    prepared.dim
                ),
            });
        }
        *slot = Some(model);
    }
    Ok(slot.as_ref().expect("loaded above"))
}

/// `build.json` of an index (or of a slice) of `dataset` built by `request`.
fn build_info(
    request: &BuildRequest,
    prepared: &PreparedEncoder,
    dataset: &Dataset,
    corpus: &Corpus,
    name: String,
    encode_seconds: f64,
) -> BuildInfo {
    BuildInfo {
        name,
        dataset: dataset.name.clone(),
        encoder: request.encoder.clone(),
        family: prepared.family.clone(),
        template_mode: prepared.template_mode.clone(),
        max_length: prepared.builder.max_length(),
        store: request.store,
        fingerprint: prepared.fingerprint.clone(),
        fingerprint_description: prepared.fingerprint_description.clone(),
        corpus_sha256: corpus.sha256.clone(),
        docs: corpus.docs.len(),
        dim: prepared.dim,
        command: request.command.clone(),
        encode_seconds,
    }
}

/// Encodes this process's slice of a sharded build into its own folder
/// (under the slice's lock), unless the index is complete already. Returns
/// (rows found stored, docs encoded, tokens, time) when it encoded.
#[allow(clippy::too_many_arguments)]
fn encode_slice(
    prepared: &PreparedEncoder,
    model: &mut Option<EmbeddingModel>,
    corpus: &Corpus,
    dataset: &Dataset,
    name: &str,
    dir: &Path,
    slice: Slice,
    request: &BuildRequest,
    progress: &ProgressBar,
) -> Result<Option<(u64, usize, usize, Duration)>> {
    if Manifest::load(dir)
        .map_err(|e| stale_format(dir, e))?
        .is_some_and(|m| m.complete)
    {
        return Ok(None);
    }
    let folder = slices::slice_dir(dir, slice);
    let mut lock = slices::slice_lock(dir, slice)?;
    let _held = lock.acquire(progress)?;
    let stored = Manifest::load(&folder).map_err(|e| stale_format(&folder, e))?;
    if let Some(manifest) = &stored {
        // A slice left by a build of another encoder, corpus or storage type
        // is refused here, before it is counted as finished or merged.
        refuse_if_changed(manifest, prepared, corpus, request, name, dataset, &folder)?;
        if manifest.complete && BuildInfo::load(&folder)?.is_some() {
            return Ok(None);
        }
    }
    let rows = quarry_index::dense::slice_rows(
        corpus.docs.len(),
        request.shard_rows,
        slice.index,
        slice.count,
    );
    let model = loaded(model, prepared, request)?;
    let started = Instant::now();
    let (resumed, tokens) =
        encode_corpus(prepared, model, corpus, &folder, rows, request, progress)?;
    let time = started.elapsed();
    let info = build_info(
        request,
        prepared,
        dataset,
        corpus,
        name.to_string(),
        time.as_secs_f64(),
    );
    info.store(&folder)?;
    Ok(Some((
        resumed,
        rows.1 - rows.0 - resumed as usize,
        tokens,
        time,
    )))
}

/// The index name: `--name`, else the model's (plus the adapter's, since a
/// different adapter builds a different index).
fn index_name(request: &BuildRequest, prepared: &PreparedEncoder) -> String {
    request.name.clone().unwrap_or_else(|| {
        let name = default_index_name(&request.encoder, &prepared.template_mode);
        match request.encoder.lora.as_deref().and_then(Path::file_name) {
            Some(adapter) => format!("{name}-lora-{}", adapter.to_string_lossy()),
            None => name,
        }
    })
}

/// An index of this name built from another encoder, corpus or storage type
/// is refused, naming what changed.
fn refuse_if_changed(
    manifest: &Manifest,
    prepared: &PreparedEncoder,
    corpus: &Corpus,
    request: &BuildRequest,
    name: &str,
    dataset: &Dataset,
    dir: &Path,
) -> Result<()> {
    let mut changed: Vec<String> = provenance_differences(manifest, &prepared.fingerprint, &corpus.sha256)
        .map(|(field, stored, now)| match field {
            Provenance::Encoder => format!(
                "the encoder (fingerprint {stored} -> {now}: model, tokenizer, prompt, pooling, max length or dtype)"
            ),
            Provenance::Corpus => format!("the corpus (sha256 {stored} -> {now})"),
        })
        .collect();
    if manifest.element_type != request.store {
        changed.push(format!(
            "the storage type ({} -> {})",
            manifest.element_type.name(),
            request.store.name()
        ));
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(EngineError::Build {
        path: dir.to_path_buf(),
        detail: format!(
            "an index named `{name}` was built for {} with a different {}; \
             build under another name (--name) or delete that folder first",
            dataset.name,
            changed.join(" and ")
        ),
    })
}

/// Encodes the documents of corpus rows `[start, end)` not yet stored in
/// the index at `dir` with `model` (and a copy on each of the request's
/// further devices) and finishes it. Returns (rows found already stored,
/// tokens encoded).
///
/// Chunks are cut over the whole corpus whatever the rows asked for, so a
/// document is encoded in the same batch by a slice as by a whole build: a
/// chunk that straddles the rows' ends is encoded whole and the writer keeps
/// only the rows inside.
fn encode_corpus(
    prepared: &PreparedEncoder,
    model: &EmbeddingModel,
    corpus: &Corpus,
    dir: &Path,
    (start, end): (usize, usize),
    request: &BuildRequest,
    progress: &ProgressBar,
) -> Result<(u64, usize)> {
    let spec = IndexSpec {
        encoder_fingerprint: prepared.fingerprint.clone(),
        corpus_checksum: corpus.sha256.clone(),
        dim: prepared.dim,
        element_type: request.store,
        shard_rows: request.shard_rows,
    };
    let mut extra_models = Vec::with_capacity(request.extra_devices.len());
    for &device in &request.extra_devices {
        progress.set_message(format!("loading the model on {device:?}"));
        extra_models.push(prepared.load_on(device)?);
    }
    let models: Vec<&EmbeddingModel> = std::iter::once(model).chain(&extra_models).collect();
    let models = models.as_slice();
    let mut sink = ShardSink::open(dir, spec, corpus, (start, end), progress)?;
    let done = sink.rows_done();
    let plan: Vec<(usize, usize)> = chunks::chunk_plan(
        start + done,
        corpus.docs.len(),
        request.chunk_docs,
        models.len(),
    )
    .into_iter()
    .filter(|&(chunk_start, chunk_end)| chunk_start < end && chunk_end > start + done)
    .collect();
    let encode_chunk =
        |model: &EmbeddingModel, &(start, end): &(usize, usize), done: &dyn Fn(usize)| {
            let docs = &corpus.docs[start..end];
            let titles: Vec<&str> = docs.iter().map(|d| d.title.as_str()).collect();
            let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
            let inputs = prepared.inputs(TextKind::Passage, Some(&titles), &texts)?;
            let chunk_tokens = inputs.iter().map(Vec::len).sum::<usize>();
            Ok::<_, EngineError>((model.embed_reporting(&inputs, done)?, chunk_tokens))
        };
    if let [model] = models {
        for chunk in &plan {
            // One device: the bar moves with each forward batch inside the chunk (the
            // chunk's rows count as stored when the sink writes them).
            let before = progress.position();
            let inside = |n: usize| progress.set_position(before + n as u64);
            let (vectors, chunk_tokens) = encode_chunk(model, chunk, &inside)?;
            sink.write_chunk(*chunk, vectors, chunk_tokens)?;
        }
    } else {
        let complete = devices::encode_in_order(
            models,
            &plan,
            &|model: &EmbeddingModel, chunk: &(usize, usize)| encode_chunk(model, chunk, &|_| {}),
            |chunk, (vectors, chunk_tokens)| sink.write_chunk(*chunk, vectors, chunk_tokens),
        )?;
        if !complete {
            return Err(EngineError::Build {
                path: dir.to_path_buf(),
                detail: "an encoding thread stopped before the corpus was encoded".into(),
            });
        }
    }
    let tokens = sink.tokens();
    sink.finish()?;
    Ok((done as u64, tokens))
}

/// What a dense index's vectors came from, as its manifest records it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Provenance {
    Encoder,
    Corpus,
}

/// Which of the manifest's encoder fingerprint and corpus checksum differ from
/// `fingerprint` and `corpus_sha256`, with both values shortened for messages.
pub(crate) fn provenance_differences<'a>(
    manifest: &'a Manifest,
    fingerprint: &'a str,
    corpus_sha256: &'a str,
) -> impl Iterator<Item = (Provenance, &'a str, &'a str)> {
    [
        (
            Provenance::Encoder,
            manifest.encoder_fingerprint.as_str(),
            fingerprint,
        ),
        (
            Provenance::Corpus,
            manifest.corpus_checksum.as_str(),
            corpus_sha256,
        ),
    ]
    .into_iter()
    .filter(|(_, stored, other)| stored != other)
    .map(|(field, stored, other)| (field, short(stored), short(other)))
}

/// The first 12 hex digits of a hash, as messages show it.
pub(crate) fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// An index the catalog cannot read (older or newer format): say what to do.
pub(crate) fn stale_format(dir: &Path, err: quarry_index::IndexError) -> EngineError {
    match err {
        quarry_index::IndexError::UnsupportedVersion { .. } => EngineError::Build {
            path: dir.to_path_buf(),
            detail: format!(
                "{err}; this index was written by another version of quarry: delete the folder and build it again"
            ),
        },
        other => other.into(),
    }
}
