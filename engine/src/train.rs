//! `quarry train`: LoRA contrastive fine-tuning of a Qwen2 encoder (the RepLLaMA recipe).
//!
//! Data flow: [`crate::train_data`] groups -> per step, a deterministic sample (seeded
//! shuffle per epoch; per query one positive and `group_size - 1` hard negatives, drawn from
//! a generator seeded by `(seed, step)`) -> token ids with the supervised prompts (the
//! [`PromptBuilder`] `quarry build --mode supervised` uses) -> micro-batches through
//! [`contrastive_loss`] on an autodiff backend -> gradients summed over micro-batches
//! (each micro-batch's loss weighted by its share of the global batch; in-batch negatives are
//! the passages of the same micro-batch, as Tevatron without GradCache) -> global-norm
//! clipping -> AdamW (burn's, PyTorch's formula) at a linear warm-up/decay learning rate
//! (transformers' `get_linear_schedule_with_warmup`).
//!
//! Determinism and resume: everything random is a function of the seed and the step (data
//! order, sampling, LoRA dropout masks: the backend generator is re-seeded per
//! micro-batch), so a checkpoint needs only the adapter, AdamW's moments and the step.
//! Checkpoints (`checkpoint.safetensors` in the output folder) are written atomically; a run
//! resumed from one ends with the bytes an uninterrupted run writes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::backend::Autodiff;
use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, SimpleOptimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Tensor, TensorData};
use indicatif::ProgressBar;
use quarry_encoder::contrastive::{contrastive_loss, ContrastiveBatch};
use quarry_encoder::lora::{
    peft_tensor_name, serialize_f32, write_atomically, LoraAdapter, LoraConfig, LoraPair,
};
use quarry_encoder::prompt::{detect_family, PromptBuilder, PromptTemplate, TextKind};
use quarry_encoder::weights::open_weights;
use quarry_encoder::{ComputeDevice, HostTensor, ModelConfig, Precision, Qwen2Model};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::train_data::{load_train_groups, TrainGroup, TrainPassage};

/// File of the output folder holding the resumable state.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// File of the output folder with the run's summary.
pub const SUMMARY_FILE: &str = "training_summary.json";
const STATE_KEY: &str = "quarry_train_state";

/// Everything that determines the trained adapter (a resumed run must match it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub target_modules: Vec<String>,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clip (PyTorch `clip_grad_norm_`); 0 disables it.
    pub max_grad_norm: f64,
    pub temperature: f64,
    /// Passages per query: its positive and `group_size - 1` hard negatives.
    pub group_size: usize,
    /// Queries per optimiser step (the global batch).
    pub batch_size: usize,
    /// Queries per forward/backward pass (gradient accumulation up to `batch_size`).
    pub micro_batch: usize,
    pub warmup_ratio: f64,
    pub epochs: usize,
    /// Caps the number of optimiser steps (and so the schedule's length).
    pub max_steps: Option<usize>,
    pub query_max_len: usize,
    pub passage_max_len: usize,
    pub seed: u64,
    pub precision: Precision,
    /// The LoRA branches compute in f32 even on a bf16/f16 base (PEFT's
    /// `autocast_adapter_dtype`); false runs them in the base's dtype.
    #[serde(default = "adapter_f32_default")]
    pub adapter_f32: bool,
}

/// Settings saved before `adapter_f32` existed ran the branch in the base's dtype.
fn adapter_f32_default() -> bool {
    false
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            rank: 32,
            alpha: 64.0,
            dropout: 0.1,
            target_modules: quarry_encoder::lora::DEFAULT_TARGET_MODULES
                .iter()
                .map(|m| m.to_string())
                .collect(),
            learning_rate: 1e-4,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            temperature: 0.01,
            group_size: 8,
            batch_size: 32,
            micro_batch: 8,
            warmup_ratio: 0.1,
            epochs: 1,
            max_steps: None,
            query_max_len: 32,
            passage_max_len: 192,
            seed: 42,
            precision: Precision::F32,
            adapter_f32: true,
        }
    }
}

