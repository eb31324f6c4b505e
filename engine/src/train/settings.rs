//! What determines a trained adapter ([`TrainSettings`], saved in every checkpoint so a
//! resumed run can refuse other settings) and the checks a job passes before any work: a bad
//! value should fail in a second, not after the model has loaded.

use quarry_encoder::lora::LoraConfig;
use quarry_encoder::Precision;
use serde::{Deserialize, Serialize};

use super::{train_error, TrainJob};
use crate::error::Result;

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
    /// The adapter these settings train (quarry trains plain LoRA, not rsLoRA).
    pub(super) fn lora_config(&self) -> LoraConfig {
        LoraConfig {
            rank: self.rank,
            alpha: self.alpha,
            dropout: self.dropout,
            target_modules: self.target_modules.clone(),
            use_rslora: false,
        }
    }

    /// The values that make no run at all; the detail names the command-line flag.
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

/// Checks the job's settings, its time limit and the LoRA configuration, in that order.
pub(super) fn validate_job(job: &TrainJob) -> Result<()> {
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
    settings.lora_config().validate(&job.output)?;
    if settings.micro_batch > settings.batch_size {
        return Err(train_error(
            &job.train_file,
            format!(
                "--micro-batch {} is larger than --batch {}",
                settings.micro_batch, settings.batch_size
            ),
        ));
    }
    Ok(())
}
