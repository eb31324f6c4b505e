//! The resumable state on disk, `checkpoint.safetensors`: the adapter (`adapter/<PEFT
//! name>`), AdamW's moments (`adam_m/…`, `adam_v/…`) and, in the metadata, the step, the
//! settings and each moment's time. Everything else a run needs follows from the seed and
//! the step, so this is all a resumed run has to read.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use quarry_encoder::lora::{peft_tensor_name, serialize_f32, LoraAdapter};
use quarry_encoder::HostTensor;
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::{train_error, write_atomically, TrainSettings};
use crate::error::{EngineError, Result};

/// File of the output folder holding the resumable state.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// Metadata key of the [`CheckpointState`] JSON.
const STATE_KEY: &str = "quarry_train_state";
/// Metadata key of the moments' AdamW times (a JSON object by PEFT tensor name).
const ADAM_TIME_KEY: &str = "adam_time";
const ADAPTER_PREFIX: &str = "adapter/";
const FIRST_MOMENT_PREFIX: &str = "adam_m/";
const SECOND_MOMENT_PREFIX: &str = "adam_v/";

/// One tensor's AdamW state on the host: (time, first moment, second moment).
pub(super) type HostMoments = (usize, HostTensor, HostTensor);

pub(super) struct Checkpoint {
    /// Optimiser steps done.
    pub step: usize,
    pub adapter: LoraAdapter,
    /// Per PEFT tensor name.
    pub moments: HashMap<String, HostMoments>,
    /// Real tokens forwarded up to `step`.
    pub tokens: u64,
    /// The loss of every step up to `step` (the whole loss curve across resumes).
    pub losses: Vec<f64>,
}

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    settings: TrainSettings,
    tokens: u64,
    /// Absent from checkpoints written before the loss curve was kept.
    #[serde(default)]
    losses: Vec<f64>,
}

/// The PEFT names of a module's lora_A and lora_B, the keys of its tensors on disk.
pub(super) fn branch_tensor_names(module: &str) -> [String; 2] {
    [peft_tensor_name(module, 'A'), peft_tensor_name(module, 'B')]
}

/// The values of a tensor as f32, for the host.
pub(super) fn f32_values<Bk: Backend, const D: usize>(
    tensor: Tensor<Bk, D>,
    what: &str,
    path: &Path,
) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| train_error(path, format!("reading {what}: {e:?}")))
}

/// A device tensor moved to the host.
pub(super) fn host<Bk: Backend>(tensor: Tensor<Bk, 2>) -> Result<HostTensor> {
    let shape = tensor.dims().to_vec();
    let data = f32_values(tensor, "a tensor", Path::new("."))?;
    Ok(HostTensor { shape, data })
}

/// A host tensor moved to `device`, in f32 (AdamW's moments are f32 whatever the base).
pub(super) fn device_tensor<Bk: Backend>(host: &HostTensor, device: &Bk::Device) -> Tensor<Bk, 2> {
    Tensor::from_data(
        TensorData::new(host.data.clone(), [host.shape[0], host.shape[1]]),
        (device, DType::F32),
    )
}

/// The checkpoint a run starts from: the folder's one with `--resume` (which needs it), or
/// none (and then the folder must have none, so a run never overwrites another's state).
pub(super) fn open_checkpoint(
    path: &Path,
    resume: bool,
    settings: &TrainSettings,
) -> Result<Option<Checkpoint>> {
    if resume {
        if !path.is_file() {
            return Err(train_error(
                path,
                "--resume: no checkpoint in the output folder",
            ));
        }
        return read_checkpoint(path, settings).map(Some);
    }
    if path.exists() {
        return Err(train_error(
            path,
            "the output folder holds a checkpoint: pass --resume to continue it, or choose \
             another --output",
        ));
    }
    Ok(None)
}

pub(super) fn write_checkpoint(
    path: &Path,
    checkpoint: &Checkpoint,
    settings: &TrainSettings,
) -> Result<()> {
    let mut named: Vec<(String, &HostTensor)> = Vec::new();
    for (module, pair) in &checkpoint.adapter.modules {
        let [name_a, name_b] = branch_tensor_names(module);
        named.push((format!("{ADAPTER_PREFIX}{name_a}"), &pair.a));
        named.push((format!("{ADAPTER_PREFIX}{name_b}"), &pair.b));
    }
    let mut times = serde_json::Map::new();
    for (name, (time, first, second)) in &checkpoint.moments {
        named.push((format!("{FIRST_MOMENT_PREFIX}{name}"), first));
        named.push((format!("{SECOND_MOMENT_PREFIX}{name}"), second));
        times.insert(name.clone(), serde_json::Value::from(*time));
    }
    let state = CheckpointState {
        step: checkpoint.step,
        settings: settings.clone(),
        tokens: checkpoint.tokens,
        losses: checkpoint.losses.clone(),
    };
    let mut metadata = HashMap::new();
    metadata.insert(
        STATE_KEY.to_string(),
        serde_json::to_string(&state).expect("serialises"),
    );
    metadata.insert(
        ADAM_TIME_KEY.to_string(),
        serde_json::Value::Object(times).to_string(),
    );
    let bytes = serialize_f32(&named, Some(metadata))?;
    write_atomically(path, &bytes)
}