impl TrainSettings {
    fn lora_config(&self) -> LoraConfig {
        LoraConfig {
            rank: self.rank,
            alpha: self.alpha,
            dropout: self.dropout,
            target_modules: self.target_modules.clone(),
            use_rslora: false,
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("--batch", self.batch_size),
            ("--micro-batch", self.micro_batch),
            ("--group-size", self.group_size),
            ("--epochs", self.epochs),
            ("--query-max-len", self.query_max_len),
            ("--passage-max-len", self.passage_max_len),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate >= 0.0) {
            return Err(format!("--lr {} must be >= 0", self.learning_rate));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(format!("--temperature {} must be > 0", self.temperature));
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return Err(format!(
                "--warmup-ratio {} must be in [0, 1]",
                self.warmup_ratio
            ));
        }
        if self.max_steps == Some(0) {
            return Err("--max-steps must be positive".to_string());
        }
        Ok(())
    }
}

/// One `quarry train` invocation.
#[derive(Debug, Clone)]
pub struct TrainJob {
    /// GGUF file or HF folder of the base model.
    pub model: PathBuf,
    /// Tevatron JSONL training groups.
    pub train_file: PathBuf,
    /// Output folder: the PEFT adapter, the checkpoint, the summary.
    pub output: PathBuf,
    pub device: ComputeDevice,
    pub settings: TrainSettings,
    /// Write a checkpoint every this many steps (0: only at the end or when stopping).
    pub checkpoint_every: usize,
    /// Continue from the output folder's checkpoint.
    pub resume: bool,
    /// Stop (with a checkpoint) after this many steps of the schedule, as if interrupted.
    pub stop_after: Option<usize>,
    /// Stop (with a checkpoint) after the first step that ends this many seconds after the
    /// start: a time-limited job ends cleanly and `resume` continues it.
    pub time_limit: Option<f64>,
}

/// What a run did (also written to `training_summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub model: PathBuf,
    pub train_file: PathBuf,
    pub output: PathBuf,
    pub groups: usize,
    /// Steps of the schedule, and the step reached.
    pub total_steps: usize,
    pub step: usize,
    pub finished: bool,
    pub resumed_from_step: Option<usize>,
    /// Mean loss of the steps run by this invocation, and of the last one.
    pub mean_loss: Option<f64>,
    pub last_loss: Option<f64>,
    /// Real (unpadded) tokens forwarded by this invocation, and their rate.
    pub tokens: u64,
    pub seconds: f64,
    pub tokens_per_second: f64,
    /// Wall seconds of each step of this invocation (the first ones include GPU kernel
    /// tuning of new shapes; the rest are the steady state).
    pub step_seconds: Vec<f64>,
    /// Loss of each step of this invocation (the loss curve).
    pub step_losses: Vec<f64>,
    pub settings: TrainSettings,
}

