//! From token id sequences to embeddings: batching, padding, pooling.
//!
//! The engine hands over tokenised texts (`&[Vec<u32>]`); [`Encoder::embed`]
//! sorts them by length, cuts them into batches of one padded shape each,
//! runs the architecture, pools each sequence's real tokens and restores the
//! caller's order. Padded lengths come from few buckets (multiples of 16,
//! coarser for long inputs) because GPU kernels are autotuned per shape.
//! [`EmbeddingModel`] is the non-generic face the engine holds: the same
//! encoder on the CPU (burn-ndarray) or, with the `cuda` feature, on a GPU.

use std::path::Path;

use burn::tensor::{backend::Backend, DType, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bert::{BertConfig, BertModel};
use crate::kernels::EncoderBackend;
use crate::layers::to_f32;
use crate::qwen2::{Qwen2Config, Qwen2Model};
use crate::{EncoderError, TensorSource};

/// The architecture and its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ModelConfig {
    Qwen2(Qwen2Config),
    Bert(BertConfig),
}

impl ModelConfig {
    /// Reads a HF `config.json`, choosing the architecture from `model_type`
    /// (`qwen2`, `qwen2_5_vl`, `bert`).
    pub fn from_hf_file(path: &Path) -> Result<Self, EncoderError> {
        let text = std::fs::read_to_string(path).map_err(|source| EncoderError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_hf_json(&text, path)
    }

    /// Parses `config.json` text (or the equivalent built from GGUF
    /// metadata); `path` names its source in errors.
    pub fn from_hf_json(text: &str, path: &Path) -> Result<Self, EncoderError> {
        let value: Value = serde_json::from_str(text).map_err(|err| EncoderError::Config {
            file: path.to_path_buf(),
            detail: format!("not valid JSON: {err}"),
        })?;
        match value.get("model_type").and_then(Value::as_str) {
            Some("qwen2" | "qwen2_5_vl" | "qwen2_5_vl_text") => {
                Ok(Self::Qwen2(Qwen2Config::from_hf_json(text, path)?))
            }
            Some("bert") => Ok(Self::Bert(BertConfig::from_hf_json(text, path)?)),
            other => Err(EncoderError::Config {
                file: path.to_path_buf(),
                detail: format!(
                    "model_type {other:?}: quarry encodes with qwen2, qwen2_5_vl or bert"
                ),
            }),
        }
    }

    fn hidden_size(&self) -> usize {
        match self {
            Self::Qwen2(config) => config.hidden_size,
            Self::Bert(config) => config.hidden_size,
        }
    }
}

/// How a sequence's token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pooling {
    /// The state of the last real token (decoder models).
    LastToken,
    /// The mean over real tokens (sentence-transformers `pooling_mode_mean_tokens`).
    Mean,
    /// The first token's state (`pooling_mode_cls_token`).
    Cls,
}

/// Floating-point type of weights and activations. Norm statistics are
/// always computed in f32. Half types are meant for CUDA; the CPU backend
/// runs f32 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Precision {
    F32,
    BF16,
    F16,
}

impl Precision {
    fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::BF16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }
}

/// How sequences are grouped into padded batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPolicy {
    /// Padded lengths are multiples of this (and of 1/8 of the largest power of two not above the length).
    pub length_multiple: usize,
    /// Upper bound on `batch size x padded length`, i.e. on activation memory.
    pub max_batch_tokens: usize,
    /// Upper bound on the number of sequences in a batch.
    pub max_batch_size: usize,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            length_multiple: 16,
            max_batch_tokens: 16_384,
            max_batch_size: 256,
        }
    }
}

impl BatchPolicy {
    /// The padded length of a sequence of `length` tokens, at most `cap`.
    ///
    /// Rounding to a multiple of `max(length_multiple, 2^floor(log2 length) / 8)`
    /// pads at most 1/8 of the length (or `length_multiple`) while keeping
    /// the number of distinct shapes logarithmic in the length (8 per octave).
    pub fn padded_length(&self, length: usize, cap: usize) -> usize {
        let power_below = if length == 0 {
            1
        } else {
            1usize << length.ilog2()
        };
        let step = self.length_multiple.max(power_below / 8).max(1);
        let padded = length.div_ceil(step) * step;
        padded.min(cap).max(length)
    }

