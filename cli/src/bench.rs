//! `quarry bench encode`: GPU encoding throughput (issue #6), measured the
//! way `benches/encode_peer.py` measures transformers + PyTorch on the same
//! card, so `benches/encode_gpu.sh` can print both side by side.
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

// Without the `cuda` feature only tokenising (`--dump-only`) runs; the GPU
// measurement code is compiled out and what feeds it goes unused.
#![cfg_attr(not(feature = "cuda"), allow(dead_code, unused_imports))]

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use quarry_encoder::prompt::TextKind;
use quarry_encoder::{
    BatchPolicy, ComputeDevice, EmbeddingModel, EncodeOptions, Pooling, Precision, Qwen2Config,
};
use quarry_engine::build::{BuildMode, EncoderSpec, PreparedEncoder};
use quarry_engine::dataset::Dataset;
use serde_json::json;

use crate::args::UsageError;
use crate::Session;

#[derive(Debug, Args)]
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

    /// A real model (GGUF file or HF folder) for the real-document run
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,

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

/// The published Qwen2.5 shapes (config.json of Qwen/Qwen2.5-{0.5B,1.5B,7B}).
pub fn qwen2_5_shape(name: &str) -> Option<Qwen2Config> {
    let (vocab, hidden, inter, layers, heads, kv_heads, tied) = match name {
        "0.5b" => (151_936, 896, 4864, 24, 14, 2, true),
        "1.5b" => (151_936, 1536, 8960, 28, 12, 2, true),
        "7b" => (152_064, 3584, 18944, 28, 28, 4, false),
        _ => return None,
    };
    Some(Qwen2Config {
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: inter,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim: hidden / heads,
        max_position_embeddings: 32_768,
        rope_theta: 1e6,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: tied,
    })
}

/// Parameters outside the token embedding (and LM head): the ones every token multiplies.
pub fn non_embedding_params(config: &Qwen2Config) -> u64 {
    let h = config.hidden_size as u64;
    let q = (config.num_attention_heads * config.head_dim) as u64;
    let kv = (config.num_key_value_heads * config.head_dim) as u64;
    let inter = config.intermediate_size as u64;
    let attention = h * q + q + 2 * (h * kv + kv) + q * h;
    let mlp = 3 * h * inter;
    let norms = 2 * h;
    config.num_hidden_layers as u64 * (attention + mlp + norms) + h
}

/// Model FLOPs of one sequence of `length` tokens: 2 × params per token plus
/// 4 × layers × length × hidden per token for attention (scores and values).
pub fn sequence_flops(config: &Qwen2Config, length: usize) -> f64 {
    let per_token = 2.0 * non_embedding_params(config) as f64
        + 4.0 * (config.num_hidden_layers * length * config.hidden_size) as f64;
    per_token * length as f64
}

struct Reporter {
    json: Option<std::fs::File>,
}

impl Reporter {
    fn emit(&mut self, value: serde_json::Value) -> Result<()> {
        println!("RESULT {value}");
        if let Some(file) = &mut self.json {
            writeln!(file, "{value}").context("writing the --json file")?;
        }
        Ok(())
    }
}