fn train_error(path: &Path, detail: impl Into<String>) -> EngineError {
    EngineError::Build {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Where a step stands, for [`TrainReport::step_done`].
#[derive(Debug, Clone, Copy)]
pub struct StepProgress {
    /// Steps done (1-based) and the schedule's length.
    pub step: usize,
    pub total_steps: usize,
    pub loss: f64,
    pub learning_rate: f64,
    /// Wall seconds of this step.
    pub seconds: f64,
    /// Real tokens per second since this invocation started.
    pub tokens_per_second: f64,
}

/// How the loop reports progress; the library prints nothing itself. A [`ProgressBar`]
/// reports by moving (hidden, it reports nothing); a batch job's log may want a line per step
/// instead (the `quarry train` binary does both, by whether stderr is a terminal).
pub trait TrainReport {
    /// Before the first step: the schedule's length and the step it starts from.
    fn started(&self, _total_steps: usize, _start_step: usize) {}
    /// A micro-batch of the invocation's first step went forward and backward. That step
    /// compiles and tunes the GPU kernels of every shape, so it can take minutes.
    fn first_step_micro_batch(&self, _step: usize, _micro_batch: usize, _seconds: f64) {}
    /// An optimiser step finished.
    fn step_done(&self, _progress: &StepProgress) {}
}

impl TrainReport for ProgressBar {
    fn started(&self, total_steps: usize, start_step: usize) {
        self.set_length(total_steps as u64);
        self.set_position(start_step as u64);
    }

    fn step_done(&self, progress: &StepProgress) {
        self.set_position(progress.step as u64);
        self.set_message(format!(
            "loss {:.4}  lr {:.2e}  {:.0} tok/s",
            progress.loss, progress.learning_rate, progress.tokens_per_second
        ));
    }
}

/// burn's backends draw random numbers (the dropout masks) from one process-wide generator,
/// which the loop re-seeds per micro-batch; two trainings running at once in one process
/// would interleave their draws. This lock runs them one after the other.
static ONE_TRAINING_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs (or resumes) a training job.
pub fn train(job: &TrainJob, progress: &dyn TrainReport) -> Result<TrainSummary> {
    let _one_at_a_time = ONE_TRAINING_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match job.device {
        ComputeDevice::Cpu => train_on::<Autodiff<quarry_encoder::encode::CpuBackend>>(
            job,
            &Default::default(),
            progress,
        ),
        #[cfg(feature = "cuda")]
        ComputeDevice::Cuda(index) => train_on::<Autodiff<quarry_encoder::encode::CudaBackend>>(
            job,
            &burn::backend::cuda::CudaDevice::new(index),
            progress,
        ),
        #[cfg(not(feature = "cuda"))]
        ComputeDevice::Cuda(_) => Err(train_error(
            &job.model,
            "this build has no GPU support (rebuild with `--features cuda`)",
        )),
    }
}

/// A 64-bit seed for one purpose and position, from the run's seed.
fn derived_seed(seed: u64, stream: u64, position: u64) -> u64 {
    // splitmix64 finaliser over the three values: nearby inputs give unrelated seeds.
    let mut z = seed
        ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ position.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const STREAM_INIT: u64 = 1;
const STREAM_ORDER: u64 = 2;
const STREAM_SAMPLE: u64 = 3;
const STREAM_DROPOUT: u64 = 4;

/// transformers' `get_linear_schedule_with_warmup` factor at 0-based step `step`.
pub fn schedule_factor(step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        step as f64 / warmup.max(1) as f64
    } else {
        ((total - step.min(total)) as f64 / (total - warmup).max(1) as f64).max(0.0)
    }
}

/// The groups (indices) and, per group, the positive and negatives of optimiser step `step`.
fn step_sample<'g>(
    groups: &'g [TrainGroup],
    settings: &TrainSettings,
    steps_per_epoch: usize,
    step: usize,
) -> Vec<(&'g TrainGroup, Vec<&'g TrainPassage>)> {
    let epoch = step / steps_per_epoch;
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(derived_seed(
        settings.seed,
        STREAM_ORDER,
        epoch as u64,
    )));
    let start = (step % steps_per_epoch) * settings.batch_size;
    let mut rng =
        ChaCha8Rng::seed_from_u64(derived_seed(settings.seed, STREAM_SAMPLE, step as u64));
    order[start..start + settings.batch_size]
        .iter()
        .map(|&index| {
            let group = &groups[index];
            let mut passages = Vec::with_capacity(settings.group_size);
            passages.push(&group.positives[rng.random_range(0..group.positives.len())]);
            let wanted = settings.group_size - 1;
            if wanted > 0 {
                if group.negatives.len() >= wanted {
                    passages.extend(group.negatives.choose_multiple(&mut rng, wanted));
                } else {
                    // Too few hard negatives: draw with replacement (Tevatron does the same).
                    for _ in 0..wanted {
                        passages.push(&group.negatives[rng.random_range(0..group.negatives.len())]);
                    }
                }
            }
            (group, passages)
        })
        .collect()
}

/// A trainable tensor's AdamW state, kept on the inner (non-autodiff) backend.
type MomentState<B> = Option<AdamWState<<B as AutodiffBackend>::InnerBackend, 2>>;

struct Checkpoint {
    step: usize,
    adapter: LoraAdapter,
    /// Per PEFT tensor name: (time, first moment, second moment).
    moments: HashMap<String, (usize, HostTensor, HostTensor)>,
    tokens: u64,
}

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    settings: TrainSettings,
    tokens: u64,
}