    /// Groups sequence indices into batches of one padded length each, longest first.
    pub fn plan(&self, lengths: &[usize], cap: usize) -> Vec<PlannedBatch> {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by_key(|&index| std::cmp::Reverse(lengths[index]));
        let mut batches = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let padded = self.padded_length(lengths[order[start]], cap);
            let capacity = (self.max_batch_tokens / padded.max(1))
                .min(self.max_batch_size)
                .max(1);
            let mut end = start;
            while end < order.len()
                && end - start < capacity
                && self.padded_length(lengths[order[end]], cap) == padded
            {
                end += 1;
            }
            batches.push(PlannedBatch {
                indices: order[start..end].to_vec(),
                padded_length: padded,
            });
            start = end;
        }
        batches
    }
}

/// Sequences (by index into the caller's slice) that run together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBatch {
    pub indices: Vec<usize>,
    pub padded_length: usize,
}

/// Everything besides the weights that determines the output vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodeOptions {
    pub pooling: Pooling,
    /// L2-normalise each embedding (sentence-transformers `Normalize`).
    pub normalize: bool,
    pub precision: Precision,
    pub batch: BatchPolicy,
}

impl EncodeOptions {
    /// Decoder defaults: last-token pooling, normalised, f32.
    pub fn last_token() -> Self {
        Self {
            pooling: Pooling::LastToken,
            normalize: true,
            precision: Precision::F32,
            batch: BatchPolicy::default(),
        }
    }

