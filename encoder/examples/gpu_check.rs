//! Runs the encoder on the CUDA backend: parity with the transformers
//! fixtures (f32, bf16 and f16), and a real model's CUDA embeddings against its CPU
//! f32 ones. Built with `--features cuda`; needs a GPU at run time. Throughput on
//! random weights of real model shapes is `quarry bench encode --shapes`.
//!
//! ```sh
//! cargo run --release -p quarry-encoder --features cuda --example gpu_check -- encoder/fixtures
//! # a real model: CPU f32 vs CUDA bf16 embeddings of zero-shot prompts, and CUDA tokens/s
//! gpu_check real MODEL.gguf CORPUS.jsonl CPU_DOCS GPU_DOCS
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{load_reference, SafetensorsFile};
use quarry_encoder::encode::{cosine_similarity as cosine, CudaBackend};
use quarry_encoder::{BatchPolicy, EncodeOptions, Encoder, ModelConfig, Pooling, Precision};

/// (max abs error, min cosine) over all token rows.
fn compare(actual: &[Vec<Vec<f32>>], expected: &[Vec<Vec<f32>>]) -> (f32, f64) {
    let mut worst_abs = 0.0f32;
    let mut worst_cos = 1.0f64;
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a.len(), e.len());
        for (ra, re) in a.iter().zip(e) {
            for (x, y) in ra.iter().zip(re) {
                worst_abs = worst_abs.max((x - y).abs());
            }
            worst_cos = worst_cos.min(cosine(ra, re));
        }
    }
    (worst_abs, worst_cos)
}

fn parity(fixtures: &Path) {
    let device = Default::default();
    for name in ["qwen2_tied", "qwen2_untied", "qwen2_5_vl", "bert"] {
        let dir = fixtures.join(name);
        let reference = load_reference(&dir);
        let config = ModelConfig::from_hf_file(&dir.join("config.json")).unwrap();
        let source = SafetensorsFile::open(&dir.join("model.safetensors"));
        for precision in [Precision::F32, Precision::BF16, Precision::F16] {
            let options = EncodeOptions {
                pooling: Pooling::LastToken,
                normalize: false,
                precision,
                batch: BatchPolicy::default(),
            };
            let encoder = Encoder::<CudaBackend>::load(&config, &source, options, &device).unwrap();
            let single: Vec<_> = reference
                .sequences
                .iter()
                .map(|s| {
                    encoder
                        .hidden_states(std::slice::from_ref(s))
                        .unwrap()
                        .remove(0)
                })
                .collect();
            let batched = encoder.hidden_states(&reference.sequences).unwrap();
            let (single_abs, single_cos) = compare(&single, &reference.single);
            let (batch_abs, batch_cos) = compare(&batched, &reference.batch.hidden);
            println!(
                "{name} {precision:?}: single max abs {single_abs:.2e} min cos {single_cos:.6}; \
                 batched max abs {batch_abs:.2e} min cos {batch_cos:.6}"
            );
        }
    }
}

/// The real model check of issue 4: embeddings of zero-shot document prompts on CUDA (bf16)
/// against the CPU f32 ones (cosine), then CUDA throughput over more documents.
fn real(model: &Path, corpus: &Path, cpu_docs: usize, gpu_docs: usize) {
    use quarry_encoder::encode::CpuBackend;
    use quarry_encoder::prompt::{PromptBuilder, PromptTemplate, TextKind};
    use quarry_encoder::tokenizer::TextTokenizer;
    use quarry_encoder::weights::{config_from_gguf, GgufSource};

    let started = Instant::now();
    let source = GgufSource::open(model).unwrap();
    let config_json = config_from_gguf(source.file()).unwrap();
    let config = ModelConfig::from_hf_json(&config_json.to_string(), model).unwrap();
    let tokenizer = TextTokenizer::from_gguf(source.file()).unwrap();
    let template = PromptTemplate::load("qwen", "zero-shot").unwrap();
    let builder = PromptBuilder::new(template, tokenizer, 512, Some(false)).unwrap();
    let docs: Vec<(String, String)> = std::fs::read_to_string(corpus)
        .unwrap()
        .lines()
        .take(gpu_docs.max(cpu_docs))
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                row["title"].as_str().unwrap_or("").to_string(),
                row["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let texts: Vec<String> = docs
        .iter()
        .map(|(title, text)| format!("{title} {text}").trim().to_string())
        .collect();
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let inputs = builder
        .build_batch(TextKind::Passage, None, &text_refs)
        .unwrap();
    let ids: Vec<Vec<u32>> = inputs.into_iter().map(|input| input.ids).collect();
    let tokens: usize = ids.iter().map(Vec::len).sum();
    println!(
        "real: {} docs, {tokens} tokens, loaded in {:.1} s",
        ids.len(),
        started.elapsed().as_secs_f64()
    );
    let mut options = EncodeOptions::last_token();
    options.normalize = false;
    let cpu = Encoder::<CpuBackend>::load(&config, &source, options, &Default::default()).unwrap();
    let t = Instant::now();
    let cpu_out = cpu.embed(&ids[..cpu_docs]).unwrap();
    println!(
        "real: CPU f32 {cpu_docs} docs in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    drop(cpu);
    for precision in [Precision::BF16, Precision::F32] {
        let mut options = options;
        options.precision = precision;
        let t = Instant::now();
        let gpu =
            Encoder::<CudaBackend>::load(&config, &source, options, &Default::default()).unwrap();
        println!(
            "real {precision:?}: loaded on CUDA in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let warm = gpu.embed(&ids).unwrap();
        let warm_s = t.elapsed().as_secs_f64();
        let worst = cpu_out
            .iter()
            .zip(&warm)
            .map(|(a, b)| cosine(a, b))
            .fold(1.0f64, f64::min);
        let t = Instant::now();
        let again = gpu.embed(&ids).unwrap();
        let steady_s = t.elapsed().as_secs_f64();
        assert_eq!(again.len(), ids.len());
        println!(
            "real {precision:?}: min cosine vs CPU f32 over {cpu_docs} docs {worst:.6}; \
             first pass (autotune) {warm_s:.1} s; steady {steady_s:.2} s = {:.0} tokens/s",
            tokens as f64 / steady_s
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("real") {
        let model = PathBuf::from(args.next().expect("MODEL.gguf"));
        let corpus = PathBuf::from(args.next().expect("CORPUS.jsonl"));
        let cpu_docs = args.next().map_or(32, |n| n.parse().unwrap());
        let gpu_docs = args.next().map_or(1024, |n| n.parse().unwrap());
        real(&model, &corpus, cpu_docs, gpu_docs);
        return;
    }
    let mut args = first.into_iter().chain(args);
    let fixtures = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "encoder/fixtures".to_string()),
    );
    parity(&fixtures);
}
