//! The training loop, phase by phase: check the job and read the groups; prepare the model,
//! its adapter and AdamW (from a checkpoint when resuming); run optimiser steps, each a
//! series of micro-batch forward and backward passes whose gradients add up before one
//! clipped AdamW update; write checkpoints when due; at the end write the adapter and the
//! summary.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use quarry_encoder::contrastive::contrastive_loss;
use quarry_encoder::lora::LoraAdapter;
use quarry_encoder::Qwen2Model;

use super::batch::Prompts;
use super::checkpoint::{f32_values, open_checkpoint, write_checkpoint, Checkpoint};
use super::memory::MemoryPlan;
use super::model::{attach_adapter, load_model};
use super::optimizer::{GradientSums, LoraOptimizer};
use super::report::{StepProgress, TrainReport};
use super::sampling::{require_negatives, step_sample, SampledGroup};
use super::schedule::{dropout_seed, Schedule};
use super::settings::validate_job;
use super::{
    loss_plot, train_error, write_atomically, TrainJob, TrainSummary, CHECKPOINT_FILE,
    LOSS_PLOT_FILE, SUMMARY_FILE,
};
use crate::dataset::read_corpus_file;
use crate::error::{EngineError, Result};
use crate::train_data::{load_train_groups, load_train_groups_with_corpus, TrainGroup};

/// Runs (or resumes) `job` on backend `B`.
pub(super) fn train_on<B: AutodiffBackend>(
    job: &TrainJob,
    device: &B::Device,
    progress: &dyn TrainReport,
) -> Result<TrainSummary> {
    // Everything that can be refused without the model is, before it loads.
    validate_job(job)?;
    let groups = match &job.corpus {
        Some(corpus) => load_train_groups_with_corpus(&job.train_file, &read_corpus_file(corpus)?)?,
        None => load_train_groups(&job.train_file)?,
    };
    require_negatives(&groups, &job.settings, &job.train_file)?;
    let schedule = Schedule::new(groups.len(), &job.settings, &job.train_file)?;
    let mut run = Run::<B>::prepare(job, device, &groups, schedule)?;
    run.run_steps(progress)?;
    run.finish()
}

/// A run from its prepared model to its summary.
struct Run<'a, B: AutodiffBackend> {
    job: &'a TrainJob,
    device: &'a B::Device,
    groups: &'a [TrainGroup],
    schedule: Schedule,
    prompts: Prompts,
    memory_plan: MemoryPlan,
    model: Qwen2Model<B>,
    optimizer: LoraOptimizer<B>,
    checkpoint_path: PathBuf,
    /// The step of the checkpoint this run resumed from, and the tokens forwarded up to it.
    resumed_from_step: Option<usize>,
    tokens_before: u64,
    /// The losses of the steps before this invocation (from the checkpoint).
    losses_before: Vec<f64>,
    /// The step of the newest checkpoint on disk (named when the loss diverges).
    last_checkpoint: Option<usize>,
    ran: Tally,
}

/// What this invocation ran: the summary's numbers.
struct Tally {
    started: Instant,
    /// Real (unpadded) tokens forwarded.
    tokens: u64,
    losses: Vec<f64>,
    /// One entry per step run.
    step_seconds: Vec<f64>,
}

impl<'a, B: AutodiffBackend> Run<'a, B> {
    /// Loads the model, attaches the adapter (fresh, or the checkpoint's with `--resume`) and
    /// sets AdamW up with the checkpoint's moments.
    fn prepare(
        job: &'a TrainJob,
        device: &'a B::Device,
        groups: &'a [TrainGroup],
        schedule: Schedule,
    ) -> Result<Self> {
        let (mut model, prompts, memory_plan) = load_model::<B>(job, device)?;
        std::fs::create_dir_all(&job.output).map_err(|e| EngineError::io(&job.output, e))?;
        let checkpoint_path = job.output.join(CHECKPOINT_FILE);
        let resumed = open_checkpoint(&checkpoint_path, job.resume, &job.settings)?;
        attach_adapter(
            &mut model,
            resumed.as_ref().map(|c| &c.adapter),
            &job.settings,
        )?;
        let optimizer = LoraOptimizer::new(
            &mut model,
            resumed.as_ref().map(|c| &c.moments),
            device,
            job.settings.weight_decay,
        );
        let resumed_from_step = resumed.as_ref().map(|c| c.step);
        Ok(Run {
            job,
            device,
            groups,
            schedule,
            prompts,
            memory_plan,
            model,
            optimizer,
            checkpoint_path,
            resumed_from_step,
            tokens_before: resumed.as_ref().map_or(0, |c| c.tokens),
            losses_before: resumed.map_or_else(Vec::new, |c| c.losses),
            last_checkpoint: resumed_from_step,
            ran: Tally {
                started: Instant::now(),
                tokens: 0,
                losses: Vec::new(),
                step_seconds: Vec::new(),
            },
        })
    }