fn host<Bk: Backend>(tensor: Tensor<Bk, 2>) -> Result<HostTensor> {
    let shape = tensor.dims().to_vec();
    let data = tensor
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| train_error(Path::new("."), format!("reading a tensor: {e:?}")))?;
    Ok(HostTensor { shape, data })
}

fn device_tensor<Bk: Backend>(host: &HostTensor, device: &Bk::Device) -> Tensor<Bk, 2> {
    Tensor::from_data(
        TensorData::new(host.data.clone(), [host.shape[0], host.shape[1]]),
        (device, DType::F32),
    )
}

fn write_checkpoint(path: &Path, checkpoint: &Checkpoint, settings: &TrainSettings) -> Result<()> {
    let mut named: Vec<(String, &HostTensor)> = Vec::new();
    for (module, pair) in &checkpoint.adapter.modules {
        named.push((
            format!("adapter/{}", peft_tensor_name(module, 'A')),
            &pair.a,
        ));
        named.push((
            format!("adapter/{}", peft_tensor_name(module, 'B')),
            &pair.b,
        ));
    }
    let mut times = serde_json::Map::new();
    for (name, (time, first, second)) in &checkpoint.moments {
        named.push((format!("adam_m/{name}"), first));
        named.push((format!("adam_v/{name}"), second));
        times.insert(name.clone(), serde_json::Value::from(*time));
    }
    let state = CheckpointState {
        step: checkpoint.step,
        settings: settings.clone(),
        tokens: checkpoint.tokens,
    };
    let mut metadata = HashMap::new();
    metadata.insert(
        STATE_KEY.to_string(),
        serde_json::to_string(&state).expect("serialises"),
    );
    metadata.insert(
        "adam_time".to_string(),
        serde_json::Value::Object(times).to_string(),
    );
    let bytes = serialize_f32(&named, Some(metadata))?;
    write_atomically(path, &bytes)?;
    Ok(())
}

