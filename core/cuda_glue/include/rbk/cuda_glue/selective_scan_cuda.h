// LibTorch entry points of the Mamba-1 selective-scan CUDA kernels (raw launchers:
// selective_scan_launch.h; maths and shapes: rbk/selective_scan.h; launch rigs for tests and
// benchmarks: rbk/cuda_glue/selective_scan_rig.h). rbk::selective_scan dispatches here; in a build
// without the kernels (no_cuda_kernels.cpp) each throws. Issue 7 (baselines).
//
// The kernels compute in float32 only: inputs of any floating dtype (bf16 from autocast, fp32) are
// cast to contiguous float32 here; results are float32 (the autograd Function casts the gradients
// back to each input's dtype). N must be <= kSsMaxState (16, rbk/kernels/selective_scan_launch.h).
#pragma once
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

}  // namespace rbk::cuda
