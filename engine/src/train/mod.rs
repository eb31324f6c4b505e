//! `quarry train`: LoRA contrastive fine-tuning of a Qwen2 encoder (the RepLLaMA recipe).
//!
//! Data flow: [`crate::train_data`] groups -> per step, a deterministic sample (seeded
//! shuffle per epoch; per query one positive and `group_size - 1` hard negatives, drawn from
//! a generator seeded by `(seed, step)`) -> token ids with the supervised prompts (the
//! [`PromptBuilder`](quarry_encoder::prompt::PromptBuilder) `quarry build --mode supervised`
//! uses) -> micro-batches through
//! [`contrastive_loss`](quarry_encoder::contrastive::contrastive_loss) on an autodiff backend
//! -> gradients summed over micro-batches (each micro-batch's loss weighted by its share of
//! the global batch; in-batch negatives are the passages of the same micro-batch, as Tevatron
//! without GradCache) -> global-norm clipping -> AdamW (burn's, PyTorch's formula) at a linear
//! warm-up/decay learning rate (transformers' `get_linear_schedule_with_warmup`).
//!
//! Determinism and resume: everything random is a function of the seed and the step (data
//! order, sampling, LoRA dropout masks: the backend generator is re-seeded per
//! micro-batch), so a checkpoint needs only the adapter, AdamW's moments and the step.
//! Checkpoints (`checkpoint.safetensors` in the output folder) are written atomically; a run
//! resumed from one ends with the bytes an uninterrupted run writes.
//!
//! Layout, one idea a file:
//! - `settings`: what determines the adapter ([`TrainSettings`]) and the job's checks.
//! - `schedule`: the steps, their learning rate and the seeds derived from the run's seed.
//! - `sampling`: which groups and passages an optimiser step sees.
//! - `memory`: what a run needs in device memory, checked before the model loads.
//! - `model`: the base model, its supervised prompts and a fresh PEFT-initialised adapter.
//! - `batch`: a micro-batch's texts as the token ids the contrastive loss takes.
//! - `optimizer`: gradient sums, clipping and the AdamW update of the LoRA tensors.
//! - `checkpoint`: the resumable state on disk.
//! - `report`: how the loop tells its caller where it stands.
//! - `trainer`: the loop itself, phase by phase.

mod batch;
mod checkpoint;
mod loss_plot;
mod memory;
mod model;
mod optimizer;
mod report;
mod sampling;
mod schedule;
mod settings;
mod trainer;

use std::path::{Path, PathBuf};

use burn::backend::Autodiff;
use quarry_encoder::encode::CpuBackend;
use quarry_encoder::ComputeDevice;
use serde::Serialize;

use crate::error::{EngineError, Result};
use trainer::train_on;

pub use checkpoint::CHECKPOINT_FILE;
pub use memory::{gib, MemoryPlan};
pub use report::{StepProgress, TrainReport};
pub use schedule::schedule_factor;
pub use settings::TrainSettings;

/// File of the output folder with the run's summary.
pub const SUMMARY_FILE: &str = "training_summary.json";
/// File of the output folder with the loss curve of every step so far (SVG).
pub const LOSS_PLOT_FILE: &str = "loss.svg";

/// One `quarry train` invocation.
#[derive(Debug, Clone)]
pub struct TrainJob {
    /// GGUF file or HF folder of the base model.
    pub model: PathBuf,
    /// Tevatron JSONL training groups.
    pub train_file: PathBuf,
    /// The corpus (BEIR `corpus.jsonl`) that Tevatron v2 groups' passage ids name.
    pub corpus: Option<PathBuf>,
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
    /// Refuse, before loading the model, a run whose memory plan exceeds the device's free
    /// memory (`--no-memory-check` turns it off).
    pub memory_check: bool,
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
    /// Loss of each step of this invocation.
    pub step_losses: Vec<f64>,
    /// Loss of every step so far, the steps before a resume included (drawn in `loss.svg`).
    pub loss_curve: Vec<f64>,
    /// What the run was estimated to need in device memory (checked before loading).
    pub memory_plan: MemoryPlan,
    pub settings: TrainSettings,
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
        ComputeDevice::Cpu => train_on::<Autodiff<CpuBackend>>(job, &Default::default(), progress),
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

/// A training run that cannot go on, about `path` (the file or folder the user can act on).
fn train_error(path: &Path, detail: impl Into<String>) -> EngineError {
    EngineError::Build {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Replaces `path` with `bytes` crash-safely (a reader sees the old file or the whole new
/// one), so an interrupted run never leaves a torn checkpoint or summary behind.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    quarry_fsio::write(path, bytes).map_err(|e| EngineError::io(e.path, e.source))
}
