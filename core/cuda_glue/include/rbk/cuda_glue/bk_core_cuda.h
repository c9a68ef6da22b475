// LibTorch entry points of the CUDA BK-Core kernels (raw launchers: rbk/kernels/bk_scan_launch.h):
// tensor checks that name what was expected, allocation through the caching allocator, launch on
// the current stream. They decide nothing: rbk/bk_core.h's functions choose between the CPU, these
// kernels and the CPU fp64 path (bk_core.cpp, `stable_path`). In a build without the kernels
// (core/cuda_glue/no_cuda_kernels.cpp) each throws. Claims C01, C17.
#pragma once
#include "rbk/bk_types.h"

#include <torch/torch.h>

namespace rbk::cuda {

// Stable G_ii for a general tridiagonal float32 H on the GPU: (B, N) complex64 (fp32 compute).
torch::Tensor bk_core_diagonal_stable_cuda(const Tridiagonal& h, c10::complex<double> z, BkContext context);

// Exact dL/da for float32 CUDA H; grad_g (B, N) complex. Returns (B, N) float32.
torch::Tensor bk_core_diagonal_vjp_exact_cuda(const Tridiagonal& h, c10::complex<double> z,
                                                const torch::Tensor& grad_g, BkContext context);

// Fast path for the model's H = H0 + diag(v) (H0 the 1-D Laplacian): reads only v.
//   v: (B, N) float32 | bfloat16, CUDA.  Returns features (B, N, 2) float32 = (Re G, Im G).
torch::Tensor bk_core_features_cuda(const torch::Tensor& v, c10::complex<double> z, BkContext context);
//   grad_features: (B, N, 2) float32 dL/d features.  Returns dL/dv (B, N) float32.
torch::Tensor bk_core_features_vjp_cuda(const torch::Tensor& v, c10::complex<double> z, const torch::Tensor& grad_features,
                                   BkContext context);

}  // namespace rbk::cuda
