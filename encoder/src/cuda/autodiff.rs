//! Training on burn-cuda: the frozen base projections of a LoRA-adapted model as one
//! autodiff op whose forward and input gradient are cuBLAS GEMMs.
//!
//! burn-autodiff differentiates `x W` with burn's own matmul both ways (about a third of
//! cuBLAS's rate on the H100, and autotuned per new shape). The base weights never get a
//! gradient, so the op records only `W` and, going back, computes `dX = dY Wᵀ` with
//! cuBLAS reading `W` transposed in place (no copy, no weight gradient).

use burn::backend::autodiff::{
    checkpoint::{base::Checkpointer, strategy::NoCheckpointing},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::Autodiff;
use burn::tensor::{backend::Backend, DType, Tensor, TensorPrimitive};

use super::{cublas_matmul, cublas_matmul_transposed, gemm_engine, retype, Cube, GemmEngine};
use crate::encode::CudaBackend;

/// The autodiff backend `quarry train --device cuda` runs on.
pub(crate) type CudaAutodiff = Autodiff<CudaBackend>;

/// `x W` for a constant `W` `[d_in, d_out]` on [`CudaAutodiff`] in bf16/f16 with cuBLAS
/// chosen; otherwise hands `x` back for burn's differentiable matmul.
pub(crate) fn frozen_linear<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: &Tensor<B, 2>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if std::any::TypeId::of::<B>() != std::any::TypeId::of::<CudaAutodiff>()
        || gemm_engine() != GemmEngine::Cublas
        || !matches!(x.dtype(), DType::BF16 | DType::F16)
        || x.dtype() != weight.dtype()
    {
        return Err(x);
    }
    let x: Tensor<CudaAutodiff, D> = retype(x);
    let weight: Tensor<CudaAutodiff, 2> = retype(weight.clone());
    let x = x.into_primitive().tensor();
    let weight: Cube = weight.into_primitive().tensor().primitive;
    let product = cublas_matmul(x.primitive.clone(), weight.clone())
        .unwrap_or_else(|err| panic!("cuBLAS GEMM failed: {err}"));
    let out = match FrozenLinearBackward::<D>
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(weight, product),
        OpsKind::UnTracked(prep) => prep.finish(product),
    };
    let out: Tensor<CudaAutodiff, D> = Tensor::from_primitive(TensorPrimitive::Float(out));
    Ok(retype(out))
}

/// Backward of `x W` with `W` constant: `dX = dY Wᵀ`.
#[derive(Debug)]
struct FrozenLinearBackward<const D: usize>;

impl<const D: usize> Backward<CudaBackend, 1> for FrozenLinearBackward<D> {
    /// The weight `[d_in, d_out]`.
    type State = Cube;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad: Cube = grads.consume::<CudaBackend>(&ops.node);
        if let Some(parent) = parent {
            let weight = ops.state;
            // The gradient of a bf16 output arrives in bf16; match the weight if it does not.
            let grad = if grad.dtype == weight.dtype {
                grad
            } else {
                let grad: Tensor<CudaBackend, D> =
                    Tensor::from_primitive(TensorPrimitive::Float(grad)).cast(weight.dtype);
                grad.into_primitive().tensor()
            };
            let input_grad = cublas_matmul_transposed(grad, weight)
                .unwrap_or_else(|err| panic!("cuBLAS GEMM (input gradient) failed: {err}"));
            grads.register::<CudaBackend>(parent.id, input_grad);
        }
    }
}
