//! The GGUF tokenizer path on a small GGUF vocabulary (real Qwen2 byte symbols + 3000 real
//! merges + special tokens of each llama.cpp token type), against transformers' ids for it:
//! runs everywhere, without the real model. Fixtures by scripts/gguf_make_tokenizer_fixture.py.
//! (The full 151k-token vocabulary is checked in weights_real_models.rs.)

use std::path::Path;

mod common;

use quarry_encoder::tokenizer::TextTokenizer;
use quarry_encoder::weights::GgufFile;
use quarry_encoder::EncoderError;
use serde_json::Value;

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/gguf"))
}

#[test]
fn small_gguf_vocabulary_gives_transformers_ids() {
    let file = GgufFile::open(&fixtures().join("tiny_qwen2_tokenizer.gguf")).unwrap();
    let tokenizer = TextTokenizer::from_gguf(&file).unwrap();
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("tiny_qwen2_tokenizer_reference.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        tokenizer.vocab_size() as u64,
        reference["vocab_size"].as_u64().unwrap()
    );
    assert_eq!(
        tokenizer.eos_token_id().map(u64::from),
        reference["eos_token_id"].as_u64()
    );
    for case in reference["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = common::json_integers(&case["ids"]);
        assert_eq!(tokenizer.encode(text, false).unwrap(), expected, "{text:?}");
        // Byte-level BPE round-trips any text.
        assert_eq!(tokenizer.decode(&expected).unwrap(), text);
    }
    // CONTROL and USER_DEFINED tokens are matched in text; UNUSED ones are not.
    assert_eq!(tokenizer.encode("<|im_end|>", false).unwrap().len(), 1);
    assert_eq!(tokenizer.encode("<tool_call>", false).unwrap().len(), 1);
    assert!(tokenizer.encode("[PAD9]", false).unwrap().len() > 1);
}

#[test]
fn gguf_without_a_usable_tokenizer_is_a_typed_error() {
    // The quant fixture has a token list but no tokenizer model/merges.
    let file = GgufFile::open(&fixtures().join("tiny_qwen2_quants.gguf")).unwrap();
    match TextTokenizer::from_gguf(&file) {
        Err(EncoderError::Config { file: path, detail }) => {
            assert!(path.ends_with("tiny_qwen2_quants.gguf"));
            assert!(detail.contains("tokenizer.ggml.model"), "{detail}");
        }
        other => panic!("expected Config error, got {other:?}"),
    }
}

#[test]
fn missing_tokenizer_json_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    match TextTokenizer::from_hf_dir(dir.path()) {
        Err(EncoderError::Io { path, .. }) => assert!(path.ends_with("tokenizer.json")),
        other => panic!("expected Io error, got {other:?}"),
    }
    std::fs::write(dir.path().join("tokenizer.json"), "{\"version\": ").unwrap();
    assert!(matches!(
        TextTokenizer::from_hf_dir(dir.path()),
        Err(EncoderError::Tokenizer { .. })
    ));
}
