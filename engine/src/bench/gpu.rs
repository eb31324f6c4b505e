//! The GPU measurements of `quarry bench encode` (built with `--features cuda`).

use std::path::Path;
use std::time::Instant;

use quarry_encoder::encode::cosine_similarity as cosine;
use quarry_encoder::{
    BatchPolicy, ComputeDevice, EmbeddingModel, EncodeOptions, ModelConfig, Pooling, Precision,
};
use serde_json::json;

use super::real_docs::RealRun;
use super::{non_embedding_params, sequence_flops, BenchReport, EncodeBench, Qwen2Config};
use crate::build::PreparedEncoder;
use crate::device::gpu::{self, AttentionKernel, GemmEngine};
use crate::error::{EngineError, Result, UsageError};

/// The GPU part of [`super::run_encode`].
pub(super) fn run(
    bench: &EncodeBench,
    shapes: &[(String, Qwen2Config)],
    real: Option<RealRun>,
    report: &mut dyn BenchReport,
    process_started: Instant,
    home: &Path,
) -> Result<()> {
    let index = bench.device;
    gpu::select_gemm(&bench.gemm)?;
    let fused = bench.fused;
    gpu::set_fused_kernels(fused);
    let attention: AttentionKernel = if bench.attention == "best" {
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
        pick_attention(index, bench.batch, bench.seq, &heads, report)?
    } else {
        bench
            .attention
            .parse()
            .map_err(|e: String| EngineError::Usage(UsageError(e)))?
    };
    gpu::set_attention_kernel(attention);
    let gemm_name = match gpu::gemm_engine() {
        GemmEngine::Cublas => "cublas",
        _ => "burn",
    };
    // Tuning persists where `quarry build` keeps it (<home>/gpu-tuning).
    let tuning = crate::device::use_gpu_tuning_cache(home);
    report.note(&format!(
        "gemm {gemm_name}, attention {attention}, fused kernels {}, tuning cache {}",
        if fused { "on" } else { "off" },
        tuning.map_or("(configured elsewhere)".to_string(), |d| d
            .display()
            .to_string())
    ));

    let mut rates = serde_json::Map::new();
    let mut reference_rate = None;
    if !bench.matmul_rate.is_empty() {
        for engine_name in &bench.matmul_rate {
            let engine = match engine_name.trim() {
                "cublas" if gpu::cublas_available() => GemmEngine::Cublas,
                "cublas" => {
                    report.note("matmul rate: libcublas not loadable, skipped");
                    continue;
                }
                "burn" => GemmEngine::Burn,
                other => {
                    return Err(EngineError::Usage(UsageError(format!(
                        "--matmul-rate `{other}`: cublas, burn or none"
                    ))))
                }
            };
            let started = Instant::now();
            let tflops = gpu::bf16_matmul_tflops(index, engine, [8192, 8192, 8192], 5)?;
            report.note(&format!(
                "bf16 matmul 8192^3 with {engine_name}: {tflops:.0} TFLOP/s ({:.1} s incl. first call)",
                started.elapsed().as_secs_f64()
            ));
            rates.insert(engine_name.trim().to_string(), json!(tflops));
            reference_rate = Some(reference_rate.map_or(tflops, |r: f64| r.max(tflops)));
        }
        report.result(json!({"kind": "matmul_rate", "tflops": rates}))?;
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
                max_batch_tokens: bench.batch * bench.seq,
                max_batch_size: bench.batch,
            },
        };
        let mut config = config.clone();
        config.max_position_embeddings = config.max_position_embeddings.max(bench.seq);
        let model = EmbeddingModel::random_qwen2_cuda(&config, options, index)?;
        // Deterministic ids spread over the vocabulary.
        let sequences: Vec<Vec<u32>> = (0..bench.batch)
            .map(|row| {
                (0..bench.seq)
                    .map(|t| ((row * 7919 + t * 104_729) % 150_000) as u32)
                    .collect()
            })
            .collect();
        let model_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        model.embed(&sequences)?;
        let warmup_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for _ in 0..bench.rounds.max(1) {
            let out = model.embed(&sequences)?;
            if out.iter().flatten().any(|x| !x.is_finite()) {
                return Err(EngineError::Build {
                    path: name.into(),
                    detail: "non-finite embedding".into(),
                });
            }
        }
        let steady_s = started.elapsed().as_secs_f64();
        let tokens = (bench.batch * bench.seq * bench.rounds.max(1)) as f64;
        let tokens_per_s = tokens / steady_s;
        let flops_per_s = sequence_flops(&config, bench.seq) / bench.seq as f64 * tokens_per_s;
        let mfu = mfu(flops_per_s);
        report.note(&format!(
            "{name} B{}xS{}: random weights in {model_s:.1} s, warm-up batch {warmup_s:.2} s, \
             steady {tokens_per_s:.0} tokens/s{}",
            bench.batch,
            bench.seq,
            mfu.map_or(String::new(), |m| format!(", MFU {:.1}%", m * 100.0))
        ));
        report.result(json!({
            "kind": "fixed", "engine": "quarry", "shape": name, "batch": bench.batch,
            "seq": bench.seq, "rounds": bench.rounds, "gemm": gemm_name, "fused": fused,
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
            None => {
                return Err(EngineError::Usage(UsageError(
                    "--model: the real-document run measures Qwen2 models".into(),
                )))
            }
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
        for _ in 0..bench.passes.max(1) {
            last = model.embed(sequences)?;
        }
        let steady_s = started.elapsed().as_secs_f64() / bench.passes.max(1) as f64;
        let tokens_per_s = tokens as f64 / steady_s;
        let mfu = mfu(flops / steady_s);
        report.note(&format!(
            "real {} on {} docs ({tokens} tokens): load {load_s:.1} s, first pass {first_s:.1} s \
             (done {since_start_s:.1} s after process start), steady {tokens_per_s:.0} tokens/s{}",
            real.model_name,
            sequences.len(),
            mfu.map_or(String::new(), |m| format!(", MFU {:.1}%", m * 100.0))
        ));
        let mut result = json!({
            "kind": "real", "engine": "quarry", "batching": "quarry-buckets",
            "model": real.model_name, "docs": sequences.len(), "tokens": tokens,
            "gemm": gemm_name, "fused": fused, "attention": attention.to_string(), "load_s": load_s,
            "first_pass_s": first_s, "first_pass_done_after_start_s": since_start_s,
            "tokens_per_s": tokens_per_s, "mfu": mfu,
        });
        if bench.check > 0 {
            let count = bench.check.min(sequences.len());
            let started = Instant::now();
            let mut spec = real.prepared.spec.clone();
            spec.device = ComputeDevice::Cpu;
            spec.precision = Precision::F32;
            let cpu = PreparedEncoder::prepare(&spec)?.load()?;
            // Spread the checked documents over the length range.
            let picks: Vec<usize> = (0..count).map(|i| i * sequences.len() / count).collect();
            let cpu_inputs: Vec<Vec<u32>> = picks.iter().map(|&i| sequences[i].clone()).collect();
            let cpu_out = cpu.embed(&cpu_inputs)?;
            let worst = picks
                .iter()
                .zip(&cpu_out)
                .map(|(&i, expected)| cosine(&last[i], expected))
                .fold(1.0f64, f64::min);
            report.note(&format!(
                "check: min cosine GPU bf16 vs CPU f32 over {count} docs {worst:.6} ({:.1} s)",
                started.elapsed().as_secs_f64()
            ));
            result["check_docs"] = json!(count);
            result["check_min_cosine"] = json!(worst);
        }
        report.result(result)?;
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
    report: &mut dyn BenchReport,
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
            let outcome = gpu::attention_ms(index, kernel, [batch, h, seq, d], 3);
            let wall_s = started.elapsed().as_secs_f64();
            match &outcome {
                Ok(ms) => {
                    total += ms;
                    report.note(&format!("attention {kernel} B{batch} H{h} S{seq} D{d}: {ms:.3} ms ({wall_s:.1} s with compilation)"));
                }
                Err(err) => {
                    all_ran = false;
                    let short: String = err.chars().take(200).collect();
                    report.note(&format!(
                        "attention {kernel} B{batch} H{h} S{seq} D{d}: cannot run: {short}"
                    ));
                }
            }
            report.result(json!({
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
    report.note(&format!("attention: using {chosen}"));
    Ok(chosen)
}

fn qwen2_config_of(real: &RealRun) -> Option<Qwen2Config> {
    match real.prepared.config() {
        ModelConfig::Qwen2(config) => Some(config.clone()),
        _ => None,
    }
}