    fn start_step(&self) -> usize {
        self.resumed_from_step.unwrap_or(0)
    }

    /// Runs the steps from the start step to the schedule's end, `--stop-after` or the time
    /// limit, with a checkpoint at each `--checkpoint-every` and where it stops.
    fn run_steps(&mut self, progress: &dyn TrainReport) -> Result<()> {
        let total_steps = self.schedule.total_steps;
        let stop_at = self.job.stop_after.unwrap_or(total_steps).min(total_steps);
        progress.started(total_steps, self.start_step());
        // The clock starts with the first step: loading the model is not training time.
        self.ran.started = Instant::now();
        for step in self.start_step()..stop_at {
            let step_started = Instant::now();
            let (loss, learning_rate) = self.optimiser_step(step, step_started, progress)?;
            self.ran.losses.push(loss);
            let seconds = step_started.elapsed().as_secs_f64();
            self.ran.step_seconds.push(seconds);
            let elapsed = self.ran.started.elapsed().as_secs_f64().max(1e-9);
            progress.step_done(&StepProgress {
                step: step + 1,
                total_steps,
                loss,
                learning_rate,
                seconds,
                tokens_per_second: self.ran.tokens as f64 / elapsed,
            });
            let done = step + 1;
            let out_of_time = self
                .job
                .time_limit
                .is_some_and(|limit| self.ran.started.elapsed().as_secs_f64() >= limit);
            let periodic = self.job.checkpoint_every > 0 && done % self.job.checkpoint_every == 0;
            if done == stop_at || out_of_time || periodic {
                self.save_checkpoint(done)?;
            }
            if out_of_time {
                break;
            }
        }
        Ok(())
    }

    /// One optimiser step: the step's sample in micro-batches, their gradients summed,
    /// clipped, and one AdamW update. Returns the step's loss and learning rate.
    fn optimiser_step(
        &mut self,
        step: usize,
        step_started: Instant,
        progress: &dyn TrainReport,
    ) -> Result<(f64, f64)> {
        let job = self.job;
        let settings = &job.settings;
        let sample = step_sample(self.groups, settings, &self.schedule, step);
        let learning_rate = self.schedule.learning_rate(settings.learning_rate, step);
        let mut gradients = GradientSums::<B>::new(self.optimizer.branches());
        let mut step_loss = 0.0;
        for (micro, chunk) in sample.chunks(settings.micro_batch).enumerate() {
            let (loss, micro_gradients) = self.forward_backward(step, micro, chunk)?;
            step_loss += loss;
            if step == self.start_step() {
                let seconds = step_started.elapsed().as_secs_f64();
                progress.first_step_micro_batch(step + 1, micro + 1, seconds);
            }
            gradients.add(&mut self.model, &micro_gradients);
        }
        gradients.clip_to_norm(settings.max_grad_norm, &job.output)?;
        self.optimizer
            .update(&mut self.model, gradients, learning_rate);
        Ok((step_loss, learning_rate))
    }

