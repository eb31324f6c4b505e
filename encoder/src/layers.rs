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
        let weight = self.host(&format!("{name}.weight"), &[d_out, d_in])?;
        // PyTorch keeps `[out, in]`; burn's linear multiplies by `[in, out]`.
        // Transposing on the host keeps the device copy contiguous.
        let values = weight.to_vec::<f32>().map_err(|err| {
            self.error(&format!("{name}.weight"), format!("not f32 data: {err:?}"))
        })?;
        let transposed = transpose(&values, d_out, d_in);
        let weight = Tensor::from_data(
            TensorData::new(transposed, [d_in, d_out]),
            (&self.device, self.dtype),
        );
        let bias = if with_bias {
            Some(self.tensor(&format!("{name}.bias"), [d_out])?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
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

/// `y = x W^T + b` with `W` stored transposed (`[d_in, d_out]`).
#[derive(Debug, Clone)]
pub(crate) struct Linear<B: Backend> {
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
}

impl<B: Backend> Linear<B> {
    /// A layer from tensors already on the device (`weight` `[d_in, d_out]`).
    pub(crate) fn from_tensors(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Self { weight, bias }
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

/// Checks that a configuration value is positive; names the field otherwise.
pub(crate) fn require_positive(
    file: &std::path::Path,
    field: &str,
    value: usize,
) -> Result<(), EncoderError> {
    if value == 0 {
        return Err(EncoderError::Config {
            file: file.to_path_buf(),
            detail: format!("`{field}` must be positive"),
        });
    }
    Ok(())
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
