//! Parity with transformers (and sentence-transformers pooling) on the tiny
//! random checkpoints of `fixtures/`, made by `scripts/make_fixtures.py`:
//! final hidden states of single sequences and of padded batches agree to
//! 1e-4 (f32, CPU backend).

mod common;

use common::{fixture_dir, load_reference, max_abs_error, Reference, SafetensorsFile};
use quarry_encoder::encode::CpuBackend;
use quarry_encoder::{
    BatchPolicy, EncodeOptions, Encoder, EncoderError, ModelConfig, Pooling, Precision,
    TensorSource,
};

const TOLERANCE: f32 = 1e-4;

fn encoder(name: &str, source: &dyn TensorSource, options: EncodeOptions) -> Encoder<CpuBackend> {
    let config = ModelConfig::from_hf_file(&fixture_dir(name).join("config.json")).unwrap();
    Encoder::load(&config, source, options, &Default::default()).unwrap()
}

fn raw_last_token() -> EncodeOptions {
    EncodeOptions {
        normalize: false,
        ..EncodeOptions::last_token()
    }
}

/// All sequences in one padded batch, as transformers ran them.
fn one_batch(options: EncodeOptions) -> EncodeOptions {
    EncodeOptions {
        batch: BatchPolicy {
            length_multiple: 64,
            max_batch_tokens: 1 << 20,
            max_batch_size: 1024,
        },
        ..options
    }
}

/// Worst errors of one-sequence calls (against the reference's single runs) and of the default
/// bucketing (several batches, lengths rounded to 16/32; against both reference runs).
fn single_and_bucketed_errors(encoder: &Encoder<CpuBackend>, reference: &Reference) -> (f32, f32) {
    let single: Vec<Vec<Vec<f32>>> = reference
        .sequences
        .iter()
        .map(|sequence| {
            encoder
                .hidden_states(std::slice::from_ref(sequence))
                .unwrap()
                .remove(0)
        })
        .collect();
    let single_error = max_abs_error(&single, &reference.single);
    let bucketed = encoder.hidden_states(&reference.sequences).unwrap();
    let bucketed_error = max_abs_error(&bucketed, &reference.batch.hidden)
        .max(max_abs_error(&bucketed, &reference.single));
    (single_error, bucketed_error)
}

/// Checks single and batched hidden states and last-token pooling; returns the worst errors.
fn check_decoder(name: &str, source: &dyn TensorSource) -> [f32; 4] {
    let reference = load_reference(&fixture_dir(name));
    let encoder = encoder(name, source, raw_last_token());

    let (single_error, bucketed_error) = single_and_bucketed_errors(&encoder, &reference);

    // One batch padded to 64, like transformers' padded batch (plus extra padding).
    let batched = encoder_with(name, source, one_batch(raw_last_token()))
        .hidden_states(&reference.sequences)
        .unwrap();
    let batch_error = max_abs_error(&batched, &reference.batch.hidden);
    assert_eq!(reference.batch.lengths.len(), reference.sequences.len());
    assert_eq!(reference.batch.input_ids.len(), reference.sequences.len());

    let pooled = encoder.embed(&reference.sequences).unwrap();
    let expected_pooled: Vec<Vec<Vec<f32>>> = reference
        .single
        .iter()
        .map(|rows| vec![rows.last().unwrap().clone()])
        .collect();
    let pooled: Vec<Vec<Vec<f32>>> = pooled.into_iter().map(|row| vec![row]).collect();
    let pooled_error = max_abs_error(&pooled, &expected_pooled);

    let errors = [single_error, bucketed_error, batch_error, pooled_error];
    eprintln!("{name}: max abs error single {single_error:.2e}, bucketed batches {bucketed_error:.2e}, one padded batch {batch_error:.2e}, last-token pooled {pooled_error:.2e}");
    for error in errors {
        assert!(error < TOLERANCE, "{name}: {errors:?}");
    }
    errors
}

fn encoder_with(
    name: &str,
    source: &dyn TensorSource,
    options: EncodeOptions,
) -> Encoder<CpuBackend> {
    encoder(name, source, options)
}

fn fixture_source(name: &str) -> SafetensorsFile {
    SafetensorsFile::open(&fixture_dir(name).join("model.safetensors"))
}

#[test]
fn qwen2_with_tied_embeddings_matches_transformers() {
    check_decoder("qwen2_tied", &fixture_source("qwen2_tied"));
}