fn read_checkpoint(path: &Path, settings: &TrainSettings) -> Result<Checkpoint> {
    let corrupt = |detail: String| EngineError::DataCorruption {
        file: path.to_path_buf(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| corrupt(format!("not a quarry checkpoint: {e}")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let state: CheckpointState = metadata
        .get(STATE_KEY)
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| corrupt("no training state in its metadata".to_string()))?;
    if &state.settings != settings {
        return Err(train_error(
            path,
            format!(
                "the checkpoint was made with other settings; resume with the same ones or \
                 start a new output folder.\n  checkpoint: {}\n  now:        {}",
                serde_json::to_string(&state.settings).unwrap_or_default(),
                serde_json::to_string(settings).unwrap_or_default()
            ),
        ));
    }
    let times: HashMap<String, usize> = metadata
        .get("adam_time")
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let tensors =
        SafeTensors::deserialize(&bytes).map_err(|e| corrupt(format!("unreadable: {e}")))?;
    let mut adapter_tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    let mut firsts: HashMap<String, HostTensor> = HashMap::new();
    let mut seconds: HashMap<String, HostTensor> = HashMap::new();
    for (name, view) in tensors.tensors() {
        let as_host = || HostTensor {
            shape: view.shape().to_vec(),
            data: view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        };
        if let Some(rest) = name.strip_prefix("adapter/") {
            adapter_tensors.push((
                rest.to_string(),
                view.data().to_vec(),
                view.shape().to_vec(),
            ));
        } else if let Some(rest) = name.strip_prefix("adam_m/") {
            firsts.insert(rest.to_string(), as_host());
        } else if let Some(rest) = name.strip_prefix("adam_v/") {
            seconds.insert(rest.to_string(), as_host());
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = adapter_tensors
        .iter()
        .map(|(name, data, shape)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| corrupt(format!("`{name}`: {e}")))
        })
        .collect::<Result<_>>()?;
    let adapter_bytes = safetensors::serialize(views, None)
        .map_err(|e| corrupt(format!("adapter tensors: {e}")))?;
    let adapter = LoraAdapter::from_safetensors(settings.lora_config(), &adapter_bytes, path)?;
    let mut moments = HashMap::new();
    for (name, first) in firsts {
        let second = seconds
            .remove(&name)
            .ok_or_else(|| corrupt(format!("`{name}` has no second moment")))?;
        let time = times.get(&name).copied().unwrap_or(0);
        moments.insert(name, (time, first, second));
    }
    Ok(Checkpoint {
        step: state.step,
        adapter,
        moments,
        tokens: state.tokens,
    })
}

/// A fresh adapter as PEFT initialises one: lora_A Kaiming-uniform (bound `1/sqrt(in)`),
/// lora_B zero, so training starts from the base model.
fn initial_adapter(
    config: LoraConfig,
    targets: &[(String, usize, usize)],
    seed: u64,
) -> LoraAdapter {
    let mut rng = ChaCha8Rng::seed_from_u64(derived_seed(seed, STREAM_INIT, 0));
    let mut modules = std::collections::BTreeMap::new();
    for (path, d_in, d_out) in targets {
        let bound = 1.0 / (*d_in as f64).sqrt();
        let a: Vec<f32> = (0..config.rank * d_in)
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect();
        modules.insert(
            path.clone(),
            LoraPair {
                a: HostTensor {
                    shape: vec![config.rank, *d_in],
                    data: a,
                },
                b: HostTensor {
                    shape: vec![*d_out, config.rank],
                    data: vec![0.0; d_out * config.rank],
                },
            },
        );
    }
    LoraAdapter { config, modules }
}

fn train_on<B: AutodiffBackend>(
    job: &TrainJob,
    device: &B::Device,
    progress: &dyn TrainReport,
) -> Result<TrainSummary> {
    let settings = &job.settings;
    settings
        .validate()
        .map_err(|detail| train_error(&job.train_file, detail))?;
    if let Some(limit) = job.time_limit {
        // NaN would never stop the run and a negative limit would stop it silently early.
        if !(limit.is_finite() && limit >= 0.0) {
            return Err(train_error(
                &job.train_file,
                format!("--time-limit {limit} must be a number of seconds >= 0"),
            ));
        }
    }
    let lora_config = settings.lora_config();
    lora_config.validate(&job.output)?;
    if settings.micro_batch > settings.batch_size {
        return Err(train_error(
            &job.train_file,
            format!(
                "--micro-batch {} is larger than --batch {}",
                settings.micro_batch, settings.batch_size
            ),
        ));
    }

    let groups = load_train_groups(&job.train_file)?;
    if settings.group_size > 1 {
        if let Some(group) = groups.iter().find(|g| g.negatives.is_empty()) {
            return Err(train_error(
                &job.train_file,
                format!(
                    "query `{}` has no negative passages; --group-size {} needs hard negatives \
                     (mine them with `quarry mine`, or train with --group-size 1)",
                    group.query_id, settings.group_size
                ),
            ));
        }
    }
    let steps_per_epoch = groups.len() / settings.batch_size;
    if steps_per_epoch == 0 {
        return Err(train_error(
            &job.train_file,
            format!(
                "{} training groups are fewer than one batch of {}",
                groups.len(),
                settings.batch_size
            ),
        ));
    }
    let total_steps =
        (steps_per_epoch * settings.epochs).min(settings.max_steps.unwrap_or(usize::MAX));
    let warmup_steps = (settings.warmup_ratio * total_steps as f64).ceil() as usize;

    // The model and the prompts `quarry build --mode supervised` uses.
    let weights = open_weights(&job.model)?;
    let config_json = weights.config_json()?;
    let qwen2 = match ModelConfig::from_hf_json(&config_json.to_string(), &job.model)? {
        ModelConfig::Qwen2(config) => config,
        ModelConfig::Bert(_) => {
            return Err(train_error(&job.model, "LoRA training needs a Qwen2 model"))
        }
    };
    let chat_template = weights.chat_template()?;
    let family = detect_family(&config_json, chat_template.as_deref()).ok_or_else(|| {
        train_error(
            &job.model,
            "its chat template is of a format quarry has no prompt template for",
        )
    })?;
    let template = PromptTemplate::load(family, "supervised")?;
    let tokenizer = weights.tokenizer()?;
    let query_prompts = PromptBuilder::new(
        template.clone(),
        tokenizer.clone(),
        settings.query_max_len,
        None,
    )?;
    let passage_prompts = PromptBuilder::new(template, tokenizer, settings.passage_max_len, None)?;
    let dtype = match settings.precision {
        Precision::F32 => DType::F32,
        Precision::BF16 => DType::BF16,
        Precision::F16 => DType::F16,
    };
    let mut model = Qwen2Model::<B>::load(&qwen2, weights.as_source(), device, dtype)?;
    drop(weights);

    std::fs::create_dir_all(&job.output).map_err(|e| EngineError::io(&job.output, e))?;
    let checkpoint_path = job.output.join(CHECKPOINT_FILE);
    let resumed = if job.resume {
        if !checkpoint_path.is_file() {
            return Err(train_error(
                &checkpoint_path,
                "--resume: no checkpoint in the output folder",
            ));
        }
        Some(read_checkpoint(&checkpoint_path, settings)?)
    } else {
        if checkpoint_path.exists() {
            return Err(train_error(
                &checkpoint_path,
                "the output folder holds a checkpoint: pass --resume to continue it, or choose \
                 another --output",
            ));
        }
        None
    };
    let adapter = match &resumed {
        Some(checkpoint) => checkpoint.adapter.clone(),
        None => {
            let targets = model.lora_targets(&settings.target_modules);
            initial_adapter(lora_config.clone(), &targets, settings.seed)
        }
    };
    model.attach_lora(&adapter, settings.dropout, settings.adapter_f32)?;
    let names: Vec<(String, String)> = model
        .lora_branches_mut()
        .into_iter()
        .map(|(module, _)| {
            (
                peft_tensor_name(&module, 'A'),
                peft_tensor_name(&module, 'B'),
            )
        })
        .collect();
    let mut states: Vec<[MomentState<B>; 2]> = Vec::with_capacity(names.len());
    for (name_a, name_b) in &names {
        let state = |name: &String| -> MomentState<B> {
            let (time, first, second) = resumed.as_ref()?.moments.get(name)?;
            Some(AdamWState::new(AdaptiveMomentumState::new(
                *time,
                device_tensor(first, device),
                device_tensor(second, device),
            )))
        };
        states.push([state(name_a), state(name_b)]);
    }
    for (_, branch) in model.lora_branches_mut() {
        branch.a = branch.a.clone().require_grad();
        branch.b = branch.b.clone().require_grad();
    }
    let optimizer: AdamW = AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .with_weight_decay(settings.weight_decay as f32)
        .build();

    // On a GPU every new sequence length costs kernel compilation and autotuning (tens of
    // seconds for a forward and backward pass), far more than the padding to the maximum
    // lengths; the CPU has no such cost and keeps the bucketed lengths.
    let fixed_shapes = !matches!(job.device, ComputeDevice::Cpu);
    let start_step = resumed.as_ref().map_or(0, |c| c.step);
    let tokens_total = resumed.as_ref().map_or(0, |c| c.tokens);
    let stop_at = job.stop_after.unwrap_or(total_steps).min(total_steps);
    progress.started(total_steps, start_step);
    let started = Instant::now();
    let mut tokens_run: u64 = 0;
    let mut losses: Vec<f64> = Vec::new();
    let mut step_seconds: Vec<f64> = Vec::new();
    let mut last_checkpoint: Option<usize> = resumed.as_ref().map(|c| c.step);

    let save_checkpoint = |model: &mut Qwen2Model<B>,
                           states: &[[MomentState<B>; 2]],
                           step: usize,
                           tokens: u64|
     -> Result<()> {
        let adapter = model.lora_adapter(&lora_config)?;
        if let Some((module, _)) = adapter.modules.iter().find(|(_, pair)| {
            pair.a
                .data
                .iter()
                .chain(&pair.b.data)
                .any(|v| !v.is_finite())
        }) {
            return Err(train_error(
                &checkpoint_path,
                format!("non-finite adapter weights in `{module}` after step {step}; not saved"),
            ));
        }
        let mut moments = HashMap::new();
        for ((name_a, name_b), [state_a, state_b]) in names.iter().zip(states) {
            for (name, state) in [(name_a, state_a), (name_b, state_b)] {
                if let Some(state) = state {
                    let momentum = &state.momentum;
                    moments.insert(
                        name.clone(),
                        (
                            momentum.time,
                            host(momentum.moment_1.clone())?,
                            host(momentum.moment_2.clone())?,
                        ),
                    );
                }
            }
        }
        let checkpoint = Checkpoint {
            step,
            adapter,
            moments,
            tokens,
        };
        write_checkpoint(&checkpoint_path, &checkpoint, settings)
    };

    for step in start_step..stop_at {
        let step_started = Instant::now();
        let sample = step_sample(&groups, settings, steps_per_epoch, step);
        let learning_rate =
            settings.learning_rate * schedule_factor(step, warmup_steps, total_steps);
        let mut gradients: Vec<[Option<Tensor<B::InnerBackend, 2>>; 2]> =
            (0..names.len()).map(|_| [None, None]).collect();
        let mut step_loss = 0.0;
        for (micro, chunk) in sample.chunks(settings.micro_batch).enumerate() {
            let queries: Vec<&str> = chunk.iter().map(|(g, _)| g.query.as_str()).collect();
            let passages: Vec<&TrainPassage> =
                chunk.iter().flat_map(|(_, p)| p.iter().copied()).collect();
            let titles: Vec<&str> = passages.iter().map(|p| p.title.as_str()).collect();
            let texts: Vec<&str> = passages.iter().map(|p| p.text.as_str()).collect();
            let batch = ContrastiveBatch {
                queries: query_prompts
                    .build_batch(TextKind::Query, None, &queries)?
                    .into_iter()
                    .map(|input| input.ids)
                    .collect(),
                passages: passage_prompts
                    .build_batch(TextKind::Passage, Some(&titles), &texts)?
                    .into_iter()
                    .map(|input| input.ids)
                    .collect(),
                group_size: settings.group_size,
                query_length: fixed_shapes.then_some(settings.query_max_len),
                passage_length: fixed_shapes.then_some(settings.passage_max_len),
            };
            tokens_run += batch.tokens() as u64;
            B::seed(
                device,
                derived_seed(
                    settings.seed,
                    STREAM_DROPOUT,
                    (step * 1_000_003 + micro) as u64,
                ),
            );
            let share = chunk.len() as f64 / settings.batch_size as f64;
            let loss = contrastive_loss(&model, &batch, settings.temperature)?.mul_scalar(share);
            let value = f64::from(
                loss.clone()
                    .into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .map_err(|e| train_error(&job.output, format!("reading the loss: {e:?}")))?[0],
            );
            if !value.is_finite() {
                let kept = match last_checkpoint {
                    Some(at) => format!(
                        "the last good checkpoint (after step {at}) is kept in {}",
                        checkpoint_path.display()
                    ),
                    None => "no checkpoint had been written yet".to_string(),
                };
                return Err(train_error(
                    &job.output,
                    format!(
                        "the loss is {value} at step {} (micro-batch {}): training stopped; {kept} \
                         (try a lower --lr)",
                        step + 1,
                        micro + 1
                    ),
                ));
            }
            step_loss += value;
            let grads = loss.backward();
            if step == start_step {
                progress.first_step_micro_batch(
                    step + 1,
                    micro + 1,
                    step_started.elapsed().as_secs_f64(),
                );
            }
            let mut branches = model.lora_branches_mut();
            for ((_, branch), sums) in branches.iter_mut().zip(gradients.iter_mut()) {
                let [sum_a, sum_b] = sums;
                for (tensor, sum) in [(&branch.a, sum_a), (&branch.b, sum_b)] {
                    if let Some(grad) = tensor.grad(&grads) {
                        *sum = Some(match sum.take() {
                            Some(previous) => previous + grad,
                            None => grad,
                        });
                    }
                }
            }
        }
        // Global-norm clipping, as torch.nn.utils.clip_grad_norm_.
        if settings.max_grad_norm > 0.0 {
            let squares: Vec<Tensor<B::InnerBackend, 1>> = gradients
                .iter()
                .flatten()
                .flatten()
                .map(|g| g.clone().powi_scalar(2).sum())
                .collect();
            if !squares.is_empty() {
                let norm = f64::from(
                    Tensor::cat(squares, 0)
                        .sum()
                        .sqrt()
                        .into_data()
                        .convert::<f32>()
                        .to_vec::<f32>()
                        .map_err(|e| train_error(&job.output, format!("{e:?}")))?[0],
                );
                let coefficient = settings.max_grad_norm / (norm + 1e-6);
                if coefficient < 1.0 {
                    for sum in gradients.iter_mut().flatten() {
                        if let Some(grad) = sum.take() {
                            *sum = Some(grad.mul_scalar(coefficient));
                        }
                    }
                }
            }
        }
        let mut branches = model.lora_branches_mut();
        for (((_, branch), sums), state) in branches
            .iter_mut()
            .zip(gradients.iter_mut())
            .zip(states.iter_mut())
        {
            for (which, tensor) in [&mut branch.a, &mut branch.b].into_iter().enumerate() {
                let Some(grad) = sums[which].take() else {
                    continue;
                };
                let (updated, new_state) = optimizer.step(
                    learning_rate,
                    tensor.clone().inner(),
                    grad,
                    state[which].take(),
                );
                state[which] = new_state;
                *tensor = Tensor::from_inner(updated).require_grad();
            }
        }
        drop(branches);
        losses.push(step_loss);
        step_seconds.push(step_started.elapsed().as_secs_f64());
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        progress.step_done(&StepProgress {
            step: step + 1,
            total_steps,
            loss: step_loss,
            learning_rate,
            seconds: step_seconds.last().copied().unwrap_or_default(),
            tokens_per_second: tokens_run as f64 / elapsed,
        });
        let done = step + 1;
        let out_of_time = job
            .time_limit
            .is_some_and(|limit| started.elapsed().as_secs_f64() >= limit);
        if done == stop_at
            || out_of_time
            || (job.checkpoint_every > 0 && done % job.checkpoint_every == 0)
        {
            save_checkpoint(&mut model, &states, done, tokens_total + tokens_run)?;
            last_checkpoint = Some(done);
        }
        if out_of_time {
            break;
        }
    }

    // One entry of step_seconds per step this invocation ran.
    let step = start_step + step_seconds.len();
    let finished = step >= total_steps;
    if finished {
        let adapter = model.lora_adapter(&lora_config)?;
        adapter.save(&job.output, &job.model.display().to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let summary = TrainSummary {
        model: job.model.clone(),
        train_file: job.train_file.clone(),
        output: job.output.clone(),
        groups: groups.len(),
        total_steps,
        step,
        finished,
        resumed_from_step: resumed.as_ref().map(|c| c.step),
        mean_loss: (!losses.is_empty()).then(|| losses.iter().sum::<f64>() / losses.len() as f64),
        last_loss: losses.last().copied(),
        tokens: tokens_run,
        seconds,
        tokens_per_second: tokens_run as f64 / seconds.max(1e-9),
        step_seconds,
        step_losses: losses,
        settings: settings.clone(),
    };
    let mut json = serde_json::to_vec_pretty(&summary).expect("serialises");
    json.push(b'\n');
    write_atomically(&job.output.join(SUMMARY_FILE), &json)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_follows_transformers_linear_warmup() {
        // get_linear_schedule_with_warmup(num_warmup_steps=2, num_training_steps=10)
        let factors: Vec<f64> = (0..10).map(|s| schedule_factor(s, 2, 10)).collect();
        assert_eq!(factors[0], 0.0);
        assert_eq!(factors[1], 0.5);
        assert_eq!(factors[2], 1.0);
        assert_eq!(factors[6], 0.5);
        assert!((factors[9] - 0.125).abs() < 1e-12);
    }
}
