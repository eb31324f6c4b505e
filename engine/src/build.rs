//! Build once, evaluate many: encodes a dataset's corpus with an embedding
//! model and streams the vectors into a dense index in the catalog
//! (`<home>/dense/<name>@<dataset>/`), plus a cache of query embeddings
//! next to it, so that every later evaluation searches without loading the
//! model.
//!
//! Place in the data flow: `dataset` (corpus, queries) -> `quarry_encoder`
//! (prompts, forward pass) -> `quarry_index::dense` (shards + manifest);
//! [`retrieve_dense`] reads it back into a [`Run`].
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

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use quarry_encoder::fingerprint::{
    encoder_fingerprint, fingerprint_description, FingerprintInputs,
};
use quarry_encoder::lora::{LoraAdapter, LoraMergedSource};
use quarry_encoder::prompt::{detect_family, PoolAt, PromptBuilder, PromptTemplate, TextKind};
use quarry_encoder::weights::{open_weights, Weights};
use quarry_encoder::{ComputeDevice, EmbeddingModel, EncodeOptions, ModelConfig, Precision};
use quarry_index::dense::{DenseIndex, ElementType, IndexSpec, IndexWriter, Manifest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dataset::{Corpus, Dataset, Query};
use crate::error::{EngineError, Result};
use crate::retrieve::{assemble_run, Catalog};
use crate::run::{Run, RunHit};

/// Sub-folder of an index directory holding the query-embedding cache.
pub const QUERY_CACHE_DIR: &str = "queries";
/// File of an index directory recording how it was built.
pub const BUILD_INFO_FILE: &str = "build.json";
/// Default upper bound on batch size × padded length on the CPU.
pub const CPU_BATCH_TOKENS: usize = 4096;
/// Documents encoded per chunk (the unit of progress and of resumption).
pub const DEFAULT_CHUNK_DOCS: usize = 2048;

/// Which prompts and pooling to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildMode {
    /// sentence-embedding for BERT-family models, zero-shot for decoders.
    Auto,
    ZeroShot,
    Supervised,
    SentenceEmbedding,
}

impl BuildMode {
    pub fn template_mode(self, family: &str) -> &'static str {
        match self {
            BuildMode::Auto if family == "bert" => "sentence-embedding",
            BuildMode::Auto | BuildMode::ZeroShot => "zero-shot",
            BuildMode::Supervised => "supervised",
            BuildMode::SentenceEmbedding => "sentence-embedding",
        }
    }
}

/// What encodes the texts: everything but the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderSpec {
    /// A GGUF file or an HF model folder.
    pub model: PathBuf,
    pub mode: BuildMode,
    pub precision: Precision,
    pub device: ComputeDevice,
    /// Maximum sequence length in tokens (prompt included); `None`: the model's
    /// sentence-transformers `max_seq_length`, else 512, capped by its positions.
    pub max_length: Option<usize>,
    /// Upper bound on batch size × padded length; `None`: the encoder's default.
    pub batch_tokens: Option<usize>,
    /// A LoRA adapter folder (PEFT format) merged into the weights at load time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<PathBuf>,
}

/// Name of the compute dtype as the fingerprint spells it.
pub fn precision_name(precision: Precision) -> &'static str {
    match precision {
        Precision::F32 => "f32",
        Precision::BF16 => "bf16",
        Precision::F16 => "f16",
    }
}

/// An encoder whose identity is known but whose weights are not loaded yet:
/// opening weights (mmap), tokenizer and template and hashing the weight
/// files (cached in sidecars) is cheap; the forward pass needs [`Self::load`].
pub struct PreparedEncoder {
    pub spec: EncoderSpec,
    weights: Weights,
    adapter: Option<LoraAdapter>,
    config: ModelConfig,
    pub builder: PromptBuilder,
    pub options: EncodeOptions,
    pub family: String,
    pub template_mode: String,
    pub fingerprint: String,
    pub fingerprint_description: String,
    pub dim: usize,
}