#[test]
fn qwen2_with_separate_lm_head_matches_transformers() {
    check_decoder("qwen2_untied", &fixture_source("qwen2_untied"));
}

#[test]
fn qwen2_5_vl_text_tower_matches_transformers() {
    check_decoder("qwen2_5_vl", &fixture_source("qwen2_5_vl"));
}

#[test]
fn qwen2_5_vl_text_tower_loads_under_every_known_prefix() {
    // transformers >= 4.52 names the text tower `model.language_model.*`,
    // some exports `language_model.model.*`; the fixture file uses `model.*`.
    for prefix in ["model.language_model.", "language_model.model."] {
        let source = fixture_source("qwen2_5_vl").renamed("model.", prefix);
        assert!(source.shape("model.embed_tokens.weight").is_none());
        assert!(source
            .shape(&format!("{prefix}embed_tokens.weight"))
            .is_some());
        check_decoder("qwen2_5_vl", &source);
    }
}

#[test]
fn bert_matches_transformers_and_sentence_transformers_pooling() {
    let name = "bert";
    let dir = fixture_dir(name);
    let reference = load_reference(&dir);
    let source = fixture_source(name);
    let options = EncodeOptions::from_sentence_transformers_dir(&dir).unwrap();
    assert_eq!(options.pooling, Pooling::Mean);
    assert!(options.normalize);
    let encoder = encoder(name, &source, options);

    let (single_error, bucketed_error) = single_and_bucketed_errors(&encoder, &reference);
    let batched = encoder_with(name, &source, one_batch(options))
        .hidden_states(&reference.sequences)
        .unwrap();
    let batch_error = max_abs_error(&batched, &reference.batch.hidden);

    let expected: Vec<Vec<Vec<f32>>> = reference
        .pooled
        .unwrap()
        .into_iter()
        .map(|row| vec![row])
        .collect();
    let pooled: Vec<Vec<Vec<f32>>> = encoder
        .embed(&reference.sequences)
        .unwrap()
        .into_iter()
        .map(|row| vec![row])
        .collect();
    let pooled_error = max_abs_error(&pooled, &expected);
    let errors = [single_error, bucketed_error, batch_error, pooled_error];
    eprintln!("{name}: max abs error single {single_error:.2e}, bucketed batches {bucketed_error:.2e}, one padded batch {batch_error:.2e}, mean-pooled+normalised {pooled_error:.2e}");
    for error in errors {
        assert!(error < TOLERANCE, "{name}: {errors:?}");
    }
}

#[test]
fn missing_tensor_is_named_with_its_file() {
    let source = fixture_source("qwen2_tied").renamed("model.layers.1.", "model.layers.1.renamed.");
    let config = ModelConfig::from_hf_file(&fixture_dir("qwen2_tied").join("config.json")).unwrap();
    let error =
        Encoder::<CpuBackend>::load(&config, &source, raw_last_token(), &Default::default())
            .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, EncoderError::Weights { .. }), "{message}");
    assert!(message.contains("model.safetensors"), "{message}");
    assert!(
        message.contains("model.layers.1.input_layernorm.weight"),
        "{message}"
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let source = fixture_source("bert");
    let encoder = encoder("bert", &source, EncodeOptions::last_token());
    for (input, needle) in [
        (vec![vec![1, 2], vec![]], "no tokens"),
        (vec![vec![1, 80]], "outside the vocabulary"),
        (vec![vec![1; 41]], "at most 40"),
    ] {
        let error = encoder.embed(&input).unwrap_err();
        assert!(matches!(error, EncoderError::InvalidInput(_)), "{error}");
        assert!(error.to_string().contains(needle), "{error}");
    }
    assert!(encoder.embed(&[]).unwrap().is_empty());
}

#[test]
fn half_precision_is_refused_on_the_cpu_backend() {
    let source = fixture_source("bert");
    let config = ModelConfig::from_hf_file(&fixture_dir("bert").join("config.json")).unwrap();
    let options = EncodeOptions {
        precision: Precision::BF16,
        ..EncodeOptions::last_token()
    };
    let result = Encoder::<CpuBackend>::load(&config, &source, options, &Default::default());
    match result {
        Err(EncoderError::Backend(message)) => assert!(message.contains("BF16"), "{message}"),
        Err(other) => panic!("unexpected error {other}"),
        // Should burn-ndarray gain bf16, loading is fine: nothing to check here.
        Ok(_) => {}
    }
}
