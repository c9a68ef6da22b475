// The raw selective-scan launchers' parameters from LibTorch tensors: used by the glue
// (selective_scan_cuda.cpp), the GPU tests and exp_scan_kernel_speed. Needs the CUDA runtime
// headers (selective_scan_launch.h), so only code built with the kernels includes it. Issue 7.
#pragma once
#include "rbk/kernels/selective_scan_launch.h"

#include <torch/torch.h>

#include <vector>

namespace rbk::cuda {

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
