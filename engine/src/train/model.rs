//! The model a run trains: the Qwen2 base with the prompts `quarry build --mode supervised`
//! encodes with (training on other prompts would teach the adapter the wrong inputs), and
//! the LoRA adapter attached to it, fresh as PEFT initialises one or from a checkpoint.

use std::collections::BTreeMap;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::DType;
use quarry_encoder::device_memory::device_memory;
use quarry_encoder::lora::{LoraAdapter, LoraConfig, LoraPair};
use quarry_encoder::prompt::{detect_family, PromptTemplate};
use quarry_encoder::weights::open_weights;
use quarry_encoder::{HostTensor, ModelConfig, Precision, Qwen2Model};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::batch::Prompts;
use super::memory::MemoryPlan;
use super::schedule::{derived_seed, Stream};
use super::{train_error, TrainJob, TrainSettings};
use crate::error::Result;

/// Loads the job's base model on `device` and the supervised prompts of its family, after
/// checking that the run's memory plan fits the device.
pub(super) fn load_model<B: AutodiffBackend>(
    job: &TrainJob,
    device: &B::Device,
) -> Result<(Qwen2Model<B>, Prompts, MemoryPlan)> {
    let weights = open_weights(&job.model)?;
    let config_json = weights.config_json()?;
    let qwen2 = match ModelConfig::from_hf_json(&config_json.to_string(), &job.model)? {
        ModelConfig::Qwen2(config) => config,
        ModelConfig::Bert(_) => {
            return Err(train_error(&job.model, "LoRA training needs a Qwen2 model"))
        }
    };
    let plan = MemoryPlan::new(&qwen2, &job.settings);
    if job.memory_check {
        check_memory(job, &plan)?;
    }
    let chat_template = weights.chat_template()?;
    let family = detect_family(&config_json, chat_template.as_deref()).ok_or_else(|| {
        train_error(
            &job.model,
            "its chat template is of a format quarry has no prompt template for",
        )
    })?;
    let template = PromptTemplate::load(family, "supervised")?;
    let prompts = Prompts::new(template, weights.tokenizer()?, job)?;
    let dtype = compute_dtype(job.settings.precision);
    let model = Qwen2Model::<B>::load(&qwen2, weights.as_source(), device, dtype)?;
    Ok((model, prompts, plan))
}

/// Refuses a plan larger than the device's free memory; a device whose memory cannot be
/// read is not checked (the reason is not an error of the job).
fn check_memory(job: &TrainJob, plan: &MemoryPlan) -> Result<()> {
    let Ok(memory) = device_memory(job.device) else {
        return Ok(());
    };
    match plan.misfit(&memory, &job.settings) {
        Some(detail) => Err(train_error(&job.model, detail)),
        None => Ok(()),
    }
}

/// The tensor dtype the base model computes in.
fn compute_dtype(precision: Precision) -> DType {
    match precision {
        Precision::F32 => DType::F32,
        Precision::BF16 => DType::BF16,
        Precision::F16 => DType::F16,
    }
}

/// Attaches the checkpoint's adapter, or a fresh one when the run starts from scratch.
pub(super) fn attach_adapter<B: AutodiffBackend>(
    model: &mut Qwen2Model<B>,
    resumed: Option<&LoraAdapter>,
    settings: &TrainSettings,
) -> Result<()> {
    let fresh;
    let adapter = match resumed {
        Some(adapter) => adapter,
        None => {
            let targets = model.lora_targets(&settings.target_modules);
            fresh = initial_adapter(settings.lora_config(), &targets, settings.seed);
            &fresh
        }
    };
    model.attach_lora(adapter, settings.dropout, settings.adapter_f32)?;
    Ok(())
}

/// A fresh adapter as PEFT initialises one: lora_A Kaiming-uniform (bound `1/sqrt(in)`),
/// lora_B zero, so training starts from the base model.
fn initial_adapter(
    config: LoraConfig,
    targets: &[(String, usize, usize)],
    seed: u64,
) -> LoraAdapter {
    let mut rng = ChaCha8Rng::seed_from_u64(derived_seed(seed, Stream::Init, 0));
    let mut modules = BTreeMap::new();
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