    /// Pooling and normalisation as a sentence-transformers model folder
    /// declares them (`modules.json`, `<pooling module>/config.json`).
    pub fn from_sentence_transformers_dir(dir: &Path) -> Result<Self, EncoderError> {
        let modules_path = dir.join("modules.json");
        let modules: Vec<Value> = read_json(&modules_path)?;
        let module_of = |kind: &str| {
            modules.iter().find(|module| {
                module
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|name| name.ends_with(kind))
            })
        };
        let config_error = |file: &Path, detail: String| EncoderError::Config {
            file: file.to_path_buf(),
            detail,
        };
        let pooling_module = module_of(".Pooling")
            .ok_or_else(|| config_error(&modules_path, "no Pooling module".to_string()))?;
        let pooling_dir = pooling_module
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                config_error(&modules_path, "Pooling module without `path`".to_string())
            })?;
        let pooling_path = dir.join(pooling_dir).join("config.json");
        let pooling_config: Value = read_json(&pooling_path)?;
        // sentence-transformers < 6 writes one boolean per mode; 6 writes
        // `"pooling_mode": "mean"`.
        let modes: Vec<&str> = match pooling_config.get("pooling_mode").and_then(Value::as_str) {
            Some(mode) => vec![mode],
            None => [
                ("pooling_mode_cls_token", "cls"),
                ("pooling_mode_mean_tokens", "mean"),
                ("pooling_mode_max_tokens", "max"),
                ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"),
                ("pooling_mode_weightedmean_tokens", "weightedmean"),
                ("pooling_mode_lasttoken", "lasttoken"),
            ]
            .into_iter()
            .filter(|(flag, _)| pooling_config.get(flag).and_then(Value::as_bool) == Some(true))
            .map(|(_, mode)| mode)
            .collect(),
        };
        let pooling = match modes.as_slice() {
            ["cls"] => Pooling::Cls,
            ["mean"] => Pooling::Mean,
            ["lasttoken"] => Pooling::LastToken,
            other => {
                return Err(config_error(
                    &pooling_path,
                    format!("pooling modes {other:?}: one of cls, mean, lasttoken is supported"),
                ))
            }
        };
        Ok(Self {
            pooling,
            normalize: module_of(".Normalize").is_some(),
            precision: Precision::F32,
            batch: BatchPolicy::default(),
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EncoderError> {
    let text = std::fs::read_to_string(path).map_err(|source| EncoderError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|err| EncoderError::Config {
        file: path.to_path_buf(),
        detail: err.to_string(),
    })
}

/// A loaded architecture.
#[derive(Debug, Clone)]
enum Architecture<B: Backend> {
    Qwen2(Qwen2Model<B>),
    Bert(BertModel<B>),
}

/// An encoder on one burn backend.
#[derive(Debug, Clone)]
pub struct Encoder<B: Backend> {
    model: Architecture<B>,
    config: ModelConfig,
    options: EncodeOptions,
    device: B::Device,
}

/// The burn dtype of `precision`, or an error if `device` cannot compute in it.
fn supported_dtype<B: EncoderBackend>(
    precision: Precision,
    device: &B::Device,
) -> Result<burn::tensor::DType, EncoderError> {
    let dtype = precision.dtype();
    if !B::supports_dtype(device, dtype) {
        return Err(EncoderError::Backend(format!(
            "{} does not support {precision:?} on {device:?}",
            B::name(device)
        )));
    }
    Ok(dtype)
}

impl<B: EncoderBackend> Encoder<B> {
    /// Loads the weights of `config`'s architecture from `source` onto `device`.
    pub fn load(
        config: &ModelConfig,
        source: &dyn TensorSource,
        options: EncodeOptions,
        device: &B::Device,
    ) -> Result<Self, EncoderError> {
        let dtype = supported_dtype::<B>(options.precision, device)?;
        let model = match config {
            ModelConfig::Qwen2(qwen2) => {
                Architecture::Qwen2(Qwen2Model::load(qwen2, source, device, dtype)?)
            }
            ModelConfig::Bert(bert) => {
                Architecture::Bert(BertModel::load(bert, source, device, dtype)?)
            }
        };
        Ok(Self {
            model,
            config: config.clone(),
            options,
            device: device.clone(),
        })
    }

    /// A Qwen2 encoder with random weights of `config`'s shape drawn on
    /// `device` (throughput benchmarks; speed does not depend on weight values).
    pub fn random_qwen2(
        config: &Qwen2Config,
        options: EncodeOptions,
        device: &B::Device,
    ) -> Result<Self, EncoderError> {
        let dtype = supported_dtype::<B>(options.precision, device)?;
        Ok(Self {
            model: Architecture::Qwen2(Qwen2Model::random(config, device, dtype)),
            config: ModelConfig::Qwen2(config.clone()),
            options,
            device: device.clone(),
        })
    }

    /// Length of the output vectors.
    pub fn dimension(&self) -> usize {
        self.config.hidden_size()
    }

    pub fn options(&self) -> &EncodeOptions {
        &self.options
    }

    /// Longest sequence the model accepts.
    pub fn max_sequence_length(&self) -> usize {
        match &self.config {
            ModelConfig::Qwen2(config) => config.max_position_embeddings,
            ModelConfig::Bert(config) => config.max_position_embeddings,
        }
    }

    fn vocab_size(&self) -> usize {
        match &self.config {
            ModelConfig::Qwen2(config) => config.vocab_size,
            ModelConfig::Bert(config) => config.vocab_size,
        }
    }

    /// One embedding per sequence, in the caller's order.
    pub fn embed(&self, sequences: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EncoderError> {
        let mut embeddings = vec![Vec::new(); sequences.len()];
        let width = self.dimension();
        self.for_each_batch(sequences, |batch, hidden, lengths| {
            let values = read_f32(self.pool(hidden, lengths))?;
            for (row, &index) in values.chunks_exact(width).zip(&batch.indices) {
                let mut embedding = row.to_vec();
                if self.options.normalize {
                    l2_normalize(&mut embedding);
                }
                embeddings[index] = embedding;
            }
            Ok(())
        })?;
        Ok(embeddings)
    }

    /// Final hidden states of each sequence's real tokens (`[length][hidden]`),
    /// in the caller's order; for parity checks and inspection.
    pub fn hidden_states(
        &self,
        sequences: &[Vec<u32>],
    ) -> Result<Vec<Vec<Vec<f32>>>, EncoderError> {
        let mut states = vec![Vec::new(); sequences.len()];
        let width = self.dimension();
        self.for_each_batch(sequences, |batch, hidden, lengths| {
            let values = read_f32(hidden)?;
            let row_width = batch.padded_length * width;
            for ((rows, &index), &length) in values
                .chunks_exact(row_width)
                .zip(&batch.indices)
                .zip(lengths)
            {
                states[index] = rows[..length * width]
                    .chunks_exact(width)
                    .map(<[f32]>::to_vec)
                    .collect();
            }
            Ok(())
        })?;
        Ok(states)
    }

    fn validate(&self, sequences: &[Vec<u32>]) -> Result<(), EncoderError> {
        let (vocab, max_length) = (self.vocab_size(), self.max_sequence_length());
        for (index, sequence) in sequences.iter().enumerate() {
            if sequence.is_empty() {
                return Err(EncoderError::InvalidInput(format!(
                    "sequence {index} has no tokens"
                )));
            }
            if sequence.len() > max_length {
                return Err(EncoderError::InvalidInput(format!(
                    "sequence {index} has {} tokens, the model takes at most {max_length}",
                    sequence.len()
                )));
            }
            if let Some(token) = sequence.iter().find(|&&token| token as usize >= vocab) {
                return Err(EncoderError::InvalidInput(format!(
                    "sequence {index}: token id {token} outside the vocabulary of {vocab}"
                )));
            }
        }
        Ok(())
    }

    /// Runs the planned batches one after the other, handing each batch,
    /// its final hidden states `[batch, padded, hidden]` and real lengths to
    /// `consume` before the next starts (so device memory holds one batch).
    fn for_each_batch(
        &self,
        sequences: &[Vec<u32>],
        mut consume: impl FnMut(&PlannedBatch, Tensor<B, 3>, &[usize]) -> Result<(), EncoderError>,
    ) -> Result<(), EncoderError> {
        self.validate(sequences)?;
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let plan = self
            .options
            .batch
            .plan(&lengths, self.max_sequence_length());
        for batch in plan {
            let padded = batch.padded_length;
            // Right padding with token 0: decoders never look at it (causal
            // mask), BERT masks it out; pooling reads real tokens only.
            let mut ids = vec![0i32; batch.indices.len() * padded];
            let mut batch_lengths = Vec::with_capacity(batch.indices.len());
            for (row, &index) in batch.indices.iter().enumerate() {
                let sequence = &sequences[index];
                for (slot, &token) in ids[row * padded..].iter_mut().zip(sequence) {
                    *slot = token as i32;
                }
                batch_lengths.push(sequence.len());
            }
            let input_ids = Tensor::<B, 2, Int>::from_data(
                TensorData::new(ids, [batch.indices.len(), padded]),
                &self.device,
            );
            let hidden = match &self.model {
                Architecture::Qwen2(model) => model.forward(input_ids),
                Architecture::Bert(model) => model.forward(input_ids, &batch_lengths),
            };
            consume(&batch, hidden, &batch_lengths)?;
        }
        Ok(())
    }

    /// `[batch, hidden]` pooled states, f32.
    fn pool(&self, hidden: Tensor<B, 3>, lengths: &[usize]) -> Tensor<B, 2> {
        let [batch, padded, width] = hidden.dims();
        let hidden = to_f32(hidden);
        let pick = |position: &dyn Fn(usize) -> usize| {
            let rows: Vec<i32> = (0..batch)
                .map(|row| (row * padded + position(lengths[row])) as i32)
                .collect();
            let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [batch]), &self.device);
            hidden
                .clone()
                .reshape([batch * padded, width])
                .select(0, rows)
        };
        match self.options.pooling {
            Pooling::LastToken => pick(&|length| length - 1),
            Pooling::Cls => pick(&|_| 0),
            Pooling::Mean => {
                let mask: Vec<f32> = lengths
                    .iter()
                    .flat_map(|&length| (0..padded).map(move |p| f32::from(u8::from(p < length))))
                    .collect();
                let mask = Tensor::<B, 3>::from_data(
                    TensorData::new(mask, [batch, padded, 1]),
                    (&self.device, DType::F32),
                );
                let counts: Vec<f32> = lengths.iter().map(|&length| length as f32).collect();
                let counts = Tensor::<B, 2>::from_data(
                    TensorData::new(counts, [batch, 1]),
                    (&self.device, DType::F32),
                );
                (hidden * mask).sum_dim(1).reshape([batch, width]) / counts
            }
        }
    }
}

fn read_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<Vec<f32>, EncoderError> {
    let data = to_f32(tensor).try_into_data().map_err(|err| {
        EncoderError::Backend(format!("reading results from the device: {err:?}"))
    })?;
    data.to_vec::<f32>()
        .map_err(|err| EncoderError::Backend(format!("results are not f32: {err:?}")))
}

/// Cosine similarity, accumulated in f64 (0 when a vector is all zeros): how embeddings of
/// two runs are compared (GPU against CPU, quarry against a reference implementation).
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-30)
}

