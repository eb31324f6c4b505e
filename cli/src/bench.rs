//! `quarry bench encode`: GPU encoding throughput, measured the way
//! `benches/encode_peer.py` measures transformers + PyTorch on the same
//! card (`quarry_engine::bench` measures; this module parses and prints).
//!
//! Two workloads:
//! - fixed shapes: `--batch` sequences of `--seq` tokens through Qwen2.5
//!   0.5B/1.5B/7B-shaped models with random weights drawn on the GPU;
//! - real documents: a dataset's corpus under the zero-shot prompt, tokenised
//!   and length-bucketed exactly as `quarry build` does, through a real model.
//!
//! Each run reports the first pass (kernel compilation and autotune of every
//! new shape) apart from the steady passes, tokens/s over real tokens, and
//! model FLOP utilisation: tokens/s × (2 × non-embedding parameters +
//! 4 × layers × sequence × hidden) over the bf16 matmul rate measured in the
//! same process. Each result is also one JSON line (`--json`).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use quarry_engine::bench::{parse_shapes, run_encode, BenchReport, EncodeBench};
use quarry_engine::device::{parse_device, ComputeDevice};

use crate::args::UsageError;
use crate::session::Session;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  quarry bench encode --device cuda --shapes 0.5b,1.5b,7b
  quarry bench encode --device cuda --shapes none --model models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --dataset nfcorpus")]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Encoding throughput on the GPU: fixed shapes with random weights, and real documents
    Encode(EncodeBenchArgs),
}

#[derive(Debug, Args)]
pub struct EncodeBenchArgs {
    /// Where to run: cuda or cuda:N
    #[arg(long, default_value = "cuda")]
    pub device: String,

    /// Model shapes with random weights: comma-separated among 0.5b, 1.5b, 7b; `none` skips
    #[arg(long, default_value = "0.5b,1.5b,7b")]
    pub shapes: String,

    /// Sequences per batch of the fixed-shape runs
    #[arg(long, default_value_t = 32)]
    pub batch: usize,

    /// Tokens per sequence of the fixed-shape runs
    #[arg(long, default_value_t = 512)]
    pub seq: usize,

    /// Timed batches per fixed shape (after one warm-up batch)
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,

    /// A real model (GGUF file, HF folder, or Hugging Face repo id ORG/NAME[@REV])
    /// for the real-document run
    #[arg(long, value_name = "PATH|ORG/NAME[@REV]")]
    pub model: Option<String>,

    /// Dataset whose corpus the real-document run encodes
    #[arg(long, default_value = "nfcorpus")]
    pub dataset: String,

    /// Documents of the corpus to encode, from its start (0: all)
    #[arg(long, default_value_t = 0)]
    pub docs: usize,

    /// Timed passes over the documents (after the first pass)
    #[arg(long, default_value_t = 2)]
    pub passes: usize,

    /// Also encode this many documents on the CPU in f32 and report the
    /// minimum cosine of the GPU embeddings against them (0: skip)
    #[arg(long, default_value_t = 0)]
    pub check: usize,

    /// Projection GEMMs: cublas, burn, or auto (cuBLAS when libcublas loads)
    #[arg(long, default_value = "auto")]
    pub gemm: String,

    /// Attention kernel: fused (quarry's flash attention), cublas, autotune, flash2, flash4,
    /// flash8, flash-unit, fallback (burn's), or best (time each on this run's head shapes at
    /// --batch x --seq first, keep the fastest)
    #[arg(long, default_value = "fused")]
    pub attention: String,

    /// One-pass CUDA kernels for residual add + RMSNorm, SwiGLU and bias/heads/RoPE (bf16):
    /// on or off
    #[arg(long, default_value = "on")]
    pub fused: String,

    /// Measure the bf16 matmul rate (8192^3) with these engines: cublas, burn; `none` skips
    #[arg(long, default_value = "cublas")]
    pub matmul_rate: String,

    /// Write the real documents' token ids and quarry's batch plan to this
    /// JSON file (the input of benches/encode_peer.py) and continue
    #[arg(long, value_name = "FILE")]
    pub dump: Option<PathBuf>,

    /// Only write `--dump` (tokenise), run nothing on the GPU
    #[arg(long, requires = "dump")]
    pub dump_only: bool,

    /// Append one JSON object per result to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

pub fn run(context: &Session, args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Encode(args) => encode(context, args),
    }
}

/// Results as `RESULT {json}` lines on stdout (and JSON lines in `--json`),
/// notes on stderr.
struct Printer {
    json: Option<std::fs::File>,
}

impl BenchReport for Printer {
    fn result(&mut self, value: serde_json::Value) -> quarry_engine::Result<()> {
        println!("RESULT {value}");
        if let Some(file) = &mut self.json {
            writeln!(file, "{value}").map_err(|e| quarry_engine::EngineError::Io {
                path: "--json".into(),
                error: e,
            })?;
        }
        Ok(())
    }

    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }
}

fn on_off(flag: &str, value: &str) -> Result<bool, UsageError> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(UsageError(format!("--{flag} `{other}`: on or off"))),
    }
}

fn encode(context: &Session, args: EncodeBenchArgs) -> Result<()> {
    let ComputeDevice::Cuda(device) = parse_device(&args.device)? else {
        return Err(
            UsageError("quarry bench encode measures the GPU: --device cuda[:N]".into()).into(),
        );
    };
    let bench = EncodeBench {
        device,
        shapes: parse_shapes(&args.shapes)?,
        batch: args.batch,
        seq: args.seq,
        rounds: args.rounds,
        model: match &args.model {
            Some(model) => Some(crate::args::resolve_model(model, Some(&context.registry))?.path),
            None => None,
        },
        dataset: args.dataset.clone(),
        docs: args.docs,
        passes: args.passes,
        check: args.check,
        gemm: args.gemm.clone(),
        attention: args.attention.clone(),
        fused: on_off("fused", &args.fused)?,
        matmul_rate: if args.matmul_rate == "none" {
            Vec::new()
        } else {
            args.matmul_rate
                .split(',')
                .map(|s| s.trim().to_string())
                .collect()
        },
        dump: args.dump.clone(),
        dump_only: args.dump_only,
    };
    let mut printer = Printer {
        json: match &args.json {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            ),
            None => None,
        },
    };
    run_encode(
        &context.catalog,
        Some(&context.registry),
        &bench,
        &mut printer,
    )?;
    Ok(())
}