impl PreparedEncoder {
    pub fn prepare(spec: &EncoderSpec) -> Result<PreparedEncoder> {
        let weights = open_weights(&spec.model)?;
        let config_json = weights.config_json()?;
        let config = ModelConfig::from_hf_json(&config_json.to_string(), &spec.model)?;
        let chat_template = weights.chat_template()?;
        let family = detect_family(&config_json, chat_template.as_deref()).ok_or_else(|| {
            EngineError::Build {
                path: spec.model.clone(),
                detail: "its chat template is of a format quarry has no prompt template for".into(),
            }
        })?;
        let template_mode = spec.mode.template_mode(family);
        let template = PromptTemplate::load(family, template_mode)?;
        let positions = config_json
            .get("max_position_embeddings")
            .and_then(|v| v.as_u64())
            .unwrap_or(512) as usize;
        let st_max = if spec.model.is_dir() {
            std::fs::read_to_string(spec.model.join("sentence_bert_config.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v.get("max_seq_length").and_then(|m| m.as_u64()))
                .map(|m| m as usize)
        } else {
            None
        };
        let max_length = spec.max_length.or(st_max).unwrap_or(512).min(positions);
        let tokenizer = weights.tokenizer()?;
        let builder = PromptBuilder::new(template, tokenizer, max_length, None)?;
        let dim = config_json
            .get("hidden_size")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| EngineError::Build {
                path: spec.model.clone(),
                detail: "the model configuration has no hidden_size".into(),
            })? as usize;
        let mut options = EncodeOptions::last_token();
        options.pooling = match builder.template().pooling() {
            quarry_encoder::prompt::Pooling::Last => quarry_encoder::Pooling::LastToken,
            quarry_encoder::prompt::Pooling::Mean => quarry_encoder::Pooling::Mean,
            quarry_encoder::prompt::Pooling::Cls => quarry_encoder::Pooling::Cls,
        };
        options.normalize = builder.normalize();
        options.precision = spec.precision;
        options.batch.max_batch_tokens = match (spec.batch_tokens, spec.device) {
            (Some(tokens), _) => tokens.max(1),
            // Smaller batches run faster on the CPU backend (less memory traffic and
            // page faulting): MiniLM on 300 nfcorpus docs, 2 cores: 87.6 s at 16,384
            // tokens per batch, 75.4 s at 4,096. The GPU keeps the encoder's default.
            (None, ComputeDevice::Cpu) => CPU_BATCH_TOKENS,
            (None, ComputeDevice::Cuda(_)) => options.batch.max_batch_tokens,
        };
        let adapter = match &spec.lora {
            Some(dir) => Some(LoraAdapter::load(dir)?),
            None => None,
        };
        let inputs = FingerprintInputs {
            model_files: weights.model_files(),
            adapter_files: spec
                .lora
                .as_deref()
                .map(LoraAdapter::files)
                .unwrap_or_default(),
            tokenizer: builder.tokenizer(),
            template: builder.template(),
            normalize: builder.normalize(),
            max_length,
            dtype: precision_name(spec.precision),
        };
        let fingerprint = encoder_fingerprint(&inputs)?.0;
        let fingerprint_description = fingerprint_description(&inputs)?;
        Ok(PreparedEncoder {
            spec: spec.clone(),
            weights,
            adapter,
            config,
            builder,
            options,
            family: family.to_string(),
            template_mode: template_mode.to_string(),
            fingerprint,
            fingerprint_description,
            dim,
        })
    }

    /// The architecture and hyper-parameters read from the model files.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Loads the weights onto the device (the expensive part).
    pub fn load(&self) -> Result<EmbeddingModel> {
        self.load_on(self.spec.device)
    }

    /// Loads the weights onto another device than the spec's (multi-GPU builds).
    pub fn load_on(&self, device: ComputeDevice) -> Result<EmbeddingModel> {
        let base = self.weights.as_source();
        let merged;
        let source: &dyn quarry_encoder::TensorSource = match &self.adapter {
            Some(adapter) => {
                merged = LoraMergedSource::new(base, adapter)?;
                &merged
            }
            None => base,
        };
        Ok(EmbeddingModel::load(
            &self.config,
            source,
            self.options,
            device,
        )?)
    }

    /// Token ids of queries, prompt applied (for callers that encode queries
    /// themselves, e.g. the `quarry search` shell holding a loaded model).
    pub fn query_inputs(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        self.inputs(TextKind::Query, None, texts)
    }

    /// Token ids for texts of one kind; the template's pooling position
    /// always agrees with the encoder's pooling (last / first token / mean).
    fn inputs(
        &self,
        kind: TextKind,
        titles: Option<&[&str]>,
        texts: &[&str],
    ) -> Result<Vec<Vec<u32>>> {
        let built = self.builder.build_batch(kind, titles, texts)?;
        Ok(built
            .into_iter()
            .map(|input| {
                debug_assert!(matches!(input.pool, PoolAt::Mean | PoolAt::Token(_)));
                input.ids
            })
            .collect())
    }
}

/// Default index name: the model's file or folder name, lowercased, plus the
/// mode when it is not the model's natural one (sentence-embedding for BERT).
pub fn default_index_name(model: &Path, template_mode: &str) -> String {
    let stem = if model.is_dir() {
        model.file_name()
    } else {
        model.file_stem()
    }
    .map(|s| s.to_string_lossy().to_ascii_lowercase())
    .unwrap_or_else(|| "model".into());
    if template_mode == "sentence-embedding" {
        stem
    } else {
        format!("{stem}-{template_mode}")
    }
}

/// `<home>/dense/<name>@<dataset>`.
pub fn dense_dir(catalog: &Catalog, name: &str, dataset_name: &str) -> PathBuf {
    catalog
        .home
        .join("dense")
        .join(format!("{}@{}", safe(name), safe(dataset_name)))
}

fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// How an index was built (`build.json`): shown by `quarry compare` when an
/// index is missing for another dataset, and used to re-encode new queries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildInfo {
    pub name: String,
    pub dataset: String,
    pub encoder: EncoderSpec,
    pub family: String,
    pub template_mode: String,
    pub max_length: usize,
    pub store: ElementType,
    pub fingerprint: String,
    pub fingerprint_description: String,
    pub corpus_sha256: String,
    pub docs: usize,
    pub dim: usize,
    /// The command line that built it (argv), to print for another dataset.
    pub command: Vec<String>,
    pub encode_seconds: f64,
}

