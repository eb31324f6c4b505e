//! One function per parser of untrusted input: what a fuzz target does with its bytes.
//!
//! Each reads the input the way quarry reads such a file, then uses what it got (tensors
//! dequantised, rows read, a tokenizer run), all under the allocation guard. Errors are the
//! expected outcome for most inputs; a panic, an abort or an oversized allocation is a bug.

use std::path::Path;

use quarry_encoder::tokenizer::TextTokenizer;
use quarry_encoder::weights::{config_from_gguf, GgufFile, SafetensorsSource};
use quarry_encoder::TensorSource;
use quarry_engine::dataset::{read_corpus_file, read_qrels_file, read_queries_file};
use quarry_engine::registry::Registry;
use quarry_engine::retriever::RetrieverSpec;
use quarry_engine::run::Run;
use quarry_index::dense::npy::NpyVectors;

use crate::guard::{guarded, scratch_file};

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// Every target by name, for the regression test's replay.
pub const ALL: &[(&str, Target)] = &[
    ("gguf", gguf),
    ("safetensors", safetensors),
    ("npy", npy),
    ("corpus", corpus),
    ("queries", queries),
    ("qrels", qrels),
    ("trec_run", trec_run),
    ("registry", registry),
    ("retriever_spec", retriever_spec),
];

/// GGUF: header, metadata, tensor table, the config and tokenizer built from the metadata,
/// and every tensor's dequantisation.
pub fn gguf(data: &[u8]) {
    let path = scratch_file("model.gguf", data);
    guarded(data.len(), || {
        let Ok(file) = GgufFile::open(&path) else {
            return;
        };
        let _ = config_from_gguf(&file);
        if let Ok(tokenizer) = TextTokenizer::from_gguf(&file) {
            let _ = tokenizer.encode("def add(a, b): return a + b", true);
        }
        let names: Vec<String> = file.tensors().iter().map(|t| t.name.clone()).collect();
        for name in names {
            let _ = file.dequantize(&name);
        }
    });
}

/// safetensors: the header (through HF's reader) and every tensor's conversion to f32.
pub fn safetensors(data: &[u8]) {
    let path = scratch_file("model.safetensors", data);
    guarded(data.len(), || {
        let Ok(source) = SafetensorsSource::open(&path) else {
            return;
        };
        for name in source.tensor_names() {
            let _ = source.shape(&name);
            let _ = source.load_f32(&name);
        }
    });
}

/// `.npy` query/document matrices: the header, the shape and reading rows.
pub fn npy(data: &[u8]) {
    let path = scratch_file("vectors.npy", data);
    guarded(data.len(), || {
        let Ok(array) = NpyVectors::open(&path) else {
            return;
        };
        if array.rows > 0 {
            let mut row = vec![0f32; array.cols];
            array.row_into(array.rows - 1, &mut row);
            let _ = array.rows_vec(0, array.rows.min(16));
        }
    });
}

/// BEIR corpus.jsonl.
pub fn corpus(data: &[u8]) {
    let path = scratch_file("corpus.jsonl", data);
    guarded(data.len(), || {
        let _ = read_corpus_file(&path);
    });
}

/// BEIR queries.jsonl.
pub fn queries(data: &[u8]) {
    let path = scratch_file("queries.jsonl", data);
    guarded(data.len(), || {
        let _ = read_queries_file(&path);
    });
}

/// qrels: BEIR tsv with its header, or TREC's four columns.
pub fn qrels(data: &[u8]) {
    let path = scratch_file("test.tsv", data);
    guarded(data.len(), || {
        let _ = read_qrels_file(&path);
    });
}

/// TREC run files (`run:PATH` retrievers, `quarry eval --run`).
pub fn trec_run(data: &[u8]) {
    let path = scratch_file("run.trec", data);
    guarded(data.len(), || {
        let _ = Run::read(&path);
    });
}

/// `datasets.toml` registries (`--registry FILE`).
pub fn registry(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    guarded(data.len(), || {
        let _ = Registry::parse(Path::new("/nonexistent/datasets.toml"), &text);
    });
}

/// Retriever specs (`--retrievers bm25,dense:NAME,rrf(...)`), one argument.
pub fn retriever_spec(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    guarded(data.len(), || {
        let _ = RetrieverSpec::parse_list(&text);
    });
}
