//! [`EmbeddingModel`]: the non-generic face of an encoder that the engine holds, the same
//! encoder on the CPU (burn-ndarray) or, with the `cuda` feature, on a GPU.

use super::{EncodeOptions, Encoder, ModelConfig};
#[cfg(feature = "cuda")]
use crate::backend::CudaBackend;
use crate::backend::{ComputeDevice, CpuBackend};
#[cfg(feature = "cuda")]
use crate::qwen2::Qwen2Config;
use crate::{EncoderError, TensorSource};

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
        self.embed_reporting(sequences, &|_| {})
    }

    /// [`Self::embed`], telling `done` how many sequences are embedded after each batch.
    pub fn embed_reporting(
        &self,
        sequences: &[Vec<u32>],
        done: &dyn Fn(usize),
    ) -> Result<Vec<Vec<f32>>, EncoderError> {
        match &self.encoder {
            AnyEncoder::Cpu(encoder) => encoder.embed_reporting(sequences, done),
            #[cfg(feature = "cuda")]
            AnyEncoder::Cuda(encoder) => encoder.embed_reporting(sequences, done),
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
mod thread_safety {
    /// The engine shares one model between worker threads.
    #[test]
    fn embedding_model_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::EmbeddingModel>();
    }
}
