//! One LoRA training step against PyTorch + PEFT, on the tiny Qwen2 of
//! `tests/fixtures/lora/` (made by `scripts/make_lora_fixture.py`): same initial adapter
//! (PEFT's own `save_pretrained` output), same batch, supervised prompts; the InfoNCE loss
//! agrees to 1e-5 and every lora_A / lora_B gradient to 1e-4 relative (L2 norm of the
//! difference over the norm of PEFT's gradient), CPU f32 against PyTorch float64; padding
//! every sequence of a side to one fixed length (as the GPU trainer does) leaves the loss as is.
//! Also: merging the adapter into the weights gives the hidden states of the unmerged branch.

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use burn::tensor::DType;
use quarry_encoder::contrastive::{contrastive_loss, last_token_embeddings, ContrastiveBatch};
use quarry_encoder::encode::CpuBackend;
use quarry_encoder::lora::{peft_tensor_name, LoraAdapter, LoraMergedSource};
use quarry_encoder::prompt::{PromptBuilder, PromptTemplate, TextKind};
use quarry_encoder::weights::open_weights;
use quarry_encoder::{ModelConfig, Qwen2Model};
use safetensors::SafeTensors;
use serde_json::Value;

type Train = Autodiff<CpuBackend>;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/lora")
}

fn ids(value: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(value.clone()).unwrap()
}

fn qwen2_config(model_dir: &Path) -> quarry_encoder::Qwen2Config {
    match ModelConfig::from_hf_file(&model_dir.join("config.json")).unwrap() {
        ModelConfig::Qwen2(config) => config,
        other => panic!("not qwen2: {other:?}"),
    }
}

#[test]
fn one_training_step_matches_peft() {
    let report = step_report::<Train>(DType::F32);
    assert!(
        report.padding_change < 1e-5,
        "fixed-length padding changed the loss by {}",
        report.padding_change
    );
    assert!(report.loss_error < 1e-5, "loss error {}", report.loss_error);
    assert!(
        report.worst_relative < 1e-4,
        "gradient error {} ({})",
        report.worst_relative,
        report.worst_name
    );
}

/// The same step on the GPU (built with `--features cuda`; run where a GPU is, e.g. the test
/// binary carried to the GPU machine): f32 runs burn's kernels, bf16 the cuBLAS frozen GEMMs
/// both ways (forward and `dX = dY Wᵀ`), checked against the same float64 PEFT reference.
/// burn-cuda's f32 matmul rounds like TF32 (~3e-4 relative) and bf16
/// keeps 8 bits of mantissa; the temperature multiplies score errors by 100. So the bounds
/// only separate rounding (a few percent, gradients still pointing the same way: cosine near
/// 1) from a wrong kernel (order one). Every number is printed before anything is asserted.
#[cfg(feature = "cuda")]
#[test]
fn one_training_step_matches_peft_on_cuda() {
    type CudaTrain = Autodiff<quarry_encoder::encode::CudaBackend>;
    eprintln!(
        "projection GEMMs: {:?}",
        quarry_encoder::cuda::gemm_engine()
    );
    let f32_report = step_report::<CudaTrain>(DType::F32);
    let bf16_report = step_report::<CudaTrain>(DType::BF16);
    for (label, report, loss_bound, gradient_bound) in [
        ("f32", &f32_report, 0.05, 0.05),
        ("bf16", &bf16_report, 0.2, 0.3),
    ] {
        assert!(
            report.padding_change < loss_bound,
            "{label}: padding changed the loss by {}",
            report.padding_change
        );
        assert!(
            report.loss_error < loss_bound,
            "{label}: loss error {}",
            report.loss_error
        );
        assert!(
            report.worst_relative < gradient_bound,
            "{label}: gradient error {} ({})",
            report.worst_relative,
            report.worst_name
        );
        assert!(
            report.worst_cosine > 0.95,
            "{label}: gradient cosine {}",
            report.worst_cosine
        );
    }
}

