// LibTorch entry points of the Mamba-1 selective-scan CUDA kernels (raw launchers:
// selective_scan_launch.h; maths and shapes: rbk/selective_scan.h). Built into rbk_core only where
// Torch has CUDA (RBK_WITH_CUDA_KERNELS); rbk::selective_scan dispatches here. Issue 7 (baselines).
//
// The kernels compute in float32 only: inputs of any floating dtype (bf16 from autocast, fp32) are
// cast to contiguous float32 here; results are float32 (the autograd Function casts the gradients
// back to each input's dtype). N must be <= kSsMaxState (16).
#pragma once
#include "rbk/kernels/selective_scan_launch.h"

#include <torch/torch.h>

#include <vector>

namespace rbk::cuda {

// u, delta, z: (Bt, Dm, L); A: (Dm, N); B, C: (Bt, N, L); D, delta_bias: (Dm,) or undefined; z may be
// undefined. Returns {out (Bt, Dm, L) float32, chunk_states (Bt, Dm, ceil(L / kSsChunk), N) float32}.
std::vector<torch::Tensor> selective_scan_fwd_cuda(const torch::Tensor& u, const torch::Tensor& delta,
                                                   const torch::Tensor& A, const torch::Tensor& B,
                                                   const torch::Tensor& C, const torch::Tensor& D,
                                                   const torch::Tensor& z, const torch::Tensor& delta_bias,
                                                   bool delta_softplus);

// Same inputs, the forward's chunk_states and dout (Bt, Dm, L). Returns float32
// {du, ddelta, dA (Dm, N), dB (Bt, N, L), dC (Bt, N, L), dD (Dm,) or undefined, dz or undefined,
//  ddelta_bias (Dm,) or undefined}.
std::vector<torch::Tensor> selective_scan_bwd_cuda(const torch::Tensor& u, const torch::Tensor& delta,
                                                   const torch::Tensor& A, const torch::Tensor& B,
                                                   const torch::Tensor& C, const torch::Tensor& D,
                                                   const torch::Tensor& z, const torch::Tensor& delta_bias,
                                                   bool delta_softplus, const torch::Tensor& chunk_states,
                                                   const torch::Tensor& dout);

// Every tensor of one launch: float32, contiguous, on one CUDA device; undefined = absent (D, z,
// delta_bias and their gradients) or not needed (the backward's buffers in a forward-only launch).
// The glue, the gpu test and exp_scan_kernel_speed all fill the raw launchers' parameters from
// this one struct, so a new field of SelectiveScanParams is wired in one place.
struct SelectiveScanTensors {
  torch::Tensor u, delta, A, B, C, D, z, delta_bias;                         // inputs
  torch::Tensor out, chunk_states;                                           // forward outputs
  torch::Tensor dout, du, ddelta, dz, dA_part, dD_part, ddelta_bias_part;    // backward
  torch::Tensor dB, dC, workspace;
};
// Shapes from u (Bt, Dm, L) and A (Dm, N); pointers from every defined tensor. No checks here:
// the entry points above check their inputs before calling it.
SelectiveScanParams selective_scan_params(const SelectiveScanTensors& t, bool delta_softplus,
                                          SsVariant variant = SsVariant::Auto);

// A raw-launcher rig (gpu tests, exp_scan_kernel_speed): `inputs` = {u, delta, A, B, C, D, z,
// delta_bias} (D, z, delta_bias may be undefined), cast to contiguous float32 on `device`; dout as
// given (likewise); every output and the workspace allocated there and filled with `fill` (NaN in
// the tests and benchmarks: an element the kernels miss shows up as non-finite). The gradients of
// absent inputs stay undefined.
SelectiveScanTensors selective_scan_rig_tensors(const std::vector<torch::Tensor>& inputs, const torch::Tensor& dout,
                                                torch::Device device, float fill);

}  // namespace rbk::cuda
