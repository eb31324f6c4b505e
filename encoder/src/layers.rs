//! Building blocks shared by the architectures (`qwen2`, `bert`): reading named
//! weights from a [`TensorSource`] onto a burn device with shape checks, and the
//! linear layer. Weights arrive in HF naming and PyTorch shapes; linear weights
//! are transposed once at load time to burn's `[d_in, d_out]` layout.

use burn::tensor::{backend::Backend, DType, Tensor, TensorData};

use crate::{EncoderError, TensorSource};

/// Reads tensors under a name prefix, like candle's `VarBuilder::pp`.
pub(crate) struct WeightReader<'a, B: Backend> {
    source: &'a dyn TensorSource,
    prefix: String,
    device: B::Device,
    dtype: DType,
}

impl<'a, B: Backend> WeightReader<'a, B> {
    pub(crate) fn new(source: &'a dyn TensorSource, device: &B::Device, dtype: DType) -> Self {
        Self {
            source,
            prefix: String::new(),
            device: device.clone(),
            dtype,
        }
    }

    /// A reader for the names below `segment` (joined with a dot).
    pub(crate) fn pp(&self, segment: impl std::fmt::Display) -> Self {
        Self {
            source: self.source,
            prefix: format!("{}{}.", self.prefix, segment),
            device: self.device.clone(),
            dtype: self.dtype,
        }
    }

    /// A reader for the names under a checkpoint's prefix (`model.`, `bert.`, or none).
    pub(crate) fn under(self, prefix: &str) -> Self {
        match prefix.strip_suffix('.') {
            Some(segment) => self.pp(segment),
            None => self,
        }
    }

    pub(crate) fn dtype(&self) -> DType {
        self.dtype
    }

    pub(crate) fn device(&self) -> &B::Device {
        &self.device
    }

    fn full_name(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    fn error(&self, name: &str, detail: String) -> EncoderError {
        EncoderError::Weights {
            origin: self.source.origin().to_path_buf(),
            name: self.full_name(name),
            detail,
        }
    }

    /// Host copy of a tensor after checking its shape against `expected`.
    fn host(&self, name: &str, expected: &[usize]) -> Result<TensorData, EncoderError> {
        let full = self.full_name(name);
        let Some(shape) = self.source.shape(&full) else {
            return Err(self.error(name, "missing from the checkpoint".to_string()));
        };
        if shape != expected {
            return Err(self.error(
                name,
                format!("shape {shape:?}, the model configuration implies {expected:?}"),
            ));
        }
        let tensor = self.source.load_f32(&full)?;
        if tensor.shape != expected || tensor.data.len() != tensor.num_elements() {
            return Err(self.error(
                name,
                format!(
                    "loaded with shape {:?} and {} values, expected shape {expected:?}",
                    tensor.shape,
                    tensor.data.len()
                ),
            ));
        }
        Ok(TensorData::new(tensor.data, tensor.shape))
    }

    /// A tensor of the given shape, in the reader's dtype.
    pub(crate) fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<B, D>, EncoderError> {
        let data = self.host(name, &shape)?;
        Ok(Tensor::from_data(data, (&self.device, self.dtype)))
    }

    /// `{name}.weight` `[d_out, d_in]` (+ `{name}.bias` `[d_out]`) as a linear layer.
    pub(crate) fn linear(
        &self,
        name: &str,
        d_in: usize,
        d_out: usize,
        with_bias: bool,
    ) -> Result<Linear<B>, EncoderError> {
        self.fused_linear(&[name], d_in, d_out, with_bias)
    }

    /// Several linear layers of one input as one, outputs side by side in
    /// the order of `names` (`d_out` each): one larger matmul instead of
    /// several small ones (BERT's query, key and value projections).
    pub(crate) fn fused_linear(
        &self,
        names: &[&str],
        d_in: usize,
        d_out: usize,
        with_bias: bool,
    ) -> Result<Linear<B>, EncoderError> {
        let mut stacked = Vec::with_capacity(names.len() * d_out * d_in);
        let mut biases = Vec::with_capacity(names.len() * d_out);
        for name in names {
            let weight_name = format!("{name}.weight");
            let weight = self.host(&weight_name, &[d_out, d_in])?;
            let values = weight
                .to_vec::<f32>()
                .map_err(|err| self.error(&weight_name, format!("not f32 data: {err:?}")))?;
            stacked.extend_from_slice(&values);
            if with_bias {
                let bias_name = format!("{name}.bias");
                let bias = self.host(&bias_name, &[d_out])?;
                let values = bias
                    .to_vec::<f32>()
                    .map_err(|err| self.error(&bias_name, format!("not f32 data: {err:?}")))?;
                biases.extend_from_slice(&values);
            }
        }
        let d_out = names.len() * d_out;
        // PyTorch keeps `[out, in]`; burn's linear multiplies by `[in, out]`.
        // Transposing on the host keeps the device copy contiguous.
        let transposed = transpose(&stacked, d_out, d_in);
        let weight = Tensor::from_data(
            TensorData::new(transposed, [d_in, d_out]),
            (&self.device, self.dtype),
        );
        let bias = with_bias.then(|| {
            Tensor::from_data(TensorData::new(biases, [d_out]), (&self.device, self.dtype))
        });
        Ok(Linear {
            weight,
            bias,
            lora: None,
        })
    }
}

/// Row-major `[rows, cols]` -> row-major `[cols, rows]`, in tiles so both
/// sides stay in cache (7B projection matrices are ~270 MB in f32).
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 64;
    let mut out = vec![0.0f32; values.len()];
    for row_start in (0..rows).step_by(TILE) {
        let row_end = (row_start + TILE).min(rows);
        for col_start in (0..cols).step_by(TILE) {
            let col_end = (col_start + TILE).min(cols);
            for row in row_start..row_end {
                for col in col_start..col_end {
                    out[col * rows + row] = values[row * cols + col];
                }
            }
        }
    }
    out
}

