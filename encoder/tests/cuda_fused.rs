//! The fused CUDA forward of Qwen2 (quarry's flash attention, residual add + RMSNorm,
//! RoPE from the model's tables, SwiGLU; issue #6) against burn's op-by-op graph, on the
//! same card and the same weights. Needs `--features cuda` and a CUDA device (skips without
//! one). No Rust toolchain on the GPU machine: build the binary here with
//! `cargo test --release -p quarry-encoder --features cuda --test cuda_fused --no-run` and
//! run it there (scripts/gpu/cuda_tests.sh). The kernels alone are checked against PyTorch by
//! scripts/gpu/kernel_check.py.
#![cfg(feature = "cuda")]

use burn::backend::cuda::CudaDevice;
use burn::tensor::{DType, Int, Tensor, TensorData};
use quarry_encoder::cuda::{self, AttentionKernel};
use quarry_encoder::encode::{cosine_similarity, cuda_device_count, CudaBackend};
use quarry_encoder::qwen2::{Qwen2Config, Qwen2Model};

fn config(heads: usize, kv_heads: usize, head_dim: usize) -> Qwen2Config {
    let hidden = heads * head_dim;
    Qwen2Config {
        vocab_size: 1000,
        hidden_size: hidden,
        intermediate_size: 3 * hidden,
        num_hidden_layers: 2,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim,
        max_position_embeddings: 32_768,
        rope_theta: 1e6,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: true,
    }
}

fn hidden_rows(hidden: Tensor<CudaBackend, 3>) -> Vec<Vec<f32>> {
    let [batch, seq, width] = hidden.dims();
    let values: Vec<f32> = hidden
        .cast(DType::F32)
        .into_data()
        .to_vec()
        .expect("f32 hidden states");
    assert_eq!(values.len(), batch * seq * width);
    values.chunks(width).map(<[f32]>::to_vec).collect()
}

#[test]
fn fused_forward_matches_the_op_by_op_graph() {
    if cuda_device_count() == 0 {
        eprintln!("no CUDA device: skipped");
        return;
    }
    let device = CudaDevice::new(0);
    // Head sizes 64 and 128, grouped key/value heads 2:1 and 4:1; a length that is neither a
    // multiple of the 64-row tiles nor of 16, and one over two tiles.
    for (heads, kv_heads, head_dim, batch, seq) in
        [(4, 2, 64, 3, 80), (4, 1, 128, 2, 130), (2, 2, 64, 1, 7)]
    {
        let cfg = config(heads, kv_heads, head_dim);
        let model = Qwen2Model::<CudaBackend>::random(&cfg, &device, DType::BF16);
        let ids: Vec<i64> = (0..batch * seq)
            .map(|i| ((i * 7919 + 13) % cfg.vocab_size) as i64)
            .collect();
        let ids =
            Tensor::<CudaBackend, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), &device);

        cuda::set_fused_kernels(false);
        cuda::set_attention_kernel(AttentionKernel::Fallback);
        let reference = hidden_rows(model.forward(ids.clone()));
        cuda::set_fused_kernels(true);
        cuda::set_attention_kernel(AttentionKernel::Fused);
        let fused = hidden_rows(model.forward(ids));

        let shape = format!("H{heads}/{kv_heads} D{head_dim} B{batch} S{seq}");
        let mut worst = f64::INFINITY;
        for (row, (a, b)) in fused.iter().zip(&reference).enumerate() {
            assert!(
                a.iter().all(|v| v.is_finite()),
                "{shape}: row {row} not finite"
            );
            worst = worst.min(cosine_similarity(a, b));
        }
        eprintln!(
            "{shape}: min cosine fused vs op-by-op over {} rows: {worst:.6}",
            fused.len()
        );
        assert!(worst >= 0.999, "{shape}: min cosine {worst}");
    }
}
