//! The run's time line: how many optimiser steps the data and settings make, the learning
//! rate of each (transformers' linear warm-up and decay), and the seeds every random draw
//! derives from the run's seed, so that a step's randomness depends on nothing but
//! `(seed, step)` and a resumed run repeats it exactly.

use std::path::Path;

use super::{train_error, TrainSettings};
use crate::error::Result;

/// The optimiser steps of a run.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    /// Full batches in one pass over the groups (a last partial batch is dropped).
    pub steps_per_epoch: usize,
    /// Steps of the whole run: the epochs' steps, capped by `--max-steps`.
    pub total_steps: usize,
    /// Steps of the linear warm-up.
    pub warmup_steps: usize,
}

impl Schedule {
    /// The schedule for `groups` training groups; `train_file` is named if there is no batch.
    pub fn new(groups: usize, settings: &TrainSettings, train_file: &Path) -> Result<Schedule> {
        let steps_per_epoch = groups / settings.batch_size;
        if steps_per_epoch == 0 {
            return Err(train_error(
                train_file,
                format!(
                    "{groups} training groups are fewer than one batch of {}",
                    settings.batch_size
                ),
            ));
        }
        let total_steps =
            (steps_per_epoch * settings.epochs).min(settings.max_steps.unwrap_or(usize::MAX));
        let warmup_steps = (settings.warmup_ratio * total_steps as f64).ceil() as usize;
        Ok(Schedule {
            steps_per_epoch,
            total_steps,
            warmup_steps,
        })
    }

    /// The learning rate of 0-based step `step`, for a peak rate `peak`.
    pub fn learning_rate(&self, peak: f64, step: usize) -> f64 {
        peak * schedule_factor(step, self.warmup_steps, self.total_steps)
    }
}

/// transformers' `get_linear_schedule_with_warmup` factor at 0-based step `step`.
pub fn schedule_factor(step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        step as f64 / warmup.max(1) as f64
    } else {
        ((total - step.min(total)) as f64 / (total - warmup).max(1) as f64).max(0.0)
    }
}

/// What a derived seed is for: each purpose draws from its own stream, so adding draws to
/// one never shifts another. The numbers are part of the checkpoint format's meaning.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stream {
    /// The fresh adapter's lora_A.
    Init = 1,
    /// The shuffle of the groups, per epoch.
    Order = 2,
    /// The positive and negatives of each group, per step.
    Sample = 3,
    /// The LoRA dropout masks, per micro-batch.
    Dropout = 4,
}

/// A 64-bit seed for one purpose and position, from the run's seed.
pub(super) fn derived_seed(seed: u64, stream: Stream, position: u64) -> u64 {
    // splitmix64 finaliser over the three values: nearby inputs give unrelated seeds.
    let mut z = seed
        ^ (stream as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ position.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The backend generator's seed for micro-batch `micro` of step `step` (its dropout masks).
pub(super) fn dropout_seed(seed: u64, step: usize, micro: usize) -> u64 {
    // A prime stride keeps the positions of different steps apart for any micro-batch count.
    derived_seed(seed, Stream::Dropout, (step * 1_000_003 + micro) as u64)
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