#[test]
fn a_batch_that_does_not_fit_its_padded_lengths_is_refused() {
    let model_dir = fixtures().join("tiny_qwen2");
    let weights = open_weights(&model_dir).unwrap();
    let model = Qwen2Model::<Train>::load(
        &qwen2_config(&model_dir),
        weights.as_source(),
        &Default::default(),
        DType::F32,
    )
    .unwrap();
    let batch = ContrastiveBatch {
        queries: vec![vec![3, 70, 256]],
        passages: vec![vec![5, 9, 10, 256]],
        group_size: 1,
        query_length: None,
        passage_length: Some(3),
    };
    let error = contrastive_loss(&model, &batch, 0.01)
        .unwrap_err()
        .to_string();
    assert!(error.contains("4 tokens (1 to 3 allowed)"), "{error}");
    let outside = ContrastiveBatch {
        passages: vec![vec![5, 9, 300]],
        ..batch
    };
    let error = contrastive_loss(&model, &outside, 0.01)
        .unwrap_err()
        .to_string();
    assert!(error.contains("outside the vocabulary"), "{error}");
}

/// How one training step compares with PEFT's float64 reference.
struct StepReport {
    /// |loss - PEFT's loss|.
    loss_error: f64,
    /// |loss with every side padded to one fixed length - loss with bucketed lengths|.
    padding_change: f64,
    /// Largest L2 error of a gradient over the norm of PEFT's, and its tensor.
    worst_relative: f64,
    worst_name: String,
    /// Smallest cosine between a gradient and PEFT's (direction, whatever the rounding).
    worst_cosine: f64,
}

