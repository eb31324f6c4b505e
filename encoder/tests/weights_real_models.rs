//! Checks against the real models (fetched by `scripts/fetch_models.sh` into `models/` or
//! `$QUARRY_MODELS`; each test says "skipped" and passes when its model is absent).
//! References come from transformers and llama.cpp's `gguf` package:
//! fixtures/gguf/real_models_reference.json, made by scripts/gguf_reference_real.py.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod common;

use quarry_encoder::fingerprint::{encoder_fingerprint, FingerprintInputs};
use quarry_encoder::prompt::{detect_family, PoolAt, PromptBuilder, PromptTemplate, TextKind};
use quarry_encoder::tokenizer::TextTokenizer;
use quarry_encoder::weights::{
    config_from_gguf, gguf_to_hf_name, open_weights, GgufSource, SafetensorsSource,
};
use quarry_encoder::TensorSource;
use serde_json::Value;

const QWEN_05B: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
const QWEN_15B: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";
const MINILM: &str = "all-MiniLM-L6-v2";

fn model(name: &str) -> Option<PathBuf> {
    common::real_model(name, &format!("weights_real_models ({name})"))
}

fn reference() -> &'static Value {
    static REFERENCE: OnceLock<Value> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gguf/real_models_reference.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    })
}

fn ids_of(value: &Value) -> Vec<u32> {
    common::json_integers(value)
}

/// The 0.5B GGUF and its tokenizer, loaded once for all tests.
fn qwen() -> Option<&'static (GgufSource, TextTokenizer)> {
    static QWEN: OnceLock<Option<(GgufSource, TextTokenizer)>> = OnceLock::new();
    QWEN.get_or_init(|| {
        let path = model(QWEN_05B)?;
        let source = GgufSource::open(&path).unwrap();
        let tokenizer = TextTokenizer::from_gguf(source.file()).unwrap();
        Some((source, tokenizer))
    })
    .as_ref()
}

#[test]
fn gguf_tokenizer_ids_equal_transformers() {
    let Some((_, tokenizer)) = qwen() else { return };
    let cases = reference()["tokenizer"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected = ids_of(&case["ids"]);
        let got = tokenizer.encode(text, false).unwrap();
        if got != expected {
            failures.push(format!(
                "{text:?}\n  quarry:       {got:?}\n  transformers: {expected:?}"
            ));
        }
        // Adding special tokens adds nothing for Qwen2 (no BOS), as in transformers.
        assert_eq!(tokenizer.encode(text, true).unwrap(), got);
    }
    assert!(
        failures.is_empty(),
        "{} of {} texts differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(
        tokenizer.eos_token_id(),
        Some(reference()["eos_token_id"].as_u64().unwrap() as u32)
    );
    assert_eq!(tokenizer.vocab_size(), 151_936);
    assert_eq!(tokenizer.token_id("<|im_start|>"), Some(151_644));
    let batch = tokenizer
        .encode_batch(&["Hello world!", "你好"], false)
        .unwrap();
    assert_eq!(batch[0], [9707, 1879, 0]);
}

