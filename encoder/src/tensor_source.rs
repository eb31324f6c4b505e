//! Named tensor sources: the seam between weight loading and model code.
//!
//! Weight loaders (`weights/`: safetensors folders, GGUF files) implement
//! [`TensorSource`]; the architectures (`qwen2`, `bert`) read their weights
//! only through it. Loaders present HF/PyTorch naming and shapes whatever the
//! file format (GGUF names such as `blk.N.attn_q.weight` are mapped to
//! `model.layers.N.self_attn.q_proj.weight`, GGUF's reversed dimension order is
//! undone), so model code knows one convention only.

use std::path::Path;

use crate::EncoderError;

/// A tensor in host memory, converted to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Row-major shape, outermost dimension first (PyTorch order).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Number of elements the shape implies.
    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A named-tensor source: where model weights come from (safetensors folder, GGUF file, ...).
pub trait TensorSource {
    /// Names of all tensors, in the checkpoint's own naming.
    fn tensor_names(&self) -> Vec<String>;
    /// Shape (row-major, outermost first, HF/PyTorch order) of a tensor, or None if absent.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// The tensor dequantised/converted to f32, row-major, PyTorch shape order. Errors name the file and tensor.
    fn load_f32(&self, name: &str) -> Result<HostTensor, EncoderError>;
    /// Where the weights came from, for error messages.
    fn origin(&self) -> &Path;
}