fn step_report<B: burn::tensor::backend::AutodiffBackend>(dtype: DType) -> StepReport {
    let dir = fixtures();
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("parity.json")).unwrap()).unwrap();
    let model_dir = dir.join("tiny_qwen2");
    let weights = open_weights(&model_dir).unwrap();

    // The prompts quarry builds (as `quarry build --mode supervised`) are the token ids the
    // reference fed PyTorch.
    let template = PromptTemplate::load("base", "supervised").unwrap();
    let builder = PromptBuilder::new(template, weights.tokenizer().unwrap(), 128, None).unwrap();
    let texts = |key: &str| -> Vec<String> {
        reference[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let queries: Vec<Vec<u32>> = texts("queries")
        .iter()
        .map(|text| builder.build(TextKind::Query, None, text).unwrap().ids)
        .collect();
    let passages: Vec<Vec<u32>> = reference["passages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let (title, text) = (p["title"].as_str().unwrap(), p["text"].as_str().unwrap());
            builder
                .build(TextKind::Passage, Some(title), text)
                .unwrap()
                .ids
        })
        .collect();
    assert_eq!(queries, ids(&reference["query_ids"]));
    assert_eq!(passages, ids(&reference["passage_ids"]));

    let device = Default::default();
    let mut model = Qwen2Model::<B>::load(
        &qwen2_config(&model_dir),
        weights.as_source(),
        &device,
        dtype,
    )
    .unwrap();
    let adapter = LoraAdapter::load(&dir.join("initial_adapter")).unwrap();
    assert_eq!(adapter.modules.len(), 2 * 7);
    model.attach_lora(&adapter, 0.0, true).unwrap();
    for (_, branch) in model.lora_branches_mut() {
        branch.a = branch.a.clone().require_grad();
        branch.b = branch.b.clone().require_grad();
    }
    let batch = ContrastiveBatch {
        queries,
        passages,
        group_size: reference["group_size"].as_u64().unwrap() as usize,
        query_length: None,
        passage_length: None,
    };
    let temperature = reference["temperature"].as_f64().unwrap();
    let loss = contrastive_loss(&model, &batch, temperature).unwrap();
    let loss_value: f64 = loss
        .clone()
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .unwrap()[0];
    // The GPU trainer pads every sequence of a side to one fixed length: the same loss.
    let longest = |side: &[Vec<u32>]| side.iter().map(Vec::len).max().unwrap();
    let fixed = ContrastiveBatch {
        query_length: Some(longest(&batch.queries) + 9),
        passage_length: Some(longest(&batch.passages) + 5),
        ..batch.clone()
    };
    let fixed_value: f64 = contrastive_loss(&model, &fixed, temperature)
        .unwrap()
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .unwrap()[0];
    let gradients = loss.backward();

    let expected_bytes = std::fs::read(dir.join("gradients.safetensors")).unwrap();
    let expected = SafeTensors::deserialize(&expected_bytes).unwrap();
    let mut worst = (0.0f64, String::new());
    let mut worst_cosine = 1.0f64;
    let mut compared = 0;
    for (module, branch) in model.lora_branches_mut() {
        for (which, tensor) in [('A', &branch.a), ('B', &branch.b)] {
            let name = peft_tensor_name(&module, which);
            let ours = tensor
                .grad(&gradients)
                .unwrap_or_else(|| panic!("no gradient for {name}"))
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap();
            let view = expected.tensor(&name).unwrap();
            assert_eq!(view.shape(), tensor.dims());
            let theirs: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let difference: f64 = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                .sum::<f64>()
                .sqrt();
            let norm: f64 = theirs
                .iter()
                .map(|b| f64::from(*b).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(norm > 0.0, "{name}: zero reference gradient");
            let relative = difference / norm;
            let our_norm: f64 = ours
                .iter()
                .map(|a| f64::from(*a).powi(2))
                .sum::<f64>()
                .sqrt();
            let dot: f64 = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            worst_cosine = worst_cosine.min(dot / (our_norm * norm).max(f64::MIN_POSITIVE));
            if relative > worst.0 {
                worst = (relative, name);
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 28);
    let reference_loss = reference["loss_float64"].as_f64().unwrap();
    let report = StepReport {
        loss_error: (loss_value - reference_loss).abs(),
        padding_change: (fixed_value - loss_value).abs(),
        worst_relative: worst.0,
        worst_name: worst.1,
        worst_cosine,
    };
    eprintln!(
        "LoRA parity ({dtype:?}): loss {loss_value:.9} (PyTorch f64 {reference_loss:.9}), \
         |error| {:.3e}; padded to fixed lengths {fixed_value:.9}; worst gradient relative \
         error {:.3e} ({}); smallest gradient cosine {:.6}",
        report.loss_error, report.worst_relative, report.worst_name, report.worst_cosine
    );
    report
}

#[test]
fn merged_adapter_encodes_like_the_branch() {
    let dir = fixtures();
    let model_dir = dir.join("tiny_qwen2");
    let weights = open_weights(&model_dir).unwrap();
    let config = qwen2_config(&model_dir);
    let adapter = LoraAdapter::load(&dir.join("initial_adapter")).unwrap();
    let device = Default::default();
    let mut with_branch =
        Qwen2Model::<CpuBackend>::load(&config, weights.as_source(), &device, DType::F32).unwrap();
    with_branch.attach_lora(&adapter, 0.0, true).unwrap();
    let merged_source = LoraMergedSource::new(weights.as_source(), &adapter).unwrap();
    let merged =
        Qwen2Model::<CpuBackend>::load(&config, &merged_source, &device, DType::F32).unwrap();
    let plain =
        Qwen2Model::<CpuBackend>::load(&config, weights.as_source(), &device, DType::F32).unwrap();
    let sequences = vec![vec![3u32, 70, 101, 256], vec![5, 9, 256]];
    let read = |model: &Qwen2Model<CpuBackend>| {
        last_token_embeddings(model, &sequences, None)
            .into_data()
            .to_vec::<f32>()
            .unwrap()
    };
    let (a, b, c) = (read(&with_branch), read(&merged), read(&plain));
    let max_diff = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max)
    };
    assert!(max_diff(&a, &b) < 1e-5, "{}", max_diff(&a, &b));
    assert!(max_diff(&a, &c) > 1e-3, "the adapter changes nothing?");
}
