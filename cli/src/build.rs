//! `quarry build`: encode a dataset's corpus (and its queries) once into a
//! dense index in the catalog; see `quarry_engine::build` for identity,
//! resumption and the query cache.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};
use quarry_engine::build::{
    build_dense, BuildMode, BuildRequest, ElementType, EncoderSpec, Slice, DEFAULT_CHUNK_DOCS,
    DEFAULT_SHARD_ROWS,
};
use quarry_engine::dataset::Dataset;

use crate::args::{devices_and_precision, resolve_model, DtypeArg, UsageError};
use crate::progress::Progress;
use crate::session::Session;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// sentence-embedding for BERT-family models, zero-shot for decoders
    Auto,
    /// PromptReps-style prompt, last prompt token's state
    ZeroShot,
    /// RepLLaMA-style prefixes + EOS
    Supervised,
    /// sentence-transformers: the text as is, mean pooling
    SentenceEmbedding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreArg {
    F32,
    F16,
    Bf16,
}

impl StoreArg {
    pub fn element_type(self) -> ElementType {
        match self {
            StoreArg::F32 => ElementType::F32,
            StoreArg::F16 => ElementType::F16,
            StoreArg::Bf16 => ElementType::Bf16,
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  quarry build --model models/all-MiniLM-L6-v2 --dataset nfcorpus
  quarry build --model models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --dataset cosqa --device cuda --dtype bf16
  quarry build --model Qwen/Qwen2.5-7B --dataset fiqa --device cuda:all --hnsw
  quarry build --model M --dataset msmarco-dev-small --shard 0/8    # one of 8 workers (docs/scale.md)")]
pub struct BuildArgs {
    #[command(flatten)]
    pub encoder: EncoderFlags,

    /// Registry name, or a path to any BEIR folder
    #[arg(long, value_name = "NAME|DIR")]
    pub dataset: String,

    /// Storage type of the vectors in the index
    #[arg(long, value_enum, default_value = "f32")]
    pub store: StoreArg,

    /// Also build an HNSW graph (exact flat search needs none)
    #[arg(long)]
    pub hnsw: bool,

    /// Index name; the folder is <home>/dense/NAME@<dataset> [default: the
    /// model's file/folder name, lowercased, plus the mode unless sentence-embedding]
    #[arg(long)]
    pub name: Option<String>,

    /// Encode only slice I of N (I from 0): N processes, on one machine or on many
    /// sharing the data home, each run `--shard $I/$N`; the last to finish merges
    /// the slices into the index, which equals a one-process build byte for byte
    /// (docs/scale.md: Slurm and Kubernetes)
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Slice>,

    /// Rows per shard file (the unit of resumption)
    #[arg(long, env = "QUARRY_SHARD_ROWS", hide = true, default_value_t = DEFAULT_SHARD_ROWS)]
    pub shard_rows: usize,

    /// Documents encoded per chunk (progress and resumption granularity)
    #[arg(long, env = "QUARRY_CHUNK_DOCS", hide = true, default_value_t = DEFAULT_CHUNK_DOCS)]
    pub chunk_docs: usize,
}

/// What picks and runs an encoder: the flags `quarry build` and `quarry encode` share.
#[derive(Debug, Args)]
pub struct EncoderFlags {
    /// A GGUF file, an HF model folder (e.g. models/all-MiniLM-L6-v2), or a Hugging Face
    /// repo id, ORG/NAME[@REVISION] or hf:ORG/NAME[@REVISION], fetched into the HF cache
    /// (HF_HOME, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE); a local path of the same spelling wins
    #[arg(long, value_name = "PATH|ORG/NAME[@REV]")]
    pub model: String,

    /// Prompting and pooling
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: ModeArg,

    /// Where to run the model: cpu, cuda, cuda:N, or cuda:all to split the corpus
    /// over every visible GPU (cuda needs a build with --features cuda)
    #[arg(long, default_value = "cpu")]
    pub device: String,

    /// Compute dtype (bf16/f16 on cuda only)
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DtypeArg,

    /// Maximum tokens per text, prompt included [default: the model's
    /// sentence-transformers max_seq_length, else 512]
    #[arg(long, value_parser = clap::value_parser!(u32).range(8..))]
    pub max_len: Option<u32>,

    /// Upper bound on batch size × padded length per forward pass
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_tokens: Option<u32>,

    /// A LoRA adapter folder (PEFT format, e.g. from `quarry train`) merged into the
    /// model's weights; part of the encoder's identity
    #[arg(long, value_name = "DIR")]
    pub lora: Option<PathBuf>,

    /// Text put right before each query, e.g. 'query: ' (E5) or BGE's instruction; part of
    /// the encoder's identity
    #[arg(long, value_name = "TEXT")]
    pub query_prompt: Option<String>,

    /// Text put right before each document, e.g. 'passage: ' (E5)
    #[arg(long, value_name = "TEXT")]
    pub doc_prompt: Option<String>,

    /// Take the query and document prompts from the model's
    /// config_sentence_transformers.json (`prompts.query`, `prompts.passage`), as MTEB
    /// runs sentence-transformers models; --query-prompt/--doc-prompt win
    #[arg(long)]
    pub st_prompts: bool,
}

impl EncoderFlags {
    /// The encoder these flags name, on the first of their devices, and the further
    /// devices (`cuda:all`). The GPU tuning cache in `home` is set up first: counting
    /// devices already fixes cubecl's configuration.
    pub fn spec(
        &self,
        registry: &quarry_engine::registry::Registry,
        home: &std::path::Path,
    ) -> Result<(EncoderSpec, Vec<quarry_engine::device::ComputeDevice>)> {
        // Kernel tuning persists in the data home, so the next run starts fast.
        if self.device.starts_with("cuda") {
            if let Some(dir) = quarry_engine::device::use_gpu_tuning_cache(home) {
                eprintln!("GPU kernel tuning cache: {}", dir.display());
            }
        }
        let (devices, precision) = devices_and_precision(&self.device, self.dtype)?;
        let model = resolve_model(&self.model, Some(registry))?;
        let (st_query, st_doc) = if self.st_prompts {
            EncoderSpec::sentence_transformers_prompts(&model.path)?
        } else {
            (None, None)
        };
        let spec = EncoderSpec {
            model: model.path,
            hub: model.hub,
            mode: match self.mode {
                ModeArg::Auto => BuildMode::Auto,
                ModeArg::ZeroShot => BuildMode::ZeroShot,
                ModeArg::Supervised => BuildMode::Supervised,
                ModeArg::SentenceEmbedding => BuildMode::SentenceEmbedding,
            },
            precision,
            device: devices[0],
            max_length: self.max_len.map(|n| n as usize),
            batch_tokens: self.batch_tokens.map(|n| n as usize),
            lora: self.lora.clone(),
            query_instruction: self.query_prompt.clone().or(st_query),
            doc_instruction: self.doc_prompt.clone().or(st_doc),
        };
        Ok((spec, devices[1..].to_vec()))
    }
}

pub fn run(context: &Session, args: BuildArgs) -> Result<()> {
    if args.shard_rows == 0 || args.chunk_docs == 0 {
        return Err(UsageError("shard rows and chunk docs must be positive".into()).into());
    }
    if let Some(name) = &args.name {
        if name.is_empty() || name.contains(['/', '\\', '@']) {
            return Err(UsageError(format!(
                "--name `{name}`: no slashes or @ (the folder is NAME@<dataset>)"
            ))
            .into());
        }
    }
    let dataset = Dataset::resolve(&args.dataset, Some(&context.registry))?;
    let (encoder, extra_devices) = args
        .encoder
        .spec(&context.registry, &context.catalog.home)?;
    let mut command: Vec<String> = std::env::args().collect();
    if let Some(first) = command.first_mut() {
        *first = "quarry".into();
    }
    let request = BuildRequest {
        encoder,
        name: args.name.clone(),
        store: args.store.element_type(),
        shard_rows: args.shard_rows,
        chunk_docs: args.chunk_docs,
        hnsw: args.hnsw,
        command,
        extra_devices,
        slice: args.shard,
    };
    let progress = Progress::new("encoding", "docs", false);
    let outcome =
        build_dense(&context.catalog, &dataset, &request, progress.bar()).with_context(|| {
            format!(
                "building a dense index of {} with {}",
                dataset.name, args.encoder.model
            )
        })?;
    progress.finish();
    let name = outcome.name.clone();
    if let (Some(slice), Some(finished)) = (args.shard, outcome.slices_finished) {
        if finished < slice.count {
            println!(
                "slice {slice} of dense:{name} for {}: {} docs encoded in {:.1}s; {finished} of {} slices finished \
                 (the last to finish merges them into {})",
                dataset.name,
                outcome.docs_encoded,
                outcome.encode_time.as_secs_f64(),
                slice.count,
                outcome.dir.display()
            );
            return Ok(());
        }
        println!(
            "all {} slices finished: merged into {}",
            slice.count,
            outcome.dir.display()
        );
    }
    if outcome.up_to_date {
        println!(
            "up to date: dense:{name} for {} ({}) — nothing to encode ({:.2}s)",
            dataset.name,
            outcome.dir.display(),
            outcome.total_time.as_secs_f64()
        );
    } else {
        let secs = outcome.encode_time.as_secs_f64().max(1e-9);
        if outcome.resumed_rows > 0 {
            println!("resumed after {} rows already stored", outcome.resumed_rows);
        }
        println!(
            "built dense:{name} for {} in {}: {} docs encoded in {:.1}s ({:.1} docs/s, {:.0} tokens/s), {} queries encoded; total {:.1}s",
            dataset.name,
            outcome.dir.display(),
            outcome.docs_encoded,
            secs,
            outcome.docs_encoded as f64 / secs,
            outcome.tokens_encoded as f64 / secs,
            outcome.queries_encoded,
            outcome.total_time.as_secs_f64()
        );
    }
    println!(
        "evaluate with: quarry eval --dataset {} --retriever dense:{name}",
        args.dataset
    );
    Ok(())
}