#[test]
fn gguf_dequantisation_equals_the_gguf_python_package() {
    let Some((source, _)) = qwen() else { return };
    let tensors = reference()["tensors"].as_array().unwrap();
    let mut types_seen = std::collections::BTreeSet::new();
    for reference in tensors {
        let gguf_name = reference["gguf_name"].as_str().unwrap();
        let hf_name = gguf_to_hf_name(gguf_name);
        let tensor = source.load_f32(&hf_name).unwrap();
        let expected_shape: Vec<usize> = common::json_integers(&reference["torch_shape"]);
        assert_eq!(tensor.shape, expected_shape, "{gguf_name}");
        assert_eq!(source.shape(&hf_name), Some(expected_shape), "{gguf_name}");
        for (i, v) in reference["first"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                tensor.data[i],
                v.as_f64().unwrap() as f32,
                "{gguf_name}[{i}]"
            );
        }
        for (index, v) in reference["at"].as_object().unwrap() {
            let i: usize = index.parse().unwrap();
            assert_eq!(
                tensor.data[i],
                v.as_f64().unwrap() as f32,
                "{gguf_name}[{i}]"
            );
        }
        let sum: f64 = tensor.data.iter().map(|&v| v as f64).sum();
        let sum_squares: f64 = tensor.data.iter().map(|&v| (v as f64) * (v as f64)).sum();
        for (what, got, want) in [
            ("sum", sum, &reference["sum"]),
            ("sum of squares", sum_squares, &reference["sum_squares"]),
        ] {
            let want = want.as_f64().unwrap();
            // Summation order differs from numpy's pairwise sum: allow f64 rounding, nothing more.
            assert!(
                (got - want).abs() <= 1e-9 * (1.0 + want.abs()),
                "{gguf_name} {what}: {got} vs {want}"
            );
        }
        types_seen.insert(reference["type"].as_str().unwrap().to_string());
    }
    assert_eq!(
        types_seen.into_iter().collect::<Vec<_>>(),
        ["F32", "Q4_K", "Q5_0", "Q6_K", "Q8_0"],
        "every quant type of the real file is checked"
    );
}

#[test]
fn real_gguf_config_and_tensor_inventory() {
    let Some((source, _)) = qwen() else { return };
    let config = config_from_gguf(source.file()).unwrap();
    common::assert_json_fields(
        &config,
        &[
            ("hidden_size", 896.0),
            ("num_hidden_layers", 24.0),
            ("num_attention_heads", 14.0),
            ("num_key_value_heads", 2.0),
            ("intermediate_size", 4864.0),
            ("rope_theta", 1_000_000.0),
            ("rms_norm_eps", 1e-6),
            ("vocab_size", 151_936.0),
            ("max_position_embeddings", 32_768.0),
            ("eos_token_id", 151_645.0),
        ],
    );
    // This file stores a separate (Q8_0) output matrix although the model ties embeddings.
    assert_eq!(config["tie_word_embeddings"], false);
    let names = source.tensor_names();
    assert_eq!(names.len(), 291);
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("model.") || n == "lm_head.weight"),
        "unmapped GGUF names"
    );
    common::assert_shapes(
        source,
        &[
            ("model.layers.23.self_attn.k_proj.weight", &[128, 896]),
            ("model.layers.0.mlp.down_proj.weight", &[896, 4864]),
        ],
    );
}

#[test]
fn larger_gguf_parses_with_its_config() {
    let Some(path) = model(QWEN_15B) else { return };
    let source = GgufSource::open(&path).unwrap();
    let config = config_from_gguf(source.file()).unwrap();
    assert_eq!(
        (
            &config["hidden_size"],
            &config["num_hidden_layers"],
            &config["intermediate_size"]
        ),
        (&Value::from(1536), &Value::from(28), &Value::from(8960))
    );
    assert_eq!(
        (
            &config["num_attention_heads"],
            &config["num_key_value_heads"]
        ),
        (&Value::from(12), &Value::from(2))
    );
    let down = source
        .load_f32("model.layers.0.mlp.down_proj.weight")
        .unwrap();
    assert_eq!(down.shape, vec![1536, 8960]);
    assert!(down.data.iter().all(|v| v.is_finite()));
    let tokenizer = TextTokenizer::from_gguf(source.file()).unwrap();
    assert_eq!(
        tokenizer.encode("Hello world!", false).unwrap(),
        [9707, 1879, 0]
    );
    // Same chat template as the 0.5B model outside the tool-calling branch (they differ only in
    // the escaping of a JSON example there), so the `qwen` prompt family, checked on the 0.5B
    // against transformers' rendering, holds for it too.
    let weights = open_weights(&path).unwrap();
    let template = weights.chat_template().unwrap().unwrap();
    assert_eq!(
        detect_family(&weights.config_json().unwrap(), Some(&template)),
        Some("qwen")
    );
    if let Some((small, _)) = qwen() {
        let small_template = small.file().get_str("tokenizer.chat_template").unwrap();
        let no_tools_branch = |t: &str| -> String {
            let at = t
                .find("messages[0]['content'] + '<|im_end|>")
                .expect("template has a no-tools branch");
            t[at..].to_string()
        };
        assert_eq!(no_tools_branch(small_template), no_tools_branch(&template));
    }
}

