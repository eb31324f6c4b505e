//! End to end: the real Qwen2.5-Coder-0.5B GGUF through GgufSource + config_from_gguf + the
//! GGUF tokenizer + the burn Qwen2 model equals transformers' final hidden states
//! (fixtures/qwen2_gguf_reference.json by scripts/make_qwen_gguf_reference.py). Skipped when
//! the model is absent ($QUARRY_MODELS or <repo>/models, scripts/fetch_models.sh).

mod common;

use quarry_encoder::encode::{cosine_similarity as cosine, CpuBackend};
use quarry_encoder::tokenizer::TextTokenizer;
use quarry_encoder::weights::{config_from_gguf, GgufSource};
use quarry_encoder::{EncodeOptions, Encoder, ModelConfig, Pooling};
use std::path::PathBuf;

#[derive(serde::Deserialize)]
struct Reference {
    texts: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    last_token: Vec<Vec<f32>>,
    mean: Vec<Vec<f32>>,
}

#[test]
fn gguf_source_through_qwen2_matches_transformers() {
    let Some(path) = common::real_model(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "gguf_source_through_qwen2_matches_transformers",
    ) else {
        return;
    };
    let reference: Reference = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/qwen2_gguf_reference.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let source = GgufSource::open(&path).unwrap();
    let config_json = config_from_gguf(source.file()).unwrap();
    let config = ModelConfig::from_hf_json(&config_json.to_string(), &path).unwrap();
    let tokenizer = TextTokenizer::from_gguf(source.file()).unwrap();
    let mut max_tokens = 0;
    for (text, ids) in reference.texts.iter().zip(&reference.token_ids) {
        let ours = tokenizer.encode(text, false).unwrap();
        let n = ids.len();
        assert_eq!(&ours[..n.min(ours.len())], &ids[..], "{text:?}");
        max_tokens = max_tokens.max(n);
    }
    let t = std::time::Instant::now();
    for (pooling, expected) in [
        (Pooling::LastToken, &reference.last_token),
        (Pooling::Mean, &reference.mean),
    ] {
        let mut options = EncodeOptions::last_token();
        options.pooling = pooling;
        options.normalize = false;
        let encoder =
            Encoder::<CpuBackend>::load(&config, &source, options, &Default::default()).unwrap();
        let got = encoder.embed(&reference.token_ids).unwrap();
        let worst = got
            .iter()
            .zip(expected.iter())
            .map(|(a, b)| cosine(a, b))
            .fold(1.0f64, f64::min);
        let max_abs = got
            .iter()
            .zip(expected.iter())
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .fold(0f32, f32::max);
        eprintln!("{pooling:?}: {} texts (max {max_tokens} tokens), min cosine {worst:.7}, max abs err {max_abs:.3e}", got.len());
        assert!(worst > 0.999, "{worst}");
    }
    eprintln!("elapsed {:?}", t.elapsed());
}
