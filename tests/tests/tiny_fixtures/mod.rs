//! The tiny dense-model fixtures shared by the end-to-end tests that build dense indexes
//! (build.rs, search_dense.rs): the random BERT of `encoder/fixtures/bert` with a small
//! WordPiece tokenizer, and a small BEIR folder.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::repo_root;

/// A WordPiece tokenizer over 56 tokens (specials, letters, ##letters): fits
/// the fixture's vocabulary of 80; every lowercase word tokenizes.
pub fn tokenizer_json() -> String {
    let mut vocab = serde_json::Map::new();
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];
    for (i, s) in specials.iter().enumerate() {
        vocab.insert(s.to_string(), Value::from(i));
    }
    for (i, c) in ('a'..='z').enumerate() {
        vocab.insert(c.to_string(), Value::from(4 + i));
        vocab.insert(format!("##{c}"), Value::from(30 + i));
    }
    let added: Vec<Value> = specials
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({"id": i, "content": s, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab}
    })
    .to_string()
}

/// A copy of the BERT fixture with a tokenizer, named `tiny-bert` (copied so
/// the hash sidecars the build writes stay out of the repository).
pub fn tiny_model(dir: &Path) -> PathBuf {
    let src = repo_root().join("encoder/fixtures/bert");
    let dst = dir.join("tiny-bert");
    std::fs::create_dir_all(dst.join("1_Pooling")).unwrap();
    for file in [
        "config.json",
        "model.safetensors",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        std::fs::copy(src.join(file), dst.join(file)).unwrap();
    }
    std::fs::write(dst.join("tokenizer.json"), tokenizer_json()).unwrap();
    dst
}

pub const WORDS: [&str; 12] = [
    "apple", "river", "stone", "cloud", "green", "light", "sound", "paper", "glass", "metal",
    "storm", "field",
];

/// A BEIR folder `tiny` with `docs` documents, 6 queries and test qrels.
pub fn tiny_dataset(dir: &Path, docs: usize) -> PathBuf {
    let root = dir.join("tiny");
    std::fs::create_dir_all(root.join("qrels")).unwrap();
    let mut corpus = String::new();
    for i in 0..docs {
        let words: Vec<&str> = (0..(3 + i % 9))
            .map(|j| WORDS[(i * 7 + j * 3) % 12])
            .collect();
        corpus += &serde_json::json!({"_id": format!("d{i}"), "title": WORDS[i % 12],
            "text": words.join(" ")})
        .to_string();
        corpus.push('\n');
    }
    std::fs::write(root.join("corpus.jsonl"), corpus).unwrap();
    let mut queries = String::new();
    let mut qrels = String::from("query-id\tcorpus-id\tscore\n");
    for q in 0..6 {
        queries += &serde_json::json!({"_id": format!("q{q}"),
            "text": format!("{} {}", WORDS[q], WORDS[(q + 5) % 12])})
        .to_string();
        queries.push('\n');
        qrels += &format!("q{q}\td{}\t1\nq{q}\td{}\t2\n", q * 3, (q * 5 + 1) % docs);
    }
    std::fs::write(root.join("queries.jsonl"), queries).unwrap();
    std::fs::write(root.join("qrels/test.tsv"), qrels).unwrap();
    root
}