#[test]
fn qwen_prompts_equal_transformers_chat_template_rendering() {
    let Some((_, tokenizer)) = qwen() else { return };
    for mode in ["zero-shot", "supervised"] {
        let template = PromptTemplate::load("qwen", mode).unwrap();
        let builder = PromptBuilder::new(template.clone(), tokenizer.clone(), 512, None).unwrap();
        let cases: Vec<&Value> = reference()["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["mode"] == mode)
            .collect();
        assert_eq!(cases.len(), 4);
        for case in cases {
            let kind = if case["kind"] == "query" {
                TextKind::Query
            } else {
                TextKind::Passage
            };
            let text = case["text"].as_str().unwrap();
            if let Some(rendered) = case["rendered"].as_str() {
                assert_eq!(template.render(kind, None, text), rendered);
            }
            let input = builder.build(kind, None, text).unwrap();
            assert_eq!(input.ids, ids_of(&case["ids"]), "{mode} {kind:?} {text:?}");
            assert_eq!(input.pool, PoolAt::Token(input.ids.len() - 1));
            assert!(!input.truncated);
        }
        let texts = ["a", "b c", "déjà vu"];
        let batch = builder
            .build_batch(TextKind::Passage, Some(&["t1", "", "t3"]), &texts)
            .unwrap();
        for (i, text) in texts.iter().enumerate() {
            let title = ["t1", "", "t3"][i];
            assert_eq!(
                batch[i],
                builder.build(TextKind::Passage, Some(title), text).unwrap()
            );
        }
        assert!(builder
            .build_batch(TextKind::Passage, Some(&["t1"]), &texts)
            .is_err());
    }
}

#[test]
fn truncation_cuts_the_text_and_keeps_the_prompt_tail() {
    let Some((_, tokenizer)) = qwen() else { return };
    let long_text = "Statins lower cholesterol and reduce cardiovascular events. ".repeat(50);
    let template = PromptTemplate::load("qwen", "zero-shot").unwrap();
    let full = PromptBuilder::new(template.clone(), tokenizer.clone(), 4096, None).unwrap();
    let untruncated = full.build(TextKind::Passage, None, &long_text).unwrap();
    assert!(untruncated.ids.len() > 500);
    let builder = PromptBuilder::new(template, tokenizer.clone(), 96, None).unwrap();
    let input = builder.build(TextKind::Passage, None, &long_text).unwrap();
    assert!(input.truncated);
    assert_eq!(input.ids.len(), 96);
    assert_eq!(input.pool, PoolAt::Token(95));
    // Same head (system turn + start of the text) as the untruncated prompt ...
    assert_eq!(input.ids[..60], untruncated.ids[..60]);
    // ... and the whole instruction + assistant opener at the end.
    let tail = tokenizer
        .encode(
            "\". Use one word to represent the passage in a retrieval task. Make sure your word is in lowercase.<|im_end|>\n<|im_start|>assistant\nThe word is: \"",
            false,
        )
        .unwrap();
    assert_eq!(input.ids[96 - tail.len()..], tail[..]);
    let decoded = tokenizer.decode(&input.ids).unwrap();
    assert!(
        decoded.starts_with("<|im_start|>system\nYou are Qwen"),
        "{decoded}"
    );
    assert!(
        decoded.ends_with("<|im_start|>assistant\nThe word is: \""),
        "{decoded}"
    );

    // Supervised: the EOS stays last and counts toward the maximum length.
    let supervised = PromptBuilder::new(
        PromptTemplate::load("qwen", "supervised").unwrap(),
        tokenizer.clone(),
        32,
        None,
    )
    .unwrap();
    let input = supervised
        .build(TextKind::Passage, Some("Statins"), &long_text)
        .unwrap();
    assert_eq!(input.ids.len(), 32);
    assert_eq!(*input.ids.last().unwrap(), 151_645);
    assert!(tokenizer
        .decode(&input.ids)
        .unwrap()
        .starts_with("Passage: Statins Statins lower"));

    // A maximum length the prompt alone cannot fit in is refused up front.
    let too_small = PromptBuilder::new(
        PromptTemplate::load("qwen", "zero-shot").unwrap(),
        tokenizer.clone(),
        40,
        None,
    );
    assert!(too_small.is_err());
}

#[test]
fn minilm_tokenizer_and_pooling_equal_transformers() {
    let Some(dir) = model(MINILM) else { return };
    let tokenizer = TextTokenizer::from_hf_dir(&dir).unwrap();
    let template = PromptTemplate::load("bert", "sentence-embedding").unwrap();
    let builder = PromptBuilder::new(template.clone(), tokenizer.clone(), 512, None).unwrap();
    let builder16 = PromptBuilder::new(template, tokenizer, 16, None).unwrap();
    assert!(builder.normalize());
    let cases = reference()["minilm"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let input = builder.build(TextKind::Query, None, text).unwrap();
        assert_eq!(input.ids, ids_of(&case["ids"]), "{text:?}");
        assert_eq!(input.pool, PoolAt::Mean);
        let input = builder16.build(TextKind::Passage, None, text).unwrap();
        assert_eq!(input.ids, ids_of(&case["ids_max16"]), "max 16: {text:?}");
    }
}

#[test]
fn minilm_safetensors_and_fingerprint() {
    let Some(dir) = model(MINILM) else { return };
    let source = SafetensorsSource::open(&dir).unwrap();
    let embeddings = source
        .tensor_names()
        .into_iter()
        .find(|n| n.ends_with("embeddings.word_embeddings.weight"))
        .unwrap();
    let tensor = source.load_f32(&embeddings).unwrap();
    assert_eq!(tensor.shape, vec![30_522, 384]);
    assert!(tensor.data.iter().all(|v| v.is_finite()));

    let tokenizer = TextTokenizer::from_hf_dir(&dir).unwrap();
    let template = PromptTemplate::load("bert", "sentence-embedding").unwrap();
    let weights = open_weights(&dir).unwrap();
    let files = weights.model_files();
    assert_eq!(
        files,
        [dir.join("model.safetensors"), dir.join("config.json")]
    );
    assert_eq!(weights.config_json().unwrap()["hidden_size"], 384);
    assert_eq!(
        detect_family(
            &weights.config_json().unwrap(),
            weights.chat_template().unwrap().as_deref()
        ),
        Some("bert")
    );
    assert_eq!(
        weights
            .tokenizer()
            .unwrap()
            .encode("Hello world!", true)
            .unwrap(),
        [101, 7592, 2088, 999, 102]
    );
    let inputs = FingerprintInputs {
        model_files: files,
        adapter_files: Vec::new(),
        tokenizer: &tokenizer,
        template: &template,
        normalize: true,
        max_length: 256,
        dtype: "f32",
        hub_commit: None,
    };
    let first = encoder_fingerprint(&inputs).unwrap();
    assert_eq!(
        first,
        encoder_fingerprint(&inputs).unwrap(),
        "deterministic (and cached)"
    );
    assert_eq!(first.0.len(), 64);
    let other_length = FingerprintInputs {
        max_length: 128,
        ..inputs.clone()
    };
    assert_ne!(first, encoder_fingerprint(&other_length).unwrap());
    let unnormalised = FingerprintInputs {
        normalize: false,
        ..inputs.clone()
    };
    assert_ne!(first, encoder_fingerprint(&unnormalised).unwrap());
    let other_template = PromptTemplate::load("bert", "supervised").unwrap();
    let with_other_template = FingerprintInputs {
        template: &other_template,
        ..inputs.clone()
    };
    assert_ne!(first, encoder_fingerprint(&with_other_template).unwrap());
    let bf16 = FingerprintInputs {
        dtype: "bf16",
        ..inputs.clone()
    };
    assert_ne!(first, encoder_fingerprint(&bf16).unwrap());
    let from_the_hub = FingerprintInputs {
        hub_commit: Some("0123456789abcdef0123456789abcdef01234567"),
        ..inputs.clone()
    };
    assert_ne!(first, encoder_fingerprint(&from_the_hub).unwrap());
}