/// `v / max(|v|, 1e-12)`, as torch's `F.normalize`.
pub fn l2_normalize(vector: &mut [f32]) {
    let norm = vector
        .iter()
        .map(|&value| f64::from(value) * f64::from(value))
        .sum::<f64>()
        .sqrt()
        .max(1e-12);
    for value in vector {
        *value = (f64::from(*value) / norm) as f32;
    }
}

/// Where an [`EmbeddingModel`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComputeDevice {
    /// burn-ndarray on the CPU threads (f32 only).
    Cpu,
    /// burn-cuda on the GPU with this index (needs the `cuda` feature).
    Cuda(usize),
}

/// Points burn-cuda's kernel autotune cache at `directory` so that tuning
/// done by one process is reused by the next (first-pass autotune costs
/// tens of seconds per new shape). cubecl's default puts it under the
/// `target/` folder of whatever Cargo project the current directory is in,
/// which for an installed binary is an accident of where it was started.
/// A `cubecl.toml` naming another cache location wins. Must run before the
/// first GPU use; later calls (or a config already in use) change nothing.
/// Returns the directory in force, if this call set it.
#[cfg(feature = "cuda")]
pub fn use_gpu_tuning_cache(directory: &std::path::Path) -> Option<std::path::PathBuf> {
    use burn::cubecl::config::{cache::CacheConfig, CubeClRuntimeConfig, RuntimeConfig};
    let storage = CubeClRuntimeConfig::storage();
    let mut state = storage.lock();
    if state.is_some() {
        return None;
    }
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    if !matches!(config.autotune.cache, CacheConfig::Target) {
        // The user configured a location: respect it.
        *state = Some(std::sync::Arc::new(config));
        return None;
    }
    config.autotune.cache = CacheConfig::File(directory.to_path_buf());
    *state = Some(std::sync::Arc::new(config));
    Some(directory.to_path_buf())
}