fn encode(context: &Session, args: EncodeBenchArgs) -> Result<()> {
    let process_started = Instant::now();
    let device = crate::build::parse_device(&args.device)?;
    let ComputeDevice::Cuda(index) = device else {
        return Err(
            UsageError("quarry bench encode measures the GPU: --device cuda[:N]".into()).into(),
        );
    };
    let shapes: Vec<(String, Qwen2Config)> = if args.shapes == "none" {
        Vec::new()
    } else {
        args.shapes
            .split(',')
            .map(|name| {
                qwen2_5_shape(name.trim())
                    .map(|config| (name.trim().to_string(), config))
                    .ok_or_else(|| {
                        UsageError(format!("--shapes: unknown shape `{name}` (0.5b, 1.5b, 7b)"))
                    })
            })
            .collect::<Result<_, _>>()?
    };
    let mut reporter = Reporter {
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

    // Real documents are tokenised first, so `--dump` exists even if the GPU part fails.
    let real = match &args.model {
        Some(model) => Some(prepare_real(context, &args, model, index)?),
        None => None,
    };
    if args.dump_only {
        return Ok(());
    }
    let tuning_dir = context.catalog.home.join("gpu-tuning");
    gpu::run(
        &args,
        index,
        &shapes,
        real,
        &mut reporter,
        process_started,
        &tuning_dir,
    )
}

/// A real model and the token ids of the documents it encodes.
struct RealRun {
    prepared: PreparedEncoder,
    sequences: Vec<Vec<u32>>,
    model_name: String,
}

fn prepare_real(
    context: &Session,
    args: &EncodeBenchArgs,
    model: &std::path::Path,
    index: usize,
) -> Result<RealRun> {
    let started = Instant::now();
    let spec = EncoderSpec {
        model: model.to_path_buf(),
        mode: BuildMode::ZeroShot,
        precision: Precision::BF16,
        device: ComputeDevice::Cuda(index),
        max_length: None,
        batch_tokens: None,
        lora: None,
    };
    let prepared = PreparedEncoder::prepare(&spec)?;
    let dataset = Dataset::resolve(&args.dataset, context.registry.as_ref())?;
    let corpus = dataset.read_corpus()?;
    let count = if args.docs == 0 {
        corpus.docs.len()
    } else {
        args.docs.min(corpus.docs.len())
    };
    let docs = &corpus.docs[..count];
    let titles: Vec<&str> = docs.iter().map(|d| d.title.as_str()).collect();
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    let sequences: Vec<Vec<u32>> = prepared
        .builder
        .build_batch(TextKind::Passage, Some(&titles), &texts)?
        .into_iter()
        .map(|input| input.ids)
        .collect();
    let tokens: usize = sequences.iter().map(Vec::len).sum();
    eprintln!(
        "real documents: {count} of {} ({tokens} tokens, max {}), tokenised in {:.1} s",
        dataset.name,
        sequences.iter().map(Vec::len).max().unwrap_or(0),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.dump {
        let policy = prepared.options.batch;
        let max_length = prepared.builder.max_length();
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let plan: Vec<serde_json::Value> = policy
            .plan(&lengths, max_length)
            .into_iter()
            .map(|batch| json!({"indices": batch.indices, "padded_length": batch.padded_length}))
            .collect();
        let dump = json!({
            "dataset": dataset.name,
            "model": model.display().to_string(),
            "prompt": "zero-shot",
            "max_length": max_length,
            "batch_policy": {
                "length_multiple": policy.length_multiple,
                "max_batch_tokens": policy.max_batch_tokens,
                "max_batch_size": policy.max_batch_size,
            },
            "sequences": sequences,
            "quarry_batches": plan,
        });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, dump.to_string())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("token ids and batch plan written to {}", path.display());
    }
    let model_name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(RealRun {
        prepared,
        sequences,
        model_name,
    })
}

#[cfg(not(feature = "cuda"))]
mod gpu {
    use super::*;

    pub(super) fn run(
        _: &EncodeBenchArgs,
        _: usize,
        _: &[(String, Qwen2Config)],
        _: Option<RealRun>,
        _: &mut Reporter,
        _: Instant,
        _: &std::path::Path,
    ) -> Result<()> {
        bail!("this quarry was built without GPU support; rebuild with `--features cuda`")
    }
}

#[cfg(feature = "cuda")]
mod gpu {
    use super::*;
    use quarry_encoder::cuda::{self, AttentionKernel, GemmEngine};
    use quarry_encoder::encode::cosine_similarity as cosine;

    pub(super) fn run(
        args: &EncodeBenchArgs,
        index: usize,
        shapes: &[(String, Qwen2Config)],
        real: Option<RealRun>,
        reporter: &mut Reporter,
        process_started: Instant,
        tuning_dir: &std::path::Path,
    ) -> Result<()> {
        crate::build::select_gemm(&args.gemm)?;
        let fused = match args.fused.as_str() {
            "on" => true,
            "off" => false,
            other => return Err(UsageError(format!("--fused `{other}`: on or off")).into()),
        };
        cuda::set_fused_kernels(fused);
        let attention: AttentionKernel = if args.attention == "best" {
            let mut heads: Vec<(usize, usize)> = shapes
                .iter()
                .map(|(_, c)| (c.num_attention_heads, c.head_dim))
                .chain(
                    real.as_ref()
                        .and_then(qwen2_config_of)
                        .map(|c| (c.num_attention_heads, c.head_dim)),
                )
                .collect();
            heads.sort();
            heads.dedup();
            pick_attention(index, args.batch, args.seq, &heads, reporter)?
        } else {
            args.attention.parse().map_err(UsageError)?
        };
        cuda::set_attention_kernel(attention);
        let gemm_name = match cuda::gemm_engine() {
            GemmEngine::Cublas => "cublas",
            _ => "burn",
        };
        // Tuning persists where `quarry build` keeps it (<home>/gpu-tuning).
        let tuning = quarry_encoder::encode::use_gpu_tuning_cache(tuning_dir);
        eprintln!(
            "gemm {gemm_name}, attention {attention}, fused kernels {}, tuning cache {}",
            args.fused,
            tuning.map_or("(configured elsewhere)".to_string(), |d| d
                .display()
                .to_string())
        );

        let mut rates = serde_json::Map::new();
        let mut reference_rate = None;
        if args.matmul_rate != "none" {
            for engine_name in args.matmul_rate.split(',') {
                let engine = match engine_name.trim() {
                    "cublas" if cuda::cublas_available() => GemmEngine::Cublas,
                    "cublas" => {
                        eprintln!("matmul rate: libcublas not loadable, skipped");
                        continue;
                    }
                    "burn" => GemmEngine::Burn,
                    other => return Err(UsageError(format!("--matmul-rate `{other}`")).into()),
                };
                let started = Instant::now();
                let tflops = cuda::bf16_matmul_tflops(index, engine, [8192, 8192, 8192], 5)?;
                eprintln!(
                    "bf16 matmul 8192^3 with {engine_name}: {tflops:.0} TFLOP/s ({:.1} s incl. first call)",
                    started.elapsed().as_secs_f64()
                );
                rates.insert(engine_name.trim().to_string(), json!(tflops));
                reference_rate = Some(reference_rate.map_or(tflops, |r: f64| r.max(tflops)));
            }
            reporter.emit(json!({"kind": "matmul_rate", "tflops": rates}))?;
        }
        let mfu = |flops_per_s: f64| reference_rate.map(|rate| flops_per_s / (rate * 1e12));

        for (name, config) in shapes {
            let started = Instant::now();
            let options = EncodeOptions {
                pooling: Pooling::LastToken,
                normalize: true,
                precision: Precision::BF16,
                batch: BatchPolicy {
                    length_multiple: 16,
                    max_batch_tokens: args.batch * args.seq,
                    max_batch_size: args.batch,
                },
            };
            let mut config = config.clone();
            config.max_position_embeddings = config.max_position_embeddings.max(args.seq);
            let model = EmbeddingModel::random_qwen2_cuda(&config, options, index)?;
            // Deterministic ids spread over the vocabulary.
            let sequences: Vec<Vec<u32>> = (0..args.batch)
                .map(|row| {
                    (0..args.seq)
                        .map(|t| ((row * 7919 + t * 104_729) % 150_000) as u32)
                        .collect()
                })
                .collect();
            let model_s = started.elapsed().as_secs_f64();
            let started = Instant::now();
            model.embed(&sequences)?;
            let warmup_s = started.elapsed().as_secs_f64();
            let started = Instant::now();
            for _ in 0..args.rounds.max(1) {
                let out = model.embed(&sequences)?;
                if out.iter().flatten().any(|x| !x.is_finite()) {
                    bail!("{name}: non-finite embedding");
                }
            }
            let steady_s = started.elapsed().as_secs_f64();
            let tokens = (args.batch * args.seq * args.rounds.max(1)) as f64;
            let tokens_per_s = tokens / steady_s;
            let flops_per_s = sequence_flops(&config, args.seq) / args.seq as f64 * tokens_per_s;
            let mfu = mfu(flops_per_s);
            eprintln!(
                "{name} B{}xS{}: random weights in {model_s:.1} s, warm-up batch {warmup_s:.2} s, \
                 steady {tokens_per_s:.0} tokens/s{}",
                args.batch,
                args.seq,
                mfu.map_or(String::new(), |m| format!(", MFU {:.1}%", m * 100.0))
            );
            reporter.emit(json!({
                "kind": "fixed", "engine": "quarry", "shape": name, "batch": args.batch,
                "seq": args.seq, "rounds": args.rounds, "gemm": gemm_name, "fused": fused,
                "attention": attention.to_string(), "model_s": model_s, "warmup_s": warmup_s,
                "tokens_per_s": tokens_per_s, "mfu": mfu,
                "non_embedding_params": non_embedding_params(&config),
            }))?;
            drop(model);
        }

        if let Some(real) = real {
            let started = Instant::now();
            let model = real.prepared.load()?;
            let load_s = started.elapsed().as_secs_f64();
            let config = match qwen2_config_of(&real) {
                Some(config) => config,
                None => bail!("--model: the real-document run measures Qwen2 models"),
            };
            let sequences = &real.sequences;
            let tokens: usize = sequences.iter().map(Vec::len).sum();
            let flops: f64 = sequences
                .iter()
                .map(|s| sequence_flops(&config, s.len()))
                .sum();
            let started = Instant::now();
            let first = model.embed(sequences)?;
            let first_s = started.elapsed().as_secs_f64();
            let since_start_s = process_started.elapsed().as_secs_f64();
            let started = Instant::now();
            let mut last = first;
            for _ in 0..args.passes.max(1) {
                last = model.embed(sequences)?;
            }
            let steady_s = started.elapsed().as_secs_f64() / args.passes.max(1) as f64;
            let tokens_per_s = tokens as f64 / steady_s;
            let mfu = mfu(flops / steady_s);
            eprintln!(
                "real {} on {} docs ({tokens} tokens): load {load_s:.1} s, first pass {first_s:.1} s \
                 (done {since_start_s:.1} s after process start), steady {tokens_per_s:.0} tokens/s{}",
                real.model_name,
                sequences.len(),
                mfu.map_or(String::new(), |m| format!(", MFU {:.1}%", m * 100.0))
            );
            let mut result = json!({
                "kind": "real", "engine": "quarry", "batching": "quarry-buckets",
                "model": real.model_name, "docs": sequences.len(), "tokens": tokens,
                "gemm": gemm_name, "fused": fused, "attention": attention.to_string(), "load_s": load_s,
                "first_pass_s": first_s, "first_pass_done_after_start_s": since_start_s,
                "tokens_per_s": tokens_per_s, "mfu": mfu,
            });
            if args.check > 0 {
                let count = args.check.min(sequences.len());
                let started = Instant::now();
                let mut spec = real.prepared.spec.clone();
                spec.device = ComputeDevice::Cpu;
                spec.precision = Precision::F32;
                let cpu = PreparedEncoder::prepare(&spec)?.load()?;
                // Spread the checked documents over the length range.
                let picks: Vec<usize> = (0..count).map(|i| i * sequences.len() / count).collect();
                let cpu_inputs: Vec<Vec<u32>> =
                    picks.iter().map(|&i| sequences[i].clone()).collect();
                let cpu_out = cpu.embed(&cpu_inputs)?;
                let worst = picks
                    .iter()
                    .zip(&cpu_out)
                    .map(|(&i, expected)| cosine(&last[i], expected))
                    .fold(1.0f64, f64::min);
                eprintln!(
                    "check: min cosine GPU bf16 vs CPU f32 over {count} docs {worst:.6} ({:.1} s)",
                    started.elapsed().as_secs_f64()
                );
                result["check_docs"] = json!(count);
                result["check_min_cosine"] = json!(worst);
            }
            reporter.emit(result)?;
        }
        Ok(())
    }

    /// Times every fixed attention kernel on `[batch, heads, seq, head_dim]`
    /// for each `(heads, head_dim)` and returns the one with the least total
    /// time among those that ran every shape (burn's autotune when none did).
    fn pick_attention(
        index: usize,
        batch: usize,
        seq: usize,
        heads: &[(usize, usize)],
        reporter: &mut Reporter,
    ) -> Result<AttentionKernel> {
        let candidates = [
            AttentionKernel::Fused,
            AttentionKernel::Cublas,
            AttentionKernel::Flash(2),
            AttentionKernel::Flash(4),
            AttentionKernel::Flash(8),
            AttentionKernel::FlashUnit,
            AttentionKernel::Fallback,
        ];
        let mut best: Option<(f64, AttentionKernel)> = None;
        for kernel in candidates {
            let mut total = 0.0;
            let mut all_ran = true;
            for &(h, d) in heads {
                let started = Instant::now();
                let outcome = cuda::attention_ms(index, kernel, [batch, h, seq, d], 3);
                let wall_s = started.elapsed().as_secs_f64();
                match &outcome {
                    Ok(ms) => {
                        total += ms;
                        eprintln!("attention {kernel} B{batch} H{h} S{seq} D{d}: {ms:.3} ms ({wall_s:.1} s with compilation)");
                    }
                    Err(err) => {
                        all_ran = false;
                        let short: String = err.chars().take(200).collect();
                        eprintln!(
                            "attention {kernel} B{batch} H{h} S{seq} D{d}: cannot run: {short}"
                        );
                    }
                }
                reporter.emit(json!({
                    "kind": "attention_probe", "kernel": kernel.to_string(), "batch": batch,
                    "heads": h, "seq": seq, "head_dim": d,
                    "ms": outcome.as_ref().ok(), "error": outcome.as_ref().err(), "wall_s": wall_s,
                }))?;
            }
            if all_ran && best.is_none_or(|(time, _)| total < time) {
                best = Some((total, kernel));
            }
        }
        let chosen = best.map_or(AttentionKernel::Autotune, |(_, kernel)| kernel);
        eprintln!("attention: using {chosen}");
        Ok(chosen)
    }

    fn qwen2_config_of(real: &RealRun) -> Option<Qwen2Config> {
        match real.prepared.config() {
            quarry_encoder::ModelConfig::Qwen2(config) => Some(config.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Qwen2.5 technical report's non-embedding parameter counts:
    /// 0.36 B, 1.31 B and 6.53 B.
    #[test]
    fn non_embedding_params_match_the_published_counts() {
        let billions =
            |name: &str| non_embedding_params(&qwen2_5_shape(name).unwrap()) as f64 / 1e9;
        assert!((billions("0.5b") - 0.36).abs() < 0.005);
        assert!((billions("1.5b") - 1.31).abs() < 0.005);
        assert!((billions("7b") - 6.53).abs() < 0.005);
    }

    /// The peer numbers of ../shared/gpu/README.md (tokens/s and MFU at 786 TFLOP/s)
    /// agree with this FLOP count.
    #[test]
    fn flops_reproduce_the_published_mfu() {
        for (name, tokens_per_s, mfu) in [
            ("0.5b", 350_088.0, 0.34),
            ("1.5b", 138_853.0, 0.48),
            ("7b", 37_946.0, 0.64),
        ] {
            let config = qwen2_5_shape(name).unwrap();
            let per_token = sequence_flops(&config, 512) / 512.0;
            let computed = tokens_per_s * per_token / 786e12;
            assert!((computed - mfu).abs() < 0.005, "{name}: {computed}");
        }
    }
}
