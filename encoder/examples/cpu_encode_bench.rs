//! CPU encoding speed on real token ids, for `benches/cpu_encode_peer.sh`:
//! encodes the sequences the PyTorch peer wrote (`token_ids.json`) with a
//! sentence-transformers model folder on burn-ndarray, prints tokens/s, and
//! the worst cosine against the peer's embeddings (`torch_embeddings.f32`),
//! so a speed-up that changed the numbers shows at once.
//!
//! ```sh
//! cargo run --release -p quarry-encoder --example cpu_encode_bench -- MODEL_DIR PEER_OUT_DIR [BATCH_TOKENS]
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::SafetensorsFile;
use quarry_encoder::encode::CpuBackend;
use quarry_encoder::{EncodeOptions, Encoder, ModelConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_dir, peer_dir, rest @ ..] = args.as_slice() else {
        eprintln!("usage: cpu_encode_bench MODEL_DIR PEER_OUT_DIR [BATCH_TOKENS]");
        std::process::exit(2);
    };
    let (model_dir, peer_dir) = (PathBuf::from(model_dir), PathBuf::from(peer_dir));
    let ids: Vec<Vec<u32>> = serde_json::from_str(
        &std::fs::read_to_string(peer_dir.join("token_ids.json")).expect("token_ids.json"),
    )
    .expect("token ids as JSON arrays");
    let config = ModelConfig::from_hf_file(&model_dir.join("config.json")).expect("config.json");
    let mut options = EncodeOptions::from_sentence_transformers_dir(&model_dir).expect("st dir");
    if let Some(tokens) = rest.first() {
        options.batch.max_batch_tokens = tokens.parse().expect("BATCH_TOKENS is a number");
    }
    let source = SafetensorsFile::open(&model_dir.join("model.safetensors"));
    let encoder = Encoder::<CpuBackend>::load(&config, &source, options, &Default::default())
        .expect("model loads");

    let tokens: usize = ids.iter().map(Vec::len).sum();
    let start = Instant::now();
    let embeddings = encoder.embed(&ids).expect("encodes");
    let seconds = start.elapsed().as_secs_f64();

    let reference: Vec<f32> = std::fs::read(peer_dir.join("torch_embeddings.f32"))
        .expect("torch_embeddings.f32")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let dim = encoder.dimension();
    let worst_cosine = embeddings
        .iter()
        .zip(reference.chunks_exact(dim))
        .map(|(a, b)| {
            // Both sides are L2-normalised: the dot product is the cosine.
            a.iter()
                .zip(b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum::<f64>()
        })
        .fold(1.0f64, f64::min);
    println!(
        "quarry: {} docs, {tokens} tokens, {seconds:.2} s, batch tokens {}, min cosine vs torch {worst_cosine:.7}",
        ids.len(),
        encoder.options().batch.max_batch_tokens
    );
    println!("quarry tokens/s {:.1}", tokens as f64 / seconds);
}