/// `y = x W^T + b` with `W` stored transposed (`[d_in, d_out]`), plus an optional LoRA
/// branch (training: base weights stay constants, the branch holds the trainable tensors).
#[derive(Debug, Clone)]
pub(crate) struct Linear<B: Backend> {
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
    /// Boxed: most linears have none, and the model stays small to move around.
    pub(crate) lora: Option<Box<LoraBranch<B>>>,
}

impl<B: Backend> Linear<B> {
    /// A layer from tensors already on the device (`weight` `[d_in, d_out]`).
    pub(crate) fn from_tensors(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Self {
            weight,
            bias,
            lora: None,
        }
    }

    #[cfg(feature = "cuda")]
    pub(crate) fn bias(&self) -> Option<&Tensor<B, 1>> {
        self.bias.as_ref()
    }

    /// `x W^T` alone (for kernels that add the bias themselves).
    #[cfg(feature = "cuda")]
    pub(crate) fn forward_without_bias<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match crate::cuda::linear(x, &self.weight) {
            Ok(product) => product,
            Err(x) => burn::tensor::module::linear(x, self.weight.clone(), None),
        }
    }

    pub(crate) fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match &self.lora {
            None => {
                // On burn-cuda in bf16/f16 the GEMM runs in cuBLAS (crate::cuda).
                #[cfg(feature = "cuda")]
                let x = match crate::cuda::linear(x, &self.weight) {
                    Ok(product) => {
                        return match &self.bias {
                            Some(bias) => product + bias.clone().unsqueeze(),
                            None => product,
                        }
                    }
                    Err(x) => x,
                };
                burn::tensor::module::linear(x, self.weight.clone(), self.bias.clone())
            }
            Some(lora) => {
                // Training: the frozen product as one op that records only W (crate::frozen;
                // cuBLAS both ways on burn-cuda).
                let base = match crate::frozen::frozen_linear(x.clone(), &self.weight) {
                    Ok(product) => match &self.bias {
                        Some(bias) => product + bias.clone().unsqueeze(),
                        None => product,
                    },
                    Err(x) => {
                        burn::tensor::module::linear(x, self.weight.clone(), self.bias.clone())
                    }
                };
                base + lora.forward(x)
            }
        }
    }

    /// `(d_in, d_out)`.
    pub(crate) fn dims(&self) -> (usize, usize) {
        let [d_in, d_out] = self.weight.dims();
        (d_in, d_out)
    }
}