    /// Micro-batch `micro` of step `step` forward and backward: its loss (weighted by its
    /// share of the global batch, so the sums are the batch's mean) and gradients.
    fn forward_backward(
        &mut self,
        step: usize,
        micro: usize,
        chunk: &[SampledGroup<'_>],
    ) -> Result<(f64, B::Gradients)> {
        let job = self.job;
        let settings = &job.settings;
        let batch = self.prompts.contrastive_batch(chunk)?;
        self.ran.tokens += batch.tokens() as u64;
        // The dropout masks come from the backend's generator: seeded per micro-batch, they
        // are the same in a resumed run.
        B::seed(self.device, dropout_seed(settings.seed, step, micro));
        let share = chunk.len() as f64 / settings.batch_size as f64;
        let loss = contrastive_loss(&self.model, &batch, settings.temperature)?.mul_scalar(share);
        let value = f64::from(f32_values(loss.clone(), "the loss", &job.output)?[0]);
        if !value.is_finite() {
            return Err(self.diverged(value, step, micro));
        }
        Ok((value, loss.backward()))
    }

    /// The error of a non-finite loss: it names the step and the checkpoint left to resume.
    fn diverged(&self, value: f64, step: usize, micro: usize) -> EngineError {
        let kept = match self.last_checkpoint {
            Some(at) => format!(
                "the last good checkpoint (after step {at}) is kept in {}",
                self.checkpoint_path.display()
            ),
            None => "no checkpoint had been written yet".to_string(),
        };
        train_error(
            &self.job.output,
            format!(
                "the loss is {value} at step {} (micro-batch {}): training stopped; {kept} \
                 (try a lower --lr)",
                step + 1,
                micro + 1
            ),
        )
    }

    /// Writes the checkpoint after `step` steps; a non-finite adapter is refused so the last
    /// good checkpoint stays.
    fn save_checkpoint(&mut self, step: usize) -> Result<()> {
        let adapter = self.model.lora_adapter(&self.job.settings.lora_config())?;
        if let Some(module) = first_non_finite_module(&adapter) {
            return Err(train_error(
                &self.checkpoint_path,
                format!("non-finite adapter weights in `{module}` after step {step}; not saved"),
            ));
        }
        let checkpoint = Checkpoint {
            step,
            adapter,
            moments: self.optimizer.host_moments()?,
            tokens: self.tokens_before + self.ran.tokens,
            losses: self.loss_curve(),
        };
        write_checkpoint(&self.checkpoint_path, &checkpoint, &self.job.settings)?;
        self.last_checkpoint = Some(step);
        Ok(())
    }

    /// The loss of every step so far, this invocation's after the checkpoint's.
    fn loss_curve(&self) -> Vec<f64> {
        self.losses_before
            .iter()
            .chain(&self.ran.losses)
            .copied()
            .collect()
    }

    /// Writes the adapter if the schedule is done, and the summary and the loss curve
    /// (`loss.svg`) in any case.
    fn finish(mut self) -> Result<TrainSummary> {
        let step = self.start_step() + self.ran.step_seconds.len();
        let finished = step >= self.schedule.total_steps;
        if finished {
            let adapter = self.model.lora_adapter(&self.job.settings.lora_config())?;
            adapter.save(&self.job.output, &self.job.model.display().to_string())?;
        }
        let curve = self.loss_curve();
        let svg = loss_plot::loss_svg(&curve, self.resumed_from_step, self.schedule.total_steps);
        write_atomically(&self.job.output.join(LOSS_PLOT_FILE), svg.as_bytes())?;
        let summary_path = self.job.output.join(SUMMARY_FILE);
        let summary = self.summary(step, finished, curve);
        let mut json = serde_json::to_vec_pretty(&summary).expect("serialises");
        json.push(b'\n');
        write_atomically(&summary_path, &json)?;
        Ok(summary)
    }

    fn summary(self, step: usize, finished: bool, loss_curve: Vec<f64>) -> TrainSummary {
        let job = self.job;
        let Tally {
            started,
            tokens,
            losses,
            step_seconds,
        } = self.ran;
        let seconds = started.elapsed().as_secs_f64();
        TrainSummary {
            model: job.model.clone(),
            train_file: job.train_file.clone(),
            output: job.output.clone(),
            groups: self.groups.len(),
            total_steps: self.schedule.total_steps,
            step,
            finished,
            resumed_from_step: self.resumed_from_step,
            mean_loss: (!losses.is_empty())
                .then(|| losses.iter().sum::<f64>() / losses.len() as f64),
            last_loss: losses.last().copied(),
            tokens,
            seconds,
            tokens_per_second: tokens as f64 / seconds.max(1e-9),
            step_seconds,
            step_losses: losses,
            loss_curve,
            memory_plan: self.memory_plan,
            settings: job.settings.clone(),
        }
    }
}

/// The first module whose adapter weights hold a NaN or an infinity.
fn first_non_finite_module(adapter: &LoraAdapter) -> Option<&str> {
    adapter
        .modules
        .iter()
        .find(|(_, pair)| {
            pair.a
                .data
                .iter()
                .chain(&pair.b.data)
                .any(|v| !v.is_finite())
        })
        .map(|(module, _)| module.as_str())
}
