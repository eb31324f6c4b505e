//! The real-document workload: a corpus tokenised under the zero-shot
//! prompt and batched exactly as `quarry build` does, and optionally dumped
//! (token ids + batch plan) as the input of `benches/encode_peer.py`.

use std::path::Path;
use std::time::Instant;

use quarry_encoder::prompt::TextKind;
use quarry_encoder::{ComputeDevice, Precision};
use serde_json::json;

use super::{BenchReport, EncodeBench};
use crate::build::{BuildMode, EncoderSpec, PreparedEncoder};
use crate::dataset::Dataset;
use crate::error::Result;

/// A real model and the token ids of the documents it encodes (read by the
/// GPU measurement only: without `cuda` only `--dump-only` runs).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub struct RealRun {
    pub prepared: PreparedEncoder,
    pub sequences: Vec<Vec<u32>>,
    pub model_name: String,
}

/// Tokenises the first `bench.docs` documents of `dataset` for `model`
/// (bf16 on the bench's device) and writes `bench.dump` when asked.
pub fn prepare(
    bench: &EncodeBench,
    dataset: &Dataset,
    model: &Path,
    report: &mut dyn BenchReport,
) -> Result<RealRun> {
    let started = Instant::now();
    let spec = EncoderSpec {
        model: model.to_path_buf(),
        mode: BuildMode::ZeroShot,
        precision: Precision::BF16,
        device: ComputeDevice::Cuda(bench.device),
        max_length: None,
        batch_tokens: None,
        lora: None,
        hub: None,
        query_instruction: None,
        doc_instruction: None,
    };
    let prepared = PreparedEncoder::prepare(&spec)?;
    let corpus = dataset.read_corpus()?;
    let count = if bench.docs == 0 {
        corpus.docs.len()
    } else {
        bench.docs.min(corpus.docs.len())
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
    report.note(&format!(
        "real documents: {count} of {} ({tokens} tokens, max {}), tokenised in {:.1} s",
        dataset.name,
        sequences.iter().map(Vec::len).max().unwrap_or(0),
        started.elapsed().as_secs_f64()
    ));
    if let Some(path) = &bench.dump {
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
        quarry_fsio::write(path, dump.to_string().as_bytes())?;
        report.note(&format!(
            "token ids and batch plan written to {}",
            path.display()
        ));
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
