//! `quarry train`: LoRA contrastive fine-tuning of a Qwen2 encoder (RepLLaMA recipe) on
//! Tevatron-format training groups; see `quarry_engine::train` for the loop, determinism
//! and checkpoints. The output folder is a PEFT adapter for `quarry build --lora`.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use quarry_engine::train::{gib, train, StepProgress, TrainJob, TrainReport, TrainSettings};

use crate::args::{devices_and_precision, resolve_model, DtypeArg, UsageError};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  quarry train --model models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --train nfcorpus-train.jsonl --output adapter/
  quarry train --model M --train T.jsonl --output adapter/ --device cuda --dtype bf16 --lr 5e-4 --seed 7
  quarry train --model M --train T.jsonl --output adapter/ --time-limit 3000 --resume   # in time-limited jobs
then: quarry build --model M --lora adapter/ --mode supervised --dataset nfcorpus")]
pub struct TrainArgs {
    /// Base model: a GGUF file, an HF Qwen2 folder, or a Hugging Face repo id
    /// (ORG/NAME[@REVISION] or hf:ORG/NAME[@REVISION], fetched into the HF cache)
    #[arg(long, value_name = "PATH|ORG/NAME[@REV]")]
    pub model: String,

    /// Training groups, Tevatron JSONL (query, positive_passages, negative_passages);
    /// `quarry mine` writes them
    #[arg(long = "train", value_name = "FILE.jsonl")]
    pub train_file: PathBuf,

    /// The corpus (BEIR corpus.jsonl, .gz/.zst too) whose documents Tevatron v2 groups
    /// name by id (`quarry mine --format tevatron-v2`)
    #[arg(long, value_name = "FILE")]
    pub corpus: Option<PathBuf>,

    /// Output folder: PEFT adapter (adapter_model.safetensors, adapter_config.json),
    /// checkpoint.safetensors, training_summary.json
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,

    /// cpu, cuda or cuda:N (cuda needs a build with --features cuda)
    #[arg(long, default_value = "cpu")]
    pub device: String,

    /// Compute dtype of the base model (bf16/f16 on cuda only; adapters stay f32)
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DtypeArg,

    /// Dtype the LoRA branches compute in on a bf16/f16 base: f32 (as PEFT) or model (the
    /// base's dtype: cheaper, coarser adapter gradients)
    #[arg(long, value_enum, default_value = "f32")]
    pub adapter_dtype: AdapterDtypeArg,

    /// LoRA rank
    #[arg(long, default_value_t = 32)]
    pub rank: usize,

    /// LoRA alpha (the update is scaled by alpha / rank)
    #[arg(long, default_value_t = 64.0)]
    pub alpha: f64,

    /// Dropout on the LoRA branches' input
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f64,

    /// Adapted projections, comma-separated
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    )]
    pub targets: Vec<String>,

    /// Peak learning rate (AdamW)
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,

    /// AdamW decoupled weight decay
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,

    /// Clip the global gradient norm to this (0: no clipping)
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,

    /// InfoNCE temperature on cosine scores
    #[arg(long, default_value_t = 0.01)]
    pub temperature: f64,

    /// Passages per query: its positive and group-size - 1 hard negatives
    #[arg(long, default_value_t = 8)]
    pub group_size: usize,

    /// Queries per optimiser step (global batch)
    #[arg(long, default_value_t = 32)]
    pub batch: usize,

    /// Queries per forward/backward pass; gradients accumulate up to --batch
    /// (in-batch negatives come from the same micro-batch)
    #[arg(long, default_value_t = 8)]
    pub micro_batch: usize,

    /// Fraction of the steps with linearly rising learning rate
    #[arg(long, default_value_t = 0.1)]
    pub warmup_ratio: f64,

    #[arg(long, default_value_t = 1)]
    pub epochs: usize,

    /// Cap on optimiser steps (the schedule is laid out over this many)
    #[arg(long)]
    pub max_steps: Option<usize>,

    /// Maximum query tokens, prompt and EOS included
    #[arg(long, default_value_t = 32)]
    pub query_max_len: usize,

    /// Maximum passage tokens, prompt and EOS included
    #[arg(long, default_value_t = 192)]
    pub passage_max_len: usize,

    /// Seed of data order, negative sampling, LoRA init and dropout
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Write a checkpoint every N steps (0: only at the end)
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: usize,

    /// Continue from the output folder's checkpoint (same settings)
    #[arg(long)]
    pub resume: bool,

    /// Stop after N steps of the schedule with a checkpoint, as if interrupted
    #[arg(long, value_name = "N")]
    pub stop_after: Option<usize>,

    /// Stop with a checkpoint after the first step that ends past this many seconds (for
    /// time-limited jobs; continue later with --resume)
    #[arg(long, value_name = "SECONDS")]
    pub time_limit: Option<f64>,

    /// Run even when the memory plan (weights, LoRA state, one micro-batch's activations)
    /// exceeds the device's free memory; by default such a run is refused before loading
    #[arg(long)]
    pub no_memory_check: bool,

    /// Frozen projection GEMMs on CUDA in bf16/f16: cublas, burn (burn's matmul), or auto
    /// (cuBLAS when libcublas loads)
    #[arg(long, default_value = "auto")]
    pub gemm: String,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AdapterDtypeArg {
    F32,
    Model,
}