/// How many CUDA devices this process can see (0 in a build without the
/// `cuda` feature or on a machine without a driver).
pub fn cuda_device_count() -> usize {
    #[cfg(feature = "cuda")]
    {
        use burn::tensor::backend::Backend;
        // cubecl's CUDA device type id is 0.
        std::panic::catch_unwind(|| CudaBackend::device_count(0)).unwrap_or(0)
    }
    #[cfg(not(feature = "cuda"))]
    {
        0
    }
}

/// CPU backend.
pub type CpuBackend = burn_ndarray::NdArray<f32>;
/// CUDA backend (kernels fused and autotuned; dtype chosen at load time).
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda;

#[derive(Debug, Clone)]
enum AnyEncoder {
    // Boxed: an encoder is ~1-2 KB of handles and configuration.
    Cpu(Box<Encoder<CpuBackend>>),
    #[cfg(feature = "cuda")]
    Cuda(Box<Encoder<CudaBackend>>),
}

/// The encoder the engine holds: one type whatever the device.
#[derive(Debug, Clone)]
pub struct EmbeddingModel {
    encoder: AnyEncoder,
}

impl EmbeddingModel {
    pub fn load(
        config: &ModelConfig,
        source: &dyn TensorSource,
        options: EncodeOptions,
        device: ComputeDevice,
    ) -> Result<Self, EncoderError> {
        let encoder = match device {
            ComputeDevice::Cpu => AnyEncoder::Cpu(Box::new(Encoder::load(
                config,
                source,
                options,
                &burn_ndarray::NdArrayDevice::Cpu,
            )?)),
            #[cfg(feature = "cuda")]
            ComputeDevice::Cuda(index) => AnyEncoder::Cuda(Box::new(Encoder::load(
                config,
                source,
                options,
                &burn::backend::cuda::CudaDevice::new(index),
            )?)),
            #[cfg(not(feature = "cuda"))]
            ComputeDevice::Cuda(_) => {
                return Err(EncoderError::Backend(
                    "this build has no GPU support (rebuild with the `cuda` feature)".to_string(),
                ))
            }
        };
        Ok(Self { encoder })
    }

