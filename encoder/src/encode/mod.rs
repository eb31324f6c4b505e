//! From token id sequences to embeddings: batching, padding, pooling.
//!
//! The engine hands over tokenised texts (`&[Vec<u32>]`); [`Encoder::embed`]
//! sorts them by length, cuts them into batches of one padded shape each,
//! runs the architecture, pools each sequence's real tokens and restores the
//! caller's order.
//!
//! - `architecture`: [`ModelConfig`] (Qwen2 or BERT) and the loaded model.
//! - `batch`: [`BatchPolicy`], sequences grouped into padded batches of few shapes.
//! - `options`: [`EncodeOptions`] (pooling, normalisation, precision, batching).
//! - `pooling`: [`Pooling`], token states to one vector.
//! - `vectors`: [`l2_normalize`], [`cosine_similarity`].
//! - `embedding_model`: [`EmbeddingModel`], the non-generic face the engine holds: the same
//!   encoder on the CPU (burn-ndarray) or, with the `cuda` feature, on a GPU.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

mod architecture;
mod batch;
mod embedding_model;
mod options;
mod pooling;
mod vectors;

pub use architecture::ModelConfig;
pub use batch::{BatchPolicy, PlannedBatch};
pub use embedding_model::EmbeddingModel;
pub use options::EncodeOptions;
pub use pooling::Pooling;
pub use vectors::{cosine_similarity, l2_normalize};

// The backends and device choices live in `crate::backend`; re-exported where they always were.
pub use crate::backend::{cuda_device_count, ComputeDevice, CpuBackend, Precision};
#[cfg(feature = "cuda")]
pub use crate::backend::{use_gpu_tuning_cache, CudaBackend};

use crate::backend::supported_dtype;
use crate::kernels::EncoderBackend;
use crate::layers::to_f32;
use crate::qwen2::{Qwen2Config, Qwen2Model};
use crate::{EncoderError, TensorSource};
use architecture::Architecture;

/// An encoder on one burn backend.
#[derive(Debug, Clone)]
pub struct Encoder<B: Backend> {
    model: Architecture<B>,
    config: ModelConfig,
    options: EncodeOptions,
    device: B::Device,
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
        Ok(Self {
            model: Architecture::load(config, source, device, dtype)?,
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
        self.config.max_position_embeddings()
    }

    /// One embedding per sequence, in the caller's order.
    pub fn embed(&self, sequences: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EncoderError> {
        self.embed_reporting(sequences, &|_| {})
    }

    /// [`Self::embed`], telling `done` how many sequences are embedded after each forward
    /// batch (a chunk of a build takes minutes on a CPU: its progress shows inside it).
    pub fn embed_reporting(
        &self,
        sequences: &[Vec<u32>],
        done: &dyn Fn(usize),
    ) -> Result<Vec<Vec<f32>>, EncoderError> {
        let mut embeddings = vec![Vec::new(); sequences.len()];
        let width = self.dimension();
        let mut embedded = 0;
        self.for_each_batch(sequences, |batch, hidden, lengths| {
            let values = read_f32(self.options.pooling.pool(hidden, lengths))?;
            for (row, &index) in values.chunks_exact(width).zip(&batch.indices) {
                let mut embedding = row.to_vec();
                if self.options.normalize {
                    l2_normalize(&mut embedding);
                }
                embeddings[index] = embedding;
            }
            embedded += batch.indices.len();
            done(embedded);
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
        let (vocab, max_length) = (self.config.vocab_size(), self.max_sequence_length());
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
            let hidden = self.model.forward(input_ids, &batch_lengths);
            consume(&batch, hidden, &batch_lengths)?;
        }
        Ok(())
    }
}
fn read_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Result<Vec<f32>, EncoderError> {
    let data = to_f32(tensor).try_into_data().map_err(|err| {
        EncoderError::Backend(format!("reading results from the device: {err:?}"))
    })?;
    data.to_vec::<f32>()
        .map_err(|err| EncoderError::Backend(format!("results are not f32: {err:?}")))
}