/// Progress as stderr lines, for logs where a bar would not draw.
struct LogLines;

impl TrainReport for LogLines {
    fn first_step_micro_batch(&self, step: usize, micro_batch: usize, seconds: f64) {
        // The first step compiles and tunes the GPU kernels: a line per micro-batch shows it
        // moving.
        eprintln!(
            "step {step} micro-batch {micro_batch}: forward and backward after {seconds:.1} s"
        );
    }

    fn step_done(&self, p: &StepProgress) {
        eprintln!(
            "step {}/{}: loss {:.4}, lr {:.2e}, {:.1} s, {:.0} tokens/s so far",
            p.step, p.total_steps, p.loss, p.learning_rate, p.seconds, p.tokens_per_second
        );
    }
}

/// `home` is the data home: its `gpu-tuning` folder holds the kernel tuning cache that
/// `quarry build` also uses, so training shapes are tuned once per machine.
pub fn run(args: TrainArgs, home: &std::path::Path) -> Result<()> {
    if args.device == "cuda:all" {
        return Err(UsageError(
            "--device cuda:all: training runs on one device (cuda or cuda:N)".into(),
        )
        .into());
    }
    let (devices, precision) = devices_and_precision(&args.device, args.dtype)?;
    let device = devices[0];
    #[cfg(feature = "cuda")]
    if args.device.starts_with("cuda") {
        quarry_engine::device::gpu::select_gemm(&args.gemm)?;
    }
    if args.device.starts_with("cuda") {
        if let Some(dir) = quarry_engine::device::use_gpu_tuning_cache(home) {
            eprintln!("GPU kernel tuning cache: {}", dir.display());
        }
    }
    // The study's checkpoints by name ([[model]] of the built-in registry), as build takes them.
    let registry = quarry_engine::registry::Registry::built_in().ok();
    let model = resolve_model(&args.model, registry.as_ref())?;
    let job = TrainJob {
        model: model.path,
        train_file: args.train_file.clone(),
        corpus: args.corpus.clone(),
        output: args.output.clone(),
        device,
        settings: TrainSettings {
            rank: args.rank,
            alpha: args.alpha,
            dropout: args.dropout,
            target_modules: args.targets.clone(),
            learning_rate: args.lr,
            weight_decay: args.weight_decay,
            max_grad_norm: args.max_grad_norm,
            temperature: args.temperature,
            group_size: args.group_size,
            batch_size: args.batch,
            micro_batch: args.micro_batch.min(args.batch),
            warmup_ratio: args.warmup_ratio,
            epochs: args.epochs,
            max_steps: args.max_steps,
            query_max_len: args.query_max_len,
            passage_max_len: args.passage_max_len,
            seed: args.seed,
            precision,
            adapter_f32: args.adapter_dtype == AdapterDtypeArg::F32,
        },
        checkpoint_every: args.checkpoint_every,
        resume: args.resume,
        stop_after: args.stop_after,
        time_limit: args.time_limit,
        memory_check: !args.no_memory_check,
    };
    let progress = Progress::bar_only("training", "steps");
    // No terminal (a batch job's log): a line per step instead of the bar.
    let report: &dyn TrainReport = if progress.draws() {
        progress.bar()
    } else {
        &LogLines
    };
    let summary = train(&job, report).with_context(|| {
        format!(
            "training LoRA adapters for {} on {}",
            args.model,
            args.train_file.display()
        )
    })?;
    progress.finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    let state = if summary.finished {
        format!("adapter written to {}", summary.output.display())
    } else {
        format!(
            "stopped with a checkpoint; continue with --resume (output {})",
            summary.output.display()
        )
    };
    println!(
        "step {}/{}{}: mean loss {}, last {}; {} tokens in {:.1}s ({:.0} tokens/s); {state}",
        summary.step,
        summary.total_steps,
        summary
            .resumed_from_step
            .map(|s| format!(" (resumed at {s})"))
            .unwrap_or_default(),
        summary.mean_loss.map_or("-".into(), |l| format!("{l:.4}")),
        summary.last_loss.map_or("-".into(), |l| format!("{l:.4}")),
        summary.tokens,
        summary.seconds,
        summary.tokens_per_second
    );
    let plan = &summary.memory_plan;
    println!(
        "memory plan: {} ({} weights, {} LoRA state, {} activations of a micro-batch)",
        gib(plan.total),
        gib(plan.weights),
        gib(plan.adapter_state),
        gib(plan.activations)
    );
    if summary.finished {
        println!(
            "evaluate with: quarry build --model {} --lora {} --mode supervised --dataset D",
            args.model,
            args.output.display()
        );
    }
    Ok(())
}