/// PEFT's LoRA branch `dropout(x) Aᵀ Bᵀ · scale`, with `a` `[rank, in]` and `b` `[out, rank]`
/// in PEFT's layout (so saving, loading and optimiser state need no transposes). The tensors
/// are kept in f32.
///
/// With `compute_f32` (the default, as PEFT's `autocast_adapter_dtype`) a bf16/f16 model's
/// branch casts its input up and runs in f32, adding its output back in the model's dtype:
/// the gradients of `a` and `b` then come from f32 products. Without it the branch runs in the
/// activations' dtype (cheaper, but `B`'s first updates are far below a bf16 ulp of `A x`).
#[derive(Debug, Clone)]
pub struct LoraBranch<B: Backend> {
    pub a: Tensor<B, 2>,
    pub b: Tensor<B, 2>,
    pub scale: f64,
    /// Probability of zeroing an input element (training only; 0 disables it).
    pub dropout: f64,
    /// Run the branch in f32 whatever the activations' dtype.
    pub compute_f32: bool,
}

impl<B: Backend> LoraBranch<B> {
    fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dtype = x.dtype();
        let compute = if self.compute_f32 { DType::F32 } else { dtype };
        let x = to_dtype(x, compute);
        let x = if self.dropout > 0.0 {
            let keep = 1.0 - self.dropout;
            // Draws from the backend's generator: the trainer seeds it per micro-batch, so
            // masks are a function of (seed, step) and a resumed run draws the same ones.
            let mask = Tensor::<B, D>::random(
                x.shape(),
                burn::tensor::Distribution::Bernoulli(keep),
                &x.device(),
            );
            x * to_dtype(mask, compute).div_scalar(keep)
        } else {
            x
        };
        let a = to_dtype(self.a.clone(), compute).transpose();
        let b = to_dtype(self.b.clone(), compute).transpose();
        let low = burn::tensor::module::linear(x, a, None);
        to_dtype(
            burn::tensor::module::linear(low, b, None).mul_scalar(self.scale),
            dtype,
        )
    }
}

/// `x / y` for a positive `y`, with an exact gradient on the CPU.
///
/// burn-autodiff differentiates `x / y` with respect to `x` as `grad * recip(y)`, and
/// burn-ndarray's f32 `recip` (also what `powf_scalar(-1)` becomes) is a SIMD
/// approximation (~3e-4 relative): enough to put LoRA gradients 2e-4 away from PyTorch's.
/// When differentiating, `x · (y²)^-½` is used instead (`powf` with a non-integer exponent
/// is exact, and so is its derivative); without autodiff the plain division keeps inference
/// numerics as they were.
pub(crate) fn divide<B: Backend, const D: usize>(x: Tensor<B, D>, y: Tensor<B, D>) -> Tensor<B, D> {
    if B::ad_enabled(&x.device()) {
        x * y.powi_scalar(2).powf_scalar(-0.5)
    } else {
        x / y
    }
}

/// Casts to f32 when the model runs in a half type: norms and softmax
/// statistics are computed in f32, as transformers does.
pub(crate) fn to_f32<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if x.dtype() == DType::F32 {
        x
    } else {
        x.cast(DType::F32)
    }
}

/// Back from f32 to the model dtype.
pub(crate) fn to_dtype<B: Backend, const D: usize>(x: Tensor<B, D>, dtype: DType) -> Tensor<B, D> {
    if x.dtype() == dtype {
        x
    } else {
        x.cast(dtype)
    }
}

/// Checks that configuration values are positive; names the first field that is not.
pub(crate) fn require_positive(
    file: &std::path::Path,
    fields: &[(&str, usize)],
) -> Result<(), EncoderError> {
    match fields.iter().find(|(_, value)| *value == 0) {
        Some((field, _)) => Err(EncoderError::Config {
            file: file.to_path_buf(),
            detail: format!("`{field}` must be positive"),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn transpose_moves_every_value() {
        let (rows, cols) = (70, 131);
        let values: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let out = super::transpose(&values, rows, cols);
        for row in 0..rows {
            for col in 0..cols {
                assert_eq!(out[col * rows + row], values[row * cols + col]);
            }
        }
    }
}