/// The tensors of a checkpoint file, sorted by what they are.
#[derive(Default)]
struct CheckpointTensors<'b> {
    /// PEFT name (the prefix stripped) and view, for the adapter.
    adapter: Vec<(String, TensorView<'b>)>,
    first_moments: HashMap<String, HostTensor>,
    second_moments: HashMap<String, HostTensor>,
}

fn read_checkpoint(path: &Path, settings: &TrainSettings) -> Result<Checkpoint> {
    let corrupt = |detail: String| corrupt_checkpoint(path, detail);
    let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| corrupt(format!("not a quarry checkpoint: {e}")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let state: CheckpointState = metadata
        .get(STATE_KEY)
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| corrupt("no training state in its metadata".to_string()))?;
    require_same_settings(path, &state.settings, settings)?;
    let times: HashMap<String, usize> = metadata
        .get(ADAM_TIME_KEY)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    let file = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(format!("unreadable: {e}")))?;
    let tensors = sort_tensors(&file);
    // The adapter's tensors, their prefix stripped, are a PEFT adapter file of their own:
    // the encoder's reader checks them against the settings' LoRA configuration.
    let adapter_bytes = safetensors::serialize(tensors.adapter, None)
        .map_err(|e| corrupt(format!("adapter tensors: {e}")))?;
    let adapter = LoraAdapter::from_safetensors(settings.lora_config(), &adapter_bytes, path)?;
    let moments = pair_moments(path, tensors.first_moments, tensors.second_moments, &times)?;
    Ok(Checkpoint {
        step: state.step,
        adapter,
        moments,
        tokens: state.tokens,
        losses: state.losses,
    })
}

fn corrupt_checkpoint(path: &Path, detail: String) -> EngineError {
    EngineError::DataCorruption {
        file: path.to_path_buf(),
        detail,
    }
}

/// Refuses a checkpoint made with other settings: the resumed run would not end with the
/// adapter either settings train.
fn require_same_settings(path: &Path, saved: &TrainSettings, now: &TrainSettings) -> Result<()> {
    if saved == now {
        return Ok(());
    }
    Err(train_error(
        path,
        format!(
            "the checkpoint was made with other settings; resume with the same ones or \
             start a new output folder.\n  checkpoint: {}\n  now:        {}",
            serde_json::to_string(saved).unwrap_or_default(),
            serde_json::to_string(now).unwrap_or_default()
        ),
    ))
}

/// Sorts a checkpoint's tensors by their prefix; others are ignored.
fn sort_tensors<'b>(file: &SafeTensors<'b>) -> CheckpointTensors<'b> {
    let mut sorted = CheckpointTensors::default();
    for (name, view) in file.tensors() {
        if let Some(rest) = name.strip_prefix(ADAPTER_PREFIX) {
            sorted.adapter.push((rest.to_string(), view));
        } else if let Some(rest) = name.strip_prefix(FIRST_MOMENT_PREFIX) {
            sorted
                .first_moments
                .insert(rest.to_string(), f32_host(&view));
        } else if let Some(rest) = name.strip_prefix(SECOND_MOMENT_PREFIX) {
            sorted
                .second_moments
                .insert(rest.to_string(), f32_host(&view));
        }
    }
    sorted
}

/// An f32 tensor of the file on the host (moments are written as f32 only).
fn f32_host(view: &TensorView<'_>) -> HostTensor {
    HostTensor {
        shape: view.shape().to_vec(),
        data: view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

/// Each tensor's first and second moments with its time (0 when the metadata lacks it).
fn pair_moments(
    path: &Path,
    firsts: HashMap<String, HostTensor>,
    mut seconds: HashMap<String, HostTensor>,
    times: &HashMap<String, usize>,
) -> Result<HashMap<String, HostMoments>> {
    let mut moments = HashMap::new();
    for (name, first) in firsts {
        let second = seconds
            .remove(&name)
            .ok_or_else(|| corrupt_checkpoint(path, format!("`{name}` has no second moment")))?;
        let time = times.get(&name).copied().unwrap_or(0);
        moments.insert(name, (time, first, second));
    }
    Ok(moments)
}