impl BuildInfo {
    pub fn load(dir: &Path) -> Result<Option<BuildInfo>> {
        let path = dir.join(BUILD_INFO_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EngineError::io(&path, e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| EngineError::DataCorruption {
                file: path,
                detail: format!("not a quarry build record: {e}"),
            })
    }

    fn store(&self, dir: &Path) -> Result<()> {
        let path = dir.join(BUILD_INFO_FILE);
        let json = serde_json::to_vec_pretty(self).expect("serialises");
        crate::run::write_atomically(&path, |out| {
            out.write_all(&json)?;
            out.write_all(b"\n")
        })
    }

    /// The build command for another dataset: `--dataset`'s value replaced.
    pub fn command_for(&self, dataset: &str) -> String {
        let mut args = self.command.clone();
        let mut i = 0;
        while i < args.len() {
            if args[i] == "--dataset" && i + 1 < args.len() {
                args[i + 1] = dataset.to_string();
            } else if let Some(rest) = args[i].strip_prefix("--dataset=") {
                let _ = rest;
                args[i] = format!("--dataset={dataset}");
            }
            i += 1;
        }
        args.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

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
    let name = request.name.clone().unwrap_or_else(|| {
        let name = default_index_name(&request.encoder.model, &prepared.template_mode);
        // A different adapter builds a different index: name it after the adapter folder.
        match request.encoder.lora.as_deref().and_then(Path::file_name) {
            Some(adapter) => format!("{name}-lora-{}", adapter.to_string_lossy()),
            None => name,
        }
    });
    let dir = dense_dir(catalog, &name, &dataset.name);
    let existing = Manifest::load(&dir).map_err(|e| stale_format(&dir, e))?;
    if let Some(m) = &existing {
        let mut changed = Vec::new();
        if m.encoder_fingerprint != prepared.fingerprint {
            changed.push(format!(
                "the encoder (fingerprint {} -> {}: model, tokenizer, prompt, pooling, max length or dtype)",
                short(&m.encoder_fingerprint),
                short(&prepared.fingerprint)
            ));
        }
        if m.corpus_checksum != corpus.sha256 {
            changed.push(format!(
                "the corpus (sha256 {} -> {})",
                short(&m.corpus_checksum),
                short(&corpus.sha256)
            ));
        }
        if m.element_type != request.store {
            changed.push(format!(
                "the storage type ({} -> {})",
                m.element_type.name(),
                request.store.name()
            ));
        }
        if !changed.is_empty() {
            return Err(EngineError::Build {
                path: dir.clone(),
                detail: format!(
                    "an index named `{name}` was built for {} with a different {}; \
                     build under another name (--name) or delete that folder first",
                    dataset.name,
                    changed.join(" and ")
                ),
            });
        }
    }
    let corpus_done = existing.as_ref().is_some_and(|m| m.complete)
        && BuildInfo::load(&dir)?.is_some()
        && (!request.hnsw || existing.as_ref().is_some_and(|m| m.hnsw.is_some()));
    let mut cache = QueryCache::open(&dir)?;
    let queries_missing = cache.missing(&queries).len();
    if corpus_done && queries_missing == 0 {
        return Ok(BuildOutcome {
            dir,
            name,
            up_to_date: true,
            resumed_rows: 0,
            docs_encoded: 0,
            tokens_encoded: 0,
            queries_encoded: 0,
            encode_time: Duration::ZERO,
            total_time: started.elapsed(),
            fingerprint: prepared.fingerprint,
        });
    }

    crate::retrieve::ensure_parent(&dir).map_err(|e| EngineError::io(&dir, e))?;
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
    let encode_started = Instant::now();
    let mut outcome = BuildOutcome {
        dir: dir.clone(),
        name: name.clone(),
        up_to_date: false,
        resumed_rows: 0,
        docs_encoded: 0,
        tokens_encoded: 0,
        queries_encoded: 0,
        encode_time: Duration::ZERO,
        total_time: Duration::ZERO,
        fingerprint: prepared.fingerprint.clone(),
    };
    if !existing.as_ref().is_some_and(|m| m.complete) {
        let mut extra_models = Vec::with_capacity(request.extra_devices.len());
        for &device in &request.extra_devices {
            progress.set_message(format!("loading the model on {device:?}"));
            extra_models.push(prepared.load_on(device)?);
        }
        let models: Vec<&EmbeddingModel> =
            std::iter::once(&model).chain(extra_models.iter()).collect();
        let (resumed, tokens) =
            encode_corpus(&prepared, &models, &corpus, &dir, request, progress)?;
        outcome.resumed_rows = resumed;
        outcome.docs_encoded = corpus.docs.len() - resumed as usize;
        outcome.tokens_encoded = tokens;
    }
    if request.hnsw && Manifest::load(&dir)?.is_some_and(|m| m.hnsw.is_none()) {
        progress.set_message("building HNSW graph");
        let index = DenseIndex::open(&dir)?;
        quarry_index::dense::HnswIndex::build(
            &index,
            quarry_index::dense::HnswParams::default(),
            &[],
            10,
        )?;
    }
    outcome.encode_time = encode_started.elapsed();
    let info = BuildInfo {
        name: name.clone(),
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
        encode_seconds: match BuildInfo::load(&dir)? {
            Some(old) if outcome.docs_encoded == 0 => old.encode_seconds,
            _ => outcome.encode_time.as_secs_f64(),
        },
    };
    info.store(&dir)?;
    progress.set_message("encoding queries");
    let all: Vec<&Query> = queries.iter().collect();
    outcome.queries_encoded = cache.ensure(&all, &prepared, Some(&model))?;
    outcome.total_time = started.elapsed();
    Ok(outcome)
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// An index the catalog cannot read (older or newer format): say what to do.
fn stale_format(dir: &Path, err: quarry_index::IndexError) -> EngineError {
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

/// Encodes the documents not yet stored and finishes the index. Returns
/// (rows found already stored, tokens encoded).
///
/// With several models (one per device) each takes the next unencoded chunk
/// as it frees up, and the chunks are appended in corpus order, so the
/// index layout does not depend on which device finished first.
fn encode_corpus(
    prepared: &PreparedEncoder,
    models: &[&EmbeddingModel],
    corpus: &Corpus,
    dir: &Path,
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
    let mut writer = IndexWriter::create_or_resume(dir, spec)?;
    let done = writer.rows_done() as usize;
    let total = corpus.docs.len();
    if done > total {
        return Err(EngineError::DataCorruption {
            file: dir.to_path_buf(),
            detail: format!("the index holds {done} rows, the corpus has {total} documents"),
        });
    }
    progress.set_length(total as u64);
    progress.set_position(done as u64);
    progress.reset_eta();
    let mut chunk = request.chunk_docs.max(1);
    if models.len() > 1 {
        // Enough chunks that every device stays busy to the end.
        chunk = chunk.min(total.div_ceil(8 * models.len()).max(64));
    }
    // Chunks start on multiples of the chunk size; the first one skips the
    // rows an interrupted build already stored.
    let chunks: Vec<(usize, usize)> = ((done / chunk) * chunk..total)
        .step_by(chunk)
        .map(|start| (start, (start + chunk).min(total)))
        .collect();
    let started = Instant::now();
    let mut tokens = 0usize;
    let mut write_chunk =
        |start: usize, end: usize, vectors: Vec<Vec<f32>>, chunk_tokens: usize| {
            let skip = done.saturating_sub(start);
            let ids: Vec<&str> = corpus.docs[start + skip..end]
                .iter()
                .map(|d| d.id.as_str())
                .collect();
            let flat: Vec<f32> = vectors[skip..].iter().flatten().copied().collect();
            writer.push_batch(&ids, &flat)?;
            tokens += chunk_tokens;
            progress.set_position(end as u64);
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            progress.set_message(format!("{:.0} tokens/s", tokens as f64 / secs));
            Ok::<(), EngineError>(())
        };
    let encode_chunk = |model: &EmbeddingModel, start: usize, end: usize| {
        let docs = &corpus.docs[start..end];
        let titles: Vec<&str> = docs.iter().map(|d| d.title.as_str()).collect();
        let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
        let inputs = prepared.inputs(TextKind::Passage, Some(&titles), &texts)?;
        let chunk_tokens = inputs.iter().map(Vec::len).sum::<usize>();
        Ok::<_, EngineError>((model.embed(&inputs)?, chunk_tokens))
    };
    if let [model] = models {
        for &(start, end) in &chunks {
            let (vectors, chunk_tokens) = encode_chunk(model, start, end)?;
            write_chunk(start, end, vectors, chunk_tokens)?;
        }
    } else {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let next = AtomicUsize::new(0);
        let abort = AtomicBool::new(false);
        std::thread::scope(|scope| -> Result<()> {
            let (sender, receiver) = std::sync::mpsc::channel();
            for model in models {
                let sender = sender.clone();
                let (next, abort, chunks, encode_chunk) = (&next, &abort, &chunks, &encode_chunk);
                scope.spawn(move || loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= chunks.len() || abort.load(Ordering::SeqCst) {
                        break;
                    }
                    let (start, end) = chunks[index];
                    let result = encode_chunk(model, start, end);
                    let failed = result.is_err();
                    if sender.send((index, result)).is_err() || failed {
                        break;
                    }
                });
            }
            drop(sender);
            let mut pending = std::collections::BTreeMap::new();
            let mut next_to_write = 0;
            for (index, result) in receiver {
                let result = result.inspect_err(|_| abort.store(true, Ordering::SeqCst));
                pending.insert(index, result?);
                while let Some((vectors, chunk_tokens)) = pending.remove(&next_to_write) {
                    let (start, end) = chunks[next_to_write];
                    write_chunk(start, end, vectors, chunk_tokens)
                        .inspect_err(|_| abort.store(true, Ordering::SeqCst))?;
                    next_to_write += 1;
                }
            }
            if next_to_write != chunks.len() {
                return Err(EngineError::Build {
                    path: dir.to_path_buf(),
                    detail: "an encoding thread stopped before the corpus was encoded".into(),
                });
            }
            Ok(())
        })?;
    }
    writer.finish()?;
    Ok((done as u64, tokens))
}

/// Query embeddings cached next to an index, keyed by query id and a hash of
/// the query text: a changed or new query is re-encoded, nothing else. Stored
/// as a small dense index of its own (`queries/`, same format and encoder
/// fingerprint), rewritten as a whole when entries are added.
pub struct QueryCache {
    dir: PathBuf,
    vectors: HashMap<String, Vec<f32>>,
}

/// Cache key of a query: id, tab, first 16 hex digits of the text's sha256.
pub fn query_key(query: &Query) -> String {
    let hash = hex::encode(Sha256::digest(query.text.as_bytes()));
    format!("{}\t{}", query.id, &hash[..16])
}

impl QueryCache {
    /// Reads `<index>/queries/` (an absent cache is empty).
    pub fn open(index_dir: &Path) -> Result<QueryCache> {
        let dir = index_dir.join(QUERY_CACHE_DIR);
        let mut vectors = HashMap::new();
        if Manifest::load(&dir)
            .map_err(|e| stale_format(&dir, e))?
            .is_some_and(|m| m.complete)
        {
            let index = DenseIndex::open(&dir)?;
            for row in 0..index.rows() {
                vectors.insert(index.doc_id(row)?.to_string(), index.row_vector(row)?);
            }
        }
        Ok(QueryCache { dir, vectors })
    }

    pub fn missing<'q>(&self, queries: &'q [Query]) -> Vec<&'q Query> {
        queries
            .iter()
            .filter(|q| !self.vectors.contains_key(&query_key(q)))
            .collect()
    }

    pub fn get(&self, query: &Query) -> Option<&[f32]> {
        self.vectors.get(&query_key(query)).map(Vec::as_slice)
    }

    /// Encodes the queries not cached yet (loading the model when `model` is
    /// `None` and something is missing) and rewrites the cache. Returns how
    /// many were encoded.
    pub fn ensure(
        &mut self,
        queries: &[&Query],
        prepared: &PreparedEncoder,
        model: Option<&EmbeddingModel>,
    ) -> Result<usize> {
        let mut seen = std::collections::HashSet::new();
        let missing: Vec<&Query> = queries
            .iter()
            .copied()
            .filter(|q| !self.vectors.contains_key(&query_key(q)) && seen.insert(query_key(q)))
            .collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let loaded;
        let model = match model {
            Some(m) => m,
            None => {
                loaded = prepared.load()?;
                &loaded
            }
        };
        let texts: Vec<&str> = missing.iter().map(|q| q.text.as_str()).collect();
        let inputs = prepared.inputs(TextKind::Query, None, &texts)?;
        let vectors = model.embed(&inputs)?;
        for (q, v) in missing.iter().zip(vectors) {
            self.vectors.insert(query_key(q), v);
        }
        self.store(prepared)?;
        Ok(missing.len())
    }

    fn store(&self, prepared: &PreparedEncoder) -> Result<()> {
        let mut keys: Vec<&String> = self.vectors.keys().collect();
        keys.sort();
        let mut listing = Sha256::new();
        for k in &keys {
            listing.update(k.as_bytes());
            listing.update(b"\n");
        }
        let tmp = self.dir.with_extension("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
        }
        let mut writer = IndexWriter::create_or_resume(
            &tmp,
            IndexSpec {
                encoder_fingerprint: prepared.fingerprint.clone(),
                corpus_checksum: format!("queries:{}", hex::encode(listing.finalize())),
                dim: prepared.dim,
                element_type: ElementType::F32,
                shard_rows: keys.len().max(1),
            },
        )?;
        let flat: Vec<f32> = keys.iter().flat_map(|k| self.vectors[*k].clone()).collect();
        writer.push_batch(&keys, &flat)?;
        writer.finish()?;
        let old = self.dir.with_extension("old");
        if self.dir.exists() {
            if old.exists() {
                std::fs::remove_dir_all(&old).map_err(|e| EngineError::io(&old, e))?;
            }
            std::fs::rename(&self.dir, &old).map_err(|e| EngineError::io(&self.dir, e))?;
        }
        std::fs::rename(&tmp, &self.dir).map_err(|e| EngineError::io(&tmp, e))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| EngineError::io(&old, e))?;
        }
        Ok(())
    }
}

