// Mamba-1 selective scan (issue 7, Mamba baseline; used by mamba_lm.h): the plain LibTorch
// reference (the fp64-capable oracle of every gradient) and the entry point models call, which
// dispatches to the CUDA kernel (core/kernels/selective_scan.cu) for CUDA inputs.
//
// Maths, per batch b, channel d, state n (Gu & Dao 2023, Alg. 2 / eq. 2a-2b, ZOH for A, Euler for B):
//   dt_t   = delta_t + delta_bias,  then softplus(dt_t) when delta_softplus
//   h_t[n] = exp(dt_t A[n]) h_{t-1}[n] + dt_t B_t[n] u_t,   h_{-1} = 0
//   y_t    = sum_n C_t[n] h_t[n] + D u_t,   out_t = y_t * silu(z_t) when z is given
// Shapes (as in state-spaces/mamba's selective_scan_fn, one B/C group, real A):
//   u, delta, z : (Bt, Dm, L)     A : (Dm, N)     B, C : (Bt, N, L)     D, delta_bias : (Dm,)
//   returns out : (Bt, Dm, L)
// D, z and delta_bias may be undefined tensors (torch::Tensor()): no skip / no gate / no bias.
//
// Dtypes: the reference computes in float64 when u is float64, otherwise in float32 (bf16/half
// inputs, as autocast produces them, are cast to float32 explicitly: the recurrence is never run in
// 16-bit). The output has u's dtype. Parameters (A, D, delta_bias) are kept in fp32 by the model.
#pragma once
#include <torch/torch.h>

namespace rbk {

enum class SelectiveScanImpl {
  Auto,       // CUDA kernel for CUDA fp32/bf16/half inputs with N <= kSelectiveScanKernelMaxState, else reference
  Reference,  // the sequential LibTorch reference (autograd through it)
  Kernel      // the CUDA kernel; throws where it cannot run (CPU tensors, no CUDA build, N too large)
};

// Largest state size the CUDA kernel holds in registers; larger N runs the reference.
constexpr int64_t kSelectiveScanKernelMaxState = 16;
// Steps between the states the CUDA forward stores for the backward (bytes models need it on any
// build). Both constants equal the kernels' own (rbk/kernels/selective_scan_launch.h), which the
// CUDA glue checks at compile time.
constexpr int64_t kSelectiveScanKernelChunk = 64;

// Sequential over L in plain LibTorch ops, differentiable by autograd in every input.
torch::Tensor selective_scan_reference(const torch::Tensor& u,           // (Bt, Dm, L)
                                       const torch::Tensor& delta,       // (Bt, Dm, L)
                                       const torch::Tensor& A,           // (Dm, N)
                                       const torch::Tensor& B,           // (Bt, N, L)
                                       const torch::Tensor& C,           // (Bt, N, L)
                                       const torch::Tensor& D,           // (Dm,) or undefined
                                       const torch::Tensor& z,           // (Bt, Dm, L) or undefined
                                       const torch::Tensor& delta_bias,  // (Dm,) or undefined
                                       bool delta_softplus);

// The entry point of models, tests and benchmarks. Kernel path: a torch::autograd::Function whose
// backward is the CUDA backward kernel (exact gradients of u, delta, A, B, C, D, z, delta_bias,
// each returned in its input's dtype; the kernel computes in fp32).
torch::Tensor selective_scan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                             const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D,
                             const torch::Tensor& z, const torch::Tensor& delta_bias, bool delta_softplus,
                             SelectiveScanImpl impl = SelectiveScanImpl::Auto);

// Whether Auto would take the CUDA kernel for these inputs (build has the kernels, u is a CUDA
// tensor of float32/bfloat16/half, N <= kSelectiveScanKernelMaxState).
bool selective_scan_kernel_eligible(const torch::Tensor& u, const torch::Tensor& A);

}  // namespace rbk
