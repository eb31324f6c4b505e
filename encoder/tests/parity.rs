//! Parity with transformers (and sentence-transformers pooling) on the tiny
//! random checkpoints of `fixtures/`, made by `scripts/make_fixtures.py`:
//! final hidden states of single sequences and of padded batches agree to
//! 1e-4 (f32, CPU backend).

mod common;

use std::cell::RefCell;
use std::path::Path;

use common::{fixture_dir, load_reference, max_abs_error, Reference, SafetensorsFile};
use quarry_encoder::encode::CpuBackend;
use quarry_encoder::weights::open_weights;
use quarry_encoder::{
    BatchPolicy, EncodeOptions, Encoder, EncoderError, HostTensor, ModelConfig, Pooling, Precision,
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
    // transformers >= 4.52 names the text tower `model.language_model.*` in memory (its
    // save_pretrained maps that back to `model.*`, as the fixture file has it), so files
    // saved from the state dict carry it; some exports use `language_model.model.*`.
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
fn qwen2_5_vl_flat_config_of_transformers_4_51_matches_transformers() {
    // Saved by transformers 4.51 (make_qwen2_5_vl_flat_fixture.py): the layout of
    // Qwen2.5-VL-7B-Instruct's published files, text settings at the top level and
    // `rope_scaling: {type, rope_type: "default", mrope_section}`.
    check_decoder("qwen2_5_vl_flat", &fixture_source("qwen2_5_vl_flat"));
}

#[test]
fn qwen2_5_vl_flat_and_nested_configs_read_alike() {
    let read = |name: &str| {
        let path = fixture_dir(name).join("config.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        (ModelConfig::from_hf_file(&path).unwrap(), value)
    };
    let (flat, flat_json) = read("qwen2_5_vl_flat");
    let (nested, nested_json) = read("qwen2_5_vl");
    assert!(flat_json.get("text_config").is_none());
    assert!(flat_json["rope_scaling"]["mrope_section"].is_array());
    assert!(nested_json["text_config"]["rope_parameters"]["mrope_section"].is_array());
    assert_eq!(flat, nested);
    let ModelConfig::Qwen2(config) = flat else {
        panic!("not read as Qwen2: {flat:?}")
    };
    assert_eq!(
        (config.vocab_size, config.hidden_size, config.head_dim),
        (96, 64, 16)
    );
    assert_eq!(config.rope_theta, 1e6);
}

/// A tensor source that records which tensors the model code loads.
struct Recording<'a> {
    inner: &'a dyn TensorSource,
    loaded: RefCell<Vec<String>>,
}

impl TensorSource for Recording<'_> {
    fn tensor_names(&self) -> Vec<String> {
        self.inner.tensor_names()
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.inner.shape(name)
    }
    fn load_f32(&self, name: &str) -> Result<HostTensor, EncoderError> {
        self.loaded.borrow_mut().push(name.to_string());
        self.inner.load_f32(name)
    }
    fn origin(&self) -> &Path {
        self.inner.origin()
    }
}

#[test]
fn qwen2_5_vl_vision_tower_and_lm_head_are_never_read() {
    for (name, rename) in [
        ("qwen2_5_vl_flat", None),
        ("qwen2_5_vl", None),
        ("qwen2_5_vl", Some(("model.", "model.language_model."))),
        ("qwen2_5_vl", Some(("visual.", "model.visual."))),
    ] {
        let file = match rename {
            Some((from, to)) => fixture_source(name).renamed(from, to),
            None => fixture_source(name),
        };
        let vision: Vec<String> = file
            .tensor_names()
            .into_iter()
            .filter(|tensor| tensor.contains("visual."))
            .collect();
        assert!(vision.len() >= 6, "{name}: vision tensors {vision:?}");
        let source = Recording {
            inner: &file,
            loaded: RefCell::new(Vec::new()),
        };
        encoder(name, &source, raw_last_token());
        let loaded = source.loaded.into_inner();
        // Embedding, final norm and 12 tensors per layer (q/k/v with biases, o, MLP, 2 norms).
        assert_eq!(loaded.len(), 2 + 2 * 12, "{name} {rename:?}: {loaded:?}");
        for tensor in &loaded {
            assert!(
                !tensor.contains("visual") && !tensor.starts_with("lm_head"),
                "{name} {rename:?}: read {tensor}"
            );
        }
    }
}

#[test]
fn qwen2_5_vl_folder_loads_through_open_weights() {
    // The real loader (memory-mapped safetensors, found from the folder) on both fixtures.
    for name in ["qwen2_5_vl_flat", "qwen2_5_vl"] {
        let dir = fixture_dir(name);
        let weights = open_weights(&dir).unwrap();
        let reference = load_reference(&dir);
        let encoder = encoder(name, weights.as_source(), raw_last_token());
        let hidden = encoder.hidden_states(&reference.sequences).unwrap();
        let error = max_abs_error(&hidden, &reference.single);
        assert!(error < TOLERANCE, "{name}: {error:e}");
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

#[test]
fn embedding_reports_progress_after_each_batch() {
    // Batches of at most 2 sequences: 7 sequences take at least 4 forward passes.
    let options = EncodeOptions {
        batch: BatchPolicy {
            length_multiple: 8,
            max_batch_tokens: 1 << 20,
            max_batch_size: 2,
        },
        ..raw_last_token()
    };
    let encoder = encoder("qwen2_tied", &fixture_source("qwen2_tied"), options);
    let sequences: Vec<Vec<u32>> = (1..=7u32).map(|n| (1..=n + 2).collect()).collect();
    let reported = RefCell::new(Vec::new());
    let embedded = encoder
        .embed_reporting(&sequences, &|done| reported.borrow_mut().push(done))
        .unwrap();
    let reported = reported.into_inner();
    assert!(reported.len() >= 4, "{reported:?}");
    assert!(reported.windows(2).all(|w| w[0] < w[1]), "{reported:?}");
    assert_eq!(reported.last(), Some(&7));
    assert_eq!(embedded, encoder.embed(&sequences).unwrap());
}
