//! The tiny dense-model fixtures shared by the end-to-end tests that build dense indexes
//! (build.rs, mine.rs, search_dense.rs): the random BERT of `encoder/fixtures/bert` with a
//! small WordPiece tokenizer, a small BEIR folder, and [`TinyDense`], a temporary folder
//! holding both with a data home, which runs quarry on them.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};

use serde_json::Value;
use tempfile::TempDir;

use crate::common::{
    on_dataset, quarry_at_home, quarry_home, repo_root, run_with_stdin, write_file, Ran,
};

/// The retriever of the index `quarry build` makes of the tiny model.
pub const DENSE: &str = "dense:tiny-bert";

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
    write_file(&root, "corpus.jsonl", &corpus);
    let mut queries = String::new();
    let mut qrels = String::from("query-id\tcorpus-id\tscore\n");
    for q in 0..6 {
        queries += &serde_json::json!({"_id": format!("q{q}"),
            "text": format!("{} {}", WORDS[q], WORDS[(q + 5) % 12])})
        .to_string();
        queries.push('\n');
        qrels += &format!("q{q}\td{}\t1\nq{q}\td{}\t2\n", q * 3, (q * 5 + 1) % docs);
    }
    write_file(&root, "queries.jsonl", &queries);
    write_file(&root, "qrels/test.tsv", &qrels);
    root
}

/// Where `quarry build` puts the tiny model's index of the tiny dataset in `home`.
pub fn index_dir(home: &Path) -> PathBuf {
    home.join("dense").join("tiny-bert@tiny")
}

/// A temporary folder with the tiny model (`tiny-bert/`), a tiny dataset
/// (`tiny/`) and a data home (`home/`, made by the first build): what the
/// tests that build a dense index start from.
pub struct TinyDense {
    pub tmp: TempDir,
    pub home: PathBuf,
    pub model: PathBuf,
    pub data: PathBuf,
}

impl TinyDense {
    /// The tiny model and a tiny dataset of `docs` documents.
    pub fn new(docs: usize) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let model = tiny_model(tmp.path());
        let data = tiny_dataset(tmp.path(), docs);
        TinyDense {
            home: tmp.path().join("home"),
            tmp,
            model,
            data,
        }
    }

    /// `name` in the temporary folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn model(&self) -> &str {
        self.model.to_str().unwrap()
    }

    pub fn data(&self) -> &str {
        self.data.to_str().unwrap()
    }

    /// The index of the tiny model in `home`.
    pub fn index_dir(&self) -> PathBuf {
        index_dir(&self.home)
    }

    /// The usual build: `build --model MODEL --dataset DATA`.
    pub fn build_args(&self) -> [&str; 5] {
        ["build", "--model", self.model(), "--dataset", self.data()]
    }

    /// Runs the usual build in `home`.
    pub fn build(&self) -> Ran {
        self.quarry(&self.build_args())
    }

    /// Runs `quarry ARGS` in `home`.
    pub fn quarry(&self, args: &[&str]) -> Ran {
        quarry_home(&self.home, args)
    }

    /// Runs `quarry COMMAND --dataset DATA --retriever RETRIEVER REST...` in `home`.
    pub fn on_data(&self, command: &str, retriever: &str, rest: &[&str]) -> Ran {
        self.quarry(&Self::args(command, self.data(), retriever, rest))
    }

    /// Runs `quarry eval --dataset DATA --retriever RETRIEVER REST...` in `home`.
    pub fn eval(&self, retriever: &str, rest: &[&str]) -> Ran {
        self.on_data("eval", retriever, rest)
    }

    /// Runs `quarry search --dataset DATA --retriever RETRIEVER REST...` in
    /// `home` with `input` on stdin.
    pub fn search(&self, retriever: &str, rest: &[&str], input: &str) -> Ran {
        let args = Self::args("search", self.data(), retriever, rest);
        run_with_stdin(quarry_at_home(&self.home), &args, input)
    }

    fn args<'a>(
        command: &'a str,
        data: &'a str,
        retriever: &'a str,
        rest: &[&'a str],
    ) -> Vec<&'a str> {
        on_dataset(command, data, &[&["--retriever", retriever], rest].concat())
    }
}
