//! LoRA on Qwen2's projections (training, `quarry train`): which linears an adapter targets,
//! attaching an adapter's tensors as branches, and reading the trained branches back.

use burn::tensor::{backend::Backend, DType, Tensor, TensorData};

use super::Qwen2Model;
use crate::layers::{to_f32, Linear, LoraBranch};
use crate::lora::{LoraAdapter, LoraConfig, LoraPair};
use crate::{EncoderError, HostTensor};

impl<B: Backend> Qwen2Model<B> {
    /// Every linear with its module path in the checkpoint's naming
    /// (`model.layers.0.self_attn.q_proj`), layer by layer in PEFT's order.
    fn linears_mut(&mut self) -> Vec<(String, &mut Linear<B>)> {
        let prefix = &self.prefix;
        let mut linears = Vec::with_capacity(self.layers.len() * 7);
        for (index, layer) in self.layers.iter_mut().enumerate() {
            let attention = &mut layer.self_attn;
            let mlp = &mut layer.mlp;
            let path = |group: &str, name: &str| format!("{prefix}layers.{index}.{group}.{name}");
            linears.push((path("self_attn", "q_proj"), &mut attention.q_proj));
            linears.push((path("self_attn", "k_proj"), &mut attention.k_proj));
            linears.push((path("self_attn", "v_proj"), &mut attention.v_proj));
            linears.push((path("self_attn", "o_proj"), &mut attention.o_proj));
            linears.push((path("mlp", "gate_proj"), &mut mlp.gate_proj));
            linears.push((path("mlp", "up_proj"), &mut mlp.up_proj));
            linears.push((path("mlp", "down_proj"), &mut mlp.down_proj));
        }
        linears
    }

    /// Module paths and `(d_in, d_out)` of the linears whose last name component is in
    /// `targets` (`q_proj`, ...), in model order.
    pub fn lora_targets(&mut self, targets: &[String]) -> Vec<(String, usize, usize)> {
        self.linears_mut()
            .into_iter()
            .filter(|(path, _)| {
                let last = path.rsplit('.').next().unwrap_or("");
                targets.iter().any(|t| t == last)
            })
            .map(|(path, linear)| {
                let (d_in, d_out) = linear.dims();
                (path, d_in, d_out)
            })
            .collect()
    }

    /// Puts `adapter`'s tensors (f32, on the model's device) on the linears it adapts, as
    /// branches with `dropout` (0 for inference) that compute in f32 when `compute_f32` (see
    /// [`LoraBranch`]); replaces any branches attached before. Every adapter module must exist
    /// with fitting shapes.
    pub fn attach_lora(
        &mut self,
        adapter: &LoraAdapter,
        dropout: f64,
        compute_f32: bool,
    ) -> Result<(), EncoderError> {
        let device = self.device.clone();
        let scale = adapter.config.scale();
        let mut used = 0;
        for (path, linear) in self.linears_mut() {
            linear.lora = None;
            let Some(pair) = adapter.modules.get(&path) else {
                continue;
            };
            let (d_in, d_out) = linear.dims();
            let rank = adapter.config.rank;
            if pair.a.shape != [rank, d_in] || pair.b.shape != [d_out, rank] {
                return Err(EncoderError::InvalidInput(format!(
                    "adapter `{path}`: lora_A {:?} / lora_B {:?} do not fit the linear [{d_out}, {d_in}]",
                    pair.a.shape, pair.b.shape
                )));
            }
            let tensor = |host: &HostTensor| {
                Tensor::<B, 2>::from_data(
                    TensorData::new(host.data.clone(), [host.shape[0], host.shape[1]]),
                    (&device, DType::F32),
                )
            };
            linear.lora = Some(Box::new(LoraBranch {
                a: tensor(&pair.a),
                b: tensor(&pair.b),
                scale,
                dropout,
                compute_f32,
            }));
            used += 1;
        }
        if used != adapter.modules.len() {
            let known: Vec<String> = self.linears_mut().into_iter().map(|(p, _)| p).collect();
            let unknown: Vec<&String> = adapter
                .modules
                .keys()
                .filter(|module| !known.contains(module))
                .collect();
            return Err(EncoderError::InvalidInput(format!(
                "the adapter names modules this model does not have: {unknown:?}"
            )));
        }
        Ok(())
    }

    /// The attached LoRA branches with their module paths, in model order.
    pub fn lora_branches_mut(&mut self) -> Vec<(String, &mut LoraBranch<B>)> {
        self.linears_mut()
            .into_iter()
            .filter_map(|(path, linear)| linear.lora.as_deref_mut().map(|lora| (path, lora)))
            .collect()
    }

    /// The attached branches' current values as a host adapter (for saving).
    pub fn lora_adapter(&mut self, config: &LoraConfig) -> Result<LoraAdapter, EncoderError> {
        let mut modules = std::collections::BTreeMap::new();
        for (path, branch) in self.lora_branches_mut() {
            let host = |tensor: &Tensor<B, 2>| -> Result<HostTensor, EncoderError> {
                let shape = tensor.dims().to_vec();
                let data = to_f32(tensor.clone())
                    .into_data()
                    .to_vec::<f32>()
                    .map_err(|e| EncoderError::Backend(format!("reading `{path}`: {e:?}")))?;
                Ok(HostTensor { shape, data })
            };
            modules.insert(
                path.clone(),
                LoraPair {
                    a: host(&branch.a)?,
                    b: host(&branch.b)?,
                },
            );
        }
        Ok(LoraAdapter {
            config: config.clone(),
            modules,
        })
    }
}
