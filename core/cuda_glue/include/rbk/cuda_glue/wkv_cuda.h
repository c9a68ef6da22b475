// LibTorch entry points of the CUDA RWKV-4 WKV kernel (raw launchers: wkv_launch.h). rbk::wkv
// (wkv.h) dispatches here for CUDA tensors; in a build without the kernels (no_cuda_kernels.cpp)
// each throws. Issue 7 (RWKV baseline). fp32 only: rbk::wkv casts bf16 inputs to fp32 first and
// sends fp64 to the LibTorch reference (fp64 stays the oracle).
#pragma once
#include <torch/torch.h>

#include <array>

namespace rbk::cuda {

// time_decay, time_first: (C,) float32 CUDA; k, v: (B, T, C) float32 CUDA (made contiguous here).
// Returns y (B, T, C) float32.
torch::Tensor wkv_forward_cuda(const torch::Tensor& time_decay, const torch::Tensor& time_first,
                               const torch::Tensor& k, const torch::Tensor& v);

// y: (B, T, C) float32, the forward's output; grad_y: (B, T, C) dL/dy (cast to float32 here).
// Returns {dL/dtime_decay (C,), dL/dtime_first (C,), dL/dk (B, T, C), dL/dv (B, T, C)}, float32.
std::array<torch::Tensor, 4> wkv_backward_cuda(const torch::Tensor& time_decay, const torch::Tensor& time_first,
                                               const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& y,
                                               const torch::Tensor& grad_y);

}  // namespace rbk::cuda
