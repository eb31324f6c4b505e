//! The RepLLaMA / Tevatron contrastive objective on a Qwen2 encoder: InfoNCE over in-batch
//! and hard negatives, on L2-normalised last-token (EOS) embeddings, divided by a temperature.
//!
//! Place in the data flow: the engine's training loop builds token ids with the supervised
//! prompts (the same [`crate::prompt::PromptBuilder`] `quarry build --mode supervised` uses)
//! into a [`ContrastiveBatch`]; [`contrastive_loss`] runs the model (with its LoRA branches)
//! and returns the loss tensor, on an autodiff backend ready for `backward()`.
//!
//! The loss is Tevatron's: `scores = q pᵀ / τ` over every passage of the batch, and the
//! target of query `i` is its own positive, passage `i · group_size` (each query contributes
//! its positive then `group_size - 1` hard negatives); cross-entropy averaged over queries.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

use crate::encode::BatchPolicy;
use crate::layers::{divide, to_f32};
use crate::qwen2::Qwen2Model;
use crate::EncoderError;

/// Token ids of one (micro-)batch; every sequence is pooled at its last token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContrastiveBatch {
    pub queries: Vec<Vec<u32>>,
    /// `group_size` passages per query, in query order; each group's first is the positive.
    pub passages: Vec<Vec<u32>>,
    pub group_size: usize,
    /// Pad every query (passage) to exactly this many tokens instead of the encoder's bucketed
    /// length: one shape per side, so a GPU tunes and compiles its kernels once rather than
    /// once per bucket. Right padding under causal attention leaves the pooled last tokens
    /// unchanged, so this only trades padding work for fewer shapes.
    pub query_length: Option<usize>,
    pub passage_length: Option<usize>,
}

impl ContrastiveBatch {
    /// Number of real (unpadded) tokens.
    pub fn tokens(&self) -> usize {
        self.queries
            .iter()
            .chain(&self.passages)
            .map(Vec::len)
            .sum()
    }

    fn validate(&self, vocab: usize, max_positions: usize) -> Result<(), EncoderError> {
        if self.queries.is_empty() || self.group_size == 0 {
            return Err(EncoderError::InvalidInput(
                "a contrastive batch needs queries and a positive group size".to_string(),
            ));
        }
        if self.passages.len() != self.queries.len() * self.group_size {
            return Err(EncoderError::InvalidInput(format!(
                "{} passages for {} queries of group size {}",
                self.passages.len(),
                self.queries.len(),
                self.group_size
            )));
        }
        let sides = [
            (&self.queries, self.query_length),
            (&self.passages, self.passage_length),
        ];
        for (sequences, padded) in sides {
            let limit = padded.unwrap_or(max_positions).min(max_positions);
            for sequence in sequences {
                if sequence.is_empty() || sequence.len() > limit {
                    return Err(EncoderError::InvalidInput(format!(
                        "a sequence of {} tokens (1 to {limit} allowed)",
                        sequence.len()
                    )));
                }
                if let Some(token) = sequence.iter().find(|&&t| t as usize >= vocab) {
                    return Err(EncoderError::InvalidInput(format!(
                        "token id {token} outside the vocabulary of {vocab}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// L2-normalised last-token embeddings `[n, hidden]` (f32) of right-padded sequences,
/// padded to `padded_length` when given, else to the encoder's bucketed lengths (so GPU
/// kernels see few shapes).
pub fn last_token_embeddings<B: Backend>(
    model: &Qwen2Model<B>,
    sequences: &[Vec<u32>],
    padded_length: Option<usize>,
) -> Tensor<B, 2> {
    let device = model.device();
    let longest = sequences.iter().map(Vec::len).max().unwrap_or(1);
    let padded = padded_length
        .unwrap_or_else(|| {
            BatchPolicy::default().padded_length(longest, model.config().max_position_embeddings)
        })
        .max(longest);
    let count = sequences.len();
    let mut ids = vec![0i32; count * padded];
    let mut rows = Vec::with_capacity(count);
    for (row, sequence) in sequences.iter().enumerate() {
        for (slot, &token) in ids[row * padded..].iter_mut().zip(sequence) {
            *slot = token as i32;
        }
        rows.push((row * padded + sequence.len() - 1) as i32);
    }
    let input_ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [count, padded]), device);
    let hidden = to_f32(model.forward(input_ids));
    let width = hidden.dims()[2];
    let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [count]), device);
    let pooled = hidden.reshape([count * padded, width]).select(0, rows);
    // torch.nn.functional.normalize: v / max(|v|, 1e-12).
    let norms = pooled
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    divide(pooled, norms)
}

/// `log_softmax` along dimension 1 whose gradient avoids autodiff's `log` (differentiated
/// with burn-ndarray's approximate f32 reciprocal, see [`divide`]): the value is the usual
/// `x - max - log Σ exp(x - max)`; the gradient of the log term comes from
/// `S / S₀ - (S / S₀)₀`, which is zero-valued and differentiates to `dS / S`
/// (`₀`: detached).
fn log_softmax_rows<B: Backend>(scores: Tensor<B, 2>) -> Tensor<B, 2> {
    let shifted = scores.clone() - scores.max_dim(1).detach();
    let sum = shifted.clone().exp().sum_dim(1);
    let constant = sum.clone().detach();
    let relative = divide(sum, constant.clone());
    let log_sum = constant.log() + (relative.clone() - relative.detach());
    shifted - log_sum
}

/// InfoNCE loss (a one-element tensor) of a batch, `temperature` dividing cosine scores.
pub fn contrastive_loss<B: Backend>(
    model: &Qwen2Model<B>,
    batch: &ContrastiveBatch,
    temperature: f64,
) -> Result<Tensor<B, 1>, EncoderError> {
    let config = model.config();
    batch.validate(config.vocab_size, config.max_position_embeddings)?;
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(EncoderError::InvalidInput(format!(
            "temperature {temperature} must be positive"
        )));
    }
    let queries = last_token_embeddings(model, &batch.queries, batch.query_length);
    let passages = last_token_embeddings(model, &batch.passages, batch.passage_length);
    let count = batch.queries.len();
    let candidates = batch.passages.len();
    let scores = queries.matmul(passages.transpose()).div_scalar(temperature);
    let log_probabilities = log_softmax_rows(scores).reshape([count * candidates]);
    let targets: Vec<i32> = (0..count)
        .map(|query| (query * candidates + query * batch.group_size) as i32)
        .collect();
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [count]), model.device());
    Ok(log_probabilities.select(0, targets).mean().neg())
}