    /// A Qwen2 model of `config`'s shape with random weights drawn on CUDA
    /// device `index` (throughput benchmarks).
    #[cfg(feature = "cuda")]
    pub fn random_qwen2_cuda(
        config: &Qwen2Config,
        options: EncodeOptions,
        index: usize,
    ) -> Result<Self, EncoderError> {
        let device = burn::backend::cuda::CudaDevice::new(index);
        Ok(Self {
            encoder: AnyEncoder::Cuda(Box::new(Encoder::random_qwen2(config, options, &device)?)),
        })
    }

    /// One embedding per token sequence, in order.
    pub fn embed(&self, sequences: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EncoderError> {
        match &self.encoder {
            AnyEncoder::Cpu(encoder) => encoder.embed(sequences),
            #[cfg(feature = "cuda")]
            AnyEncoder::Cuda(encoder) => encoder.embed(sequences),
        }
    }

    /// Final hidden states of the real tokens of each sequence.
    pub fn hidden_states(
        &self,
        sequences: &[Vec<u32>],
    ) -> Result<Vec<Vec<Vec<f32>>>, EncoderError> {
        match &self.encoder {
            AnyEncoder::Cpu(encoder) => encoder.hidden_states(sequences),
            #[cfg(feature = "cuda")]
            AnyEncoder::Cuda(encoder) => encoder.hidden_states(sequences),
        }
    }

    pub fn dimension(&self) -> usize {
        match &self.encoder {
            AnyEncoder::Cpu(encoder) => encoder.dimension(),
            #[cfg(feature = "cuda")]
            AnyEncoder::Cuda(encoder) => encoder.dimension(),
        }
    }

    pub fn max_sequence_length(&self) -> usize {
        match &self.encoder {
            AnyEncoder::Cpu(encoder) => encoder.max_sequence_length(),
            #[cfg(feature = "cuda")]
            AnyEncoder::Cuda(encoder) => encoder.max_sequence_length(),
        }
    }

    pub fn options(&self) -> &EncodeOptions {
        match &self.encoder {
            AnyEncoder::Cpu(encoder) => encoder.options(),
            #[cfg(feature = "cuda")]
            AnyEncoder::Cuda(encoder) => encoder.options(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_lengths_are_few_and_waste_little() {
        let policy = BatchPolicy::default();
        assert_eq!(policy.padded_length(1, 512), 16);
        assert_eq!(policy.padded_length(16, 512), 16);
        assert_eq!(policy.padded_length(17, 512), 32);
        assert_eq!(policy.padded_length(130, 512), 144);
        assert_eq!(policy.padded_length(500, 512), 512);
        assert_eq!(policy.padded_length(510, 510), 510);
        assert_eq!(policy.padded_length(513, 8192), 576);
        assert_eq!(policy.padded_length(700, 8192), 704);
        let distinct: std::collections::BTreeSet<usize> =
            (1..=4096).map(|n| policy.padded_length(n, 8192)).collect();
        assert!(distinct.len() <= 64, "{} shapes", distinct.len());
        for n in 1..=4096 {
            let padded = policy.padded_length(n, 8192);
            assert!(
                padded >= n && (padded - n < 16 || (padded - n) * 8 < n),
                "{n} -> {padded}"
            );
        }
    }

    #[test]
    fn plan_covers_every_sequence_once_within_limits() {
        let policy = BatchPolicy {
            length_multiple: 16,
            max_batch_tokens: 64,
            max_batch_size: 3,
        };
        let lengths = [5, 40, 3, 17, 16, 2, 1, 33, 9];
        let plan = policy.plan(&lengths, 48);
        let mut seen: Vec<usize> = plan.iter().flat_map(|b| b.indices.clone()).collect();
        seen.sort();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for batch in &plan {
            assert!(batch.indices.len() <= 3);
            assert!(batch.indices.len() * batch.padded_length <= 64 || batch.indices.len() == 1);
            for &index in &batch.indices {
                assert!(lengths[index] <= batch.padded_length);
                assert_eq!(
                    policy.padded_length(lengths[index], 48),
                    batch.padded_length
                );
            }
        }
        assert_eq!(plan[0].padded_length, 48);
    }
}

#[cfg(test)]
mod thread_safety {
    /// The engine shares one model between worker threads.
    #[test]
    fn embedding_model_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::EmbeddingModel>();
    }
}
