//! Training: the frozen base projections of a LoRA-adapted model as one autodiff op.
//!
//! Place in the data flow: `quarry train` runs the model on an autodiff backend with LoRA
//! branches attached; every adapted [`crate::layers`] linear computes its base product
//! `x W` here. The base weights never get a gradient, so the op records only `W` and, going
//! back, computes the input gradient `dX = dY Wᵀ` alone.
//!
//! burn-autodiff's own matmul would do the same arithmetic, but with burn's matmul both ways;
//! on burn-cuda in bf16/f16 [`FrozenMatmul`] runs both GEMMs in cuBLAS instead (the forward
//! as inference does, the backward reading `W` transposed in place, no copy), which is what
//! makes GPU training run at cuBLAS rates. On the CPU the same op runs burn's matmul, so the
//! CPU parity test against PyTorch + PEFT (tests/lora_parity.rs) checks its gradient
//! plumbing.

use std::any::TypeId;
use std::marker::PhantomData;

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::NoCheckpointing},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::Autodiff;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{backend::Backend, Tensor, TensorPrimitive};

use crate::backend::{retype, CpuBackend};

/// The two GEMMs of a frozen linear layer on an inner (non-autodiff) backend.
pub(crate) trait FrozenMatmul: Backend {
    /// `x w` for `x` `[rows, k]` and `w` `[k, n]`.
    fn frozen_product(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(x, w)
    }

    /// `g wᵀ` for `g` `[rows, n]` and `w` `[k, n]`.
    fn frozen_input_grad(g: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(g, Self::float_transpose(w))
    }
}

impl FrozenMatmul for CpuBackend {}

#[cfg(feature = "cuda")]
use burn::tensor::ops::FloatTensorOps as _;

#[cfg(feature = "cuda")]
impl FrozenMatmul for crate::backend::CudaBackend {
    fn frozen_product(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        if crate::cuda::cublas_applies(x.dtype, w.dtype) {
            return crate::cuda::cublas_matmul(x, w)
                .unwrap_or_else(|err| panic!("cuBLAS GEMM failed: {err}"));
        }
        Self::float_matmul(x, w)
    }

    fn frozen_input_grad(g: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        if crate::cuda::cublas_applies(g.dtype, w.dtype) {
            return crate::cuda::cublas_matmul_transposed(g, w)
                .unwrap_or_else(|err| panic!("cuBLAS GEMM (input gradient) failed: {err}"));
        }
        Self::float_matmul(g, Self::float_transpose(w))
    }
}

/// `x W` for a constant `W` `[d_in, d_out]` when the backend is an autodiff backend quarry
/// trains on; otherwise hands `x` back for burn's differentiable matmul.
pub(crate) fn frozen_linear<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: &Tensor<B, 2>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let backend = TypeId::of::<B>();
    if backend == TypeId::of::<Autodiff<CpuBackend>>() {
        return Ok(on_inner::<B, CpuBackend, D>(x, weight));
    }
    #[cfg(feature = "cuda")]
    if backend == TypeId::of::<Autodiff<crate::backend::CudaBackend>>() {
        return Ok(on_inner::<B, crate::backend::CudaBackend, D>(x, weight));
    }
    Err(x)
}

/// [`frozen_linear`] once `B` is known to be `Autodiff<Inner>`.
fn on_inner<B: Backend, Inner: FrozenMatmul, const D: usize>(
    x: Tensor<B, D>,
    weight: &Tensor<B, 2>,
) -> Tensor<B, D> {
    let dims = x.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product();
    let mut out_dims = dims;
    out_dims[D - 1] = weight.dims()[1];
    let x: Tensor<Autodiff<Inner>, 2> = retype(x.reshape([rows, d_in]));
    let weight: Tensor<Autodiff<Inner>, 2> = retype(weight.clone());
    let x = x.into_primitive().tensor();
    let weight = weight.into_primitive().tensor().primitive;
    let product = Inner::frozen_product(x.primitive.clone(), weight.clone());
    let out = match FrozenLinearBackward::<Inner>(PhantomData)
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(weight, product),
        OpsKind::UnTracked(prep) => prep.finish(product),
    };
    let out: Tensor<Autodiff<Inner>, 2> = Tensor::from_primitive(TensorPrimitive::Float(out));
    retype::<_, Tensor<B, 2>>(out).reshape(out_dims)
}

/// Backward of `x W` with `W` constant: `dX = dY Wᵀ`; the state is `W`.
struct FrozenLinearBackward<Inner>(PhantomData<fn() -> Inner>);

impl<Inner> std::fmt::Debug for FrozenLinearBackward<Inner> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrozenLinearBackward")
    }
}

impl<Inner: FrozenMatmul> Backward<Inner, 1> for FrozenLinearBackward<Inner> {
    type State = FloatTensor<Inner>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Inner>(&ops.node);
        if let Some(parent) = parent {
            let weight = ops.state;
            let dtype = burn::tensor::TensorMetadata::dtype(&weight);
            // The gradient of a half-precision output arrives in that precision; should it
            // not, the GEMM takes it in the weight's.
            let grad = Tensor::<Inner, 2>::from_primitive(TensorPrimitive::Float(grad))
                .cast(dtype)
                .into_primitive()
                .tensor();
            grads.register::<Inner>(parent.id, Inner::frozen_input_grad(grad, weight));
        }
    }
}
