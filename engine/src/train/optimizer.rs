//! The arithmetic of an optimiser step on the LoRA tensors: gradients summed over the
//! micro-batches, clipped to a global norm (PyTorch's `clip_grad_norm_`), and AdamW
//! (burn's, PyTorch's formula) with its moments kept per tensor so a checkpoint can carry
//! them. Only lora_A and lora_B of each branch train; the base stays frozen.

use std::collections::HashMap;
use std::path::Path;

use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, SimpleOptimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use quarry_encoder::{LoraBranch, Qwen2Model};

use super::checkpoint::{branch_tensor_names, device_tensor, f32_values, host, HostMoments};
use crate::error::Result;

/// A tensor of the inner (non-autodiff) backend, where gradients and moments live.
type InnerTensor<B> = Tensor<<B as AutodiffBackend>::InnerBackend, 2>;
/// A trainable tensor's AdamW state (`None` before its first update).
type MomentState<B> = Option<AdamWState<<B as AutodiffBackend>::InnerBackend, 2>>;

/// A branch's trainable tensors, lora_A then lora_B: the order of every per-branch pair here.
fn branch_tensors<B: AutodiffBackend>(branch: &mut LoraBranch<B>) -> [&mut Tensor<B, 2>; 2] {
    [&mut branch.a, &mut branch.b]
}

/// One step's gradients, summed over its micro-batches, per branch (in the model's order).
pub(super) struct GradientSums<B: AutodiffBackend> {
    sums: Vec<[Option<InnerTensor<B>>; 2]>,
}

impl<B: AutodiffBackend> GradientSums<B> {
    pub fn new(branches: usize) -> Self {
        GradientSums {
            sums: (0..branches).map(|_| [None, None]).collect(),
        }
    }

    /// Adds a micro-batch's gradients (its loss already weighted by its share of the batch).
    pub fn add(&mut self, model: &mut Qwen2Model<B>, gradients: &B::Gradients) {
        for ((_, branch), sums) in model.lora_branches_mut().into_iter().zip(&mut self.sums) {
            for (tensor, sum) in branch_tensors(branch).into_iter().zip(sums) {
                if let Some(grad) = tensor.grad(gradients) {
                    *sum = Some(match sum.take() {
                        Some(previous) => previous + grad,
                        None => grad,
                    });
                }
            }
        }
    }

    /// Scales the gradients so their global norm is at most `max_norm`, as
    /// `torch.nn.utils.clip_grad_norm_`; `max_norm` 0 leaves them as they are.
    pub fn clip_to_norm(&mut self, max_norm: f64, path: &Path) -> Result<()> {
        if max_norm <= 0.0 {
            return Ok(());
        }
        let squares: Vec<Tensor<B::InnerBackend, 1>> = self
            .sums
            .iter()
            .flatten()
            .flatten()
            .map(|g| g.clone().powi_scalar(2).sum())
            .collect();
        if squares.is_empty() {
            return Ok(());
        }
        let norm_tensor = Tensor::cat(squares, 0).sum().sqrt();
        let norm = f64::from(f32_values(norm_tensor, "the gradient norm", path)?[0]);
        // PyTorch's epsilon: a zero norm gives a large coefficient, not a division by zero.
        let coefficient = max_norm / (norm + 1e-6);
        if coefficient < 1.0 {
            for sum in self.sums.iter_mut().flatten() {
                if let Some(grad) = sum.take() {
                    *sum = Some(grad.mul_scalar(coefficient));
                }
            }
        }
        Ok(())
    }
}

/// AdamW over the model's LoRA tensors, with each tensor's moments.
pub(super) struct LoraOptimizer<B: AutodiffBackend> {
    adamw: AdamW,
    /// PEFT names of each branch's tensors, in the model's branch order.
    names: Vec<[String; 2]>,
    states: Vec<[MomentState<B>; 2]>,
}

impl<B: AutodiffBackend> LoraOptimizer<B> {
    /// Makes the attached branches trainable and takes their moments from a checkpoint's
    /// (`resumed`) or starts them empty.
    pub fn new(
        model: &mut Qwen2Model<B>,
        resumed: Option<&HashMap<String, HostMoments>>,
        device: &B::Device,
        weight_decay: f64,
    ) -> Self {
        let mut names = Vec::new();
        let mut states = Vec::new();
        for (module, branch) in model.lora_branches_mut() {
            let branch_names = branch_tensor_names(&module);
            states.push(branch_names.clone().map(|name| {
                let (time, first, second) = resumed?.get(&name)?;
                Some(AdamWState::new(AdaptiveMomentumState::new(
                    *time,
                    device_tensor(first, device),
                    device_tensor(second, device),
                )))
            }));
            names.push(branch_names);
            for tensor in branch_tensors(branch) {
                *tensor = tensor.clone().require_grad();
            }
        }
        let adamw = AdamWConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .with_weight_decay(weight_decay as f32)
            .build();
        LoraOptimizer {
            adamw,
            names,
            states,
        }
    }

    /// Number of LoRA branches (each with two tensors).
    pub fn branches(&self) -> usize {
        self.names.len()
    }

    /// One AdamW update of every tensor that has a gradient, at `learning_rate`.
    pub fn update(
        &mut self,
        model: &mut Qwen2Model<B>,
        gradients: GradientSums<B>,
        learning_rate: f64,
    ) {
        let branches = model.lora_branches_mut().into_iter();
        for (((_, branch), sums), states) in branches.zip(gradients.sums).zip(&mut self.states) {
            for ((tensor, sum), state) in branch_tensors(branch).into_iter().zip(sums).zip(states) {
                let Some(grad) = sum else {
                    continue;
                };
                let (updated, new_state) =
                    self.adamw
                        .step(learning_rate, tensor.clone().inner(), grad, state.take());
                *state = new_state;
                *tensor = Tensor::from_inner(updated).require_grad();
            }
        }
    }

    /// The moments of every tensor updated so far, on the host, by PEFT name.
    pub fn host_moments(&self) -> Result<HashMap<String, HostMoments>> {
        let mut moments = HashMap::new();
        for (names, states) in self.names.iter().zip(&self.states) {
            for (name, state) in names.iter().zip(states) {
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
        Ok(moments)
    }
}
