//! The real all-MiniLM-L6-v2 against sentence-transformers (references made by
//! `scripts/make_minilm_reference.py`). Runs only where the model folder is
//! present: `$QUARRY_MODELS/all-MiniLM-L6-v2` or `<repo>/models/all-MiniLM-L6-v2`.

mod common;

use std::path::PathBuf;

use common::SafetensorsFile;
use quarry_encoder::encode::{cosine_similarity as cosine, CpuBackend};
use quarry_encoder::{EncodeOptions, Encoder, ModelConfig, Pooling};

#[derive(serde::Deserialize)]
struct MiniLmReference {
    max_seq_length: usize,
    texts: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
}

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(dir) = common::real_model("all-MiniLM-L6-v2", "minilm_matches_sentence_transformers")
    else {
        return;
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/minilm_reference.json");
    let reference: MiniLmReference =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(reference.texts.len() >= 20);
    assert!(reference
        .token_ids
        .iter()
        .all(|ids| ids.len() <= reference.max_seq_length));

    let config = ModelConfig::from_hf_file(&dir.join("config.json")).unwrap();
    let options = EncodeOptions::from_sentence_transformers_dir(&dir).unwrap();
    assert_eq!(options.pooling, Pooling::Mean);
    assert!(options.normalize);
    let source = SafetensorsFile::open(&dir.join("model.safetensors"));
    let encoder =
        Encoder::<CpuBackend>::load(&config, &source, options, &Default::default()).unwrap();
    let embeddings = encoder.embed(&reference.token_ids).unwrap();

    let mut worst_cosine = 1.0f64;
    let mut worst_abs = 0.0f32;
    for (actual, expected) in embeddings.iter().zip(&reference.embeddings) {
        worst_cosine = worst_cosine.min(cosine(actual, expected));
        for (x, y) in actual.iter().zip(expected) {
            worst_abs = worst_abs.max((x - y).abs());
        }
    }
    eprintln!(
        "all-MiniLM-L6-v2: {} texts, min cosine {worst_cosine:.7}, max abs error {worst_abs:.2e}",
        embeddings.len()
    );
    assert!(worst_cosine >= 0.9999, "min cosine {worst_cosine}");
}