/// Where `dense:NAME` lives for a dataset: `<name>@<dataset>`, else a
/// folder named exactly `NAME`. `Err` carries the message for a missing index,
/// with the build command when a sibling index of that name records one.
pub fn resolve_dense_dir(
    catalog: &Catalog,
    name: &str,
    dataset_name: &str,
) -> std::result::Result<PathBuf, String> {
    let dir = dense_dir(catalog, name, dataset_name);
    if dir.join("manifest.json").exists() {
        return Ok(dir);
    }
    let exact = catalog.home.join("dense").join(safe(name));
    if exact.join("manifest.json").exists() {
        return Ok(exact);
    }
    let prefix = format!("{}@", safe(name));
    let sibling = std::fs::read_dir(catalog.home.join("dense"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .find_map(|e| BuildInfo::load(&e.path()).ok().flatten());
    Err(match sibling {
        Some(info) => format!(
            "no dense index `{name}` for {dataset_name} in {}; build it with: {}",
            catalog.home.display(),
            info.command_for(dataset_name)
        ),
        None => format!(
            "no dense index `{name}` for {dataset_name} in {}; build it with: \
             quarry build --model PATH --dataset {dataset_name} --name {name}",
            catalog.home.display()
        ),
    })
}

/// A dense run and what it took.
#[derive(Debug)]
pub struct DenseRetrieval {
    pub run: Run,
    pub index_dir: PathBuf,
    pub queries_encoded: usize,
    pub open_time: Duration,
    pub search_time: Duration,
    pub self_hits_removed: usize,
}

/// Exact flat search of a built index with cached query embeddings (the
/// model is loaded only for queries the cache lacks).
pub fn retrieve_dense(
    catalog: &Catalog,
    dataset: &Dataset,
    name: &str,
    corpus_sha256: &str,
    queries: &[&Query],
    k: usize,
) -> Result<DenseRetrieval> {
    let started = Instant::now();
    let dir =
        resolve_dense_dir(catalog, name, &dataset.name).map_err(|detail| EngineError::Build {
            path: catalog.home.join("dense"),
            detail,
        })?;
    let manifest = Manifest::load(&dir)
        .map_err(|e| stale_format(&dir, e))?
        .ok_or_else(|| EngineError::Build {
            path: dir.clone(),
            detail: "no manifest.json".into(),
        })?;
    let info = BuildInfo::load(&dir)?;
    if !manifest.complete || info.is_none() {
        return Err(EngineError::Build {
            path: dir.clone(),
            detail: "the build of this index did not finish; run its quarry build command again to resume it".into(),
        });
    }
    let info = info.expect("checked");
    if manifest.corpus_checksum != corpus_sha256 {
        return Err(EngineError::Build {
            path: dir.clone(),
            detail: format!(
                "the index was built from another corpus (sha256 {}, now {}); rebuild it: {}",
                short(&manifest.corpus_checksum),
                short(corpus_sha256),
                info.command_for(&dataset.name)
            ),
        });
    }
    let index = DenseIndex::open(&dir)?;
    let mut cache = QueryCache::open(&dir)?;
    let mut queries_encoded = 0;
    if queries.iter().any(|q| cache.get(q).is_none()) {
        let mut spec = info.encoder.clone();
        if spec.precision == Precision::F32 {
            spec.device = ComputeDevice::Cpu;
        }
        let prepared = PreparedEncoder::prepare(&spec)?;
        if prepared.fingerprint != manifest.encoder_fingerprint {
            return Err(EngineError::Build {
                path: dir.clone(),
                detail: format!(
                    "new queries need encoding, but the model at {} no longer matches the index's encoder; rebuild: {}",
                    spec.model.display(),
                    info.command_for(&dataset.name)
                ),
            });
        }
        queries_encoded = cache.ensure(queries, &prepared, None)?;
    }
    let open_time = started.elapsed();
    let started = Instant::now();
    let mut flat = Vec::with_capacity(queries.len() * index.dim());
    for q in queries {
        flat.extend_from_slice(cache.get(q).expect("ensured above"));
    }
    let hits = if queries.is_empty() {
        Vec::new()
    } else {
        index.search(&manifest.encoder_fingerprint, &flat, k)?
    };
    let mut lists = Vec::with_capacity(hits.len());
    for list in hits {
        let mut run_hits = Vec::with_capacity(list.len());
        for hit in list {
            run_hits.push(RunHit {
                doc_id: index.doc_id(hit.row)?.to_string(),
                score: f64::from(hit.score),
            });
        }
        lists.push(run_hits);
    }
    let (run, self_hits_removed) = assemble_run(queries, lists, dataset.remove_self);
    Ok(DenseRetrieval {
        run,
        index_dir: dir,
        queries_encoded,
        open_time,
        search_time: started.elapsed(),
        self_hits_removed,
    })
}
