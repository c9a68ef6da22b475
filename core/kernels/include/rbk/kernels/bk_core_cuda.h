// LibTorch entry points of the CUDA BK-Core kernels (raw launchers: bk_scan_launch.h). Built into
// rbk_core only where Torch has CUDA (RBK_WITH_CUDA_KERNELS); rbk::resolvent_diagonal and
// rbk::resolvent_diagonal_vjp_exact dispatch here for CUDA tensors. Claims C01, C17.
#pragma once
#include "rbk/bk_core.h"

#include <torch/torch.h>

namespace rbk::cuda {

// Stable G_ii for a general tridiagonal H on the GPU: (B, N) complex64 for float32 H (fp32
// compute). float64 H is sent to the CPU fp64 path and the complex128 result brought back (the
// kernels compute in fp32 only; fp64 stays the oracle).
torch::Tensor resolvent_diagonal_stable_cuda(const Tridiagonal& h, c10::complex<double> z, BkContext context);

// Exact dL/da for CUDA H; grad_g (B, N) complex. Returns h.diag's dtype (float64 via the CPU path).
torch::Tensor resolvent_diagonal_vjp_exact_cuda(const Tridiagonal& h, c10::complex<double> z,
                                                const torch::Tensor& grad_g, BkContext context);

// Fast path for the model's H = H0 + diag(v) (H0 the 1-D Laplacian): reads only v.
//   v: (B, N) float32 | bfloat16, CUDA.  Returns features (B, N, 2) float32 = (Re G, Im G).
torch::Tensor bk_features_cuda(const torch::Tensor& v, c10::complex<double> z, BkContext context);
//   grad_features: (B, N, 2) float32 dL/d features.  Returns dL/dv (B, N) float32.
torch::Tensor bk_features_vjp_cuda(const torch::Tensor& v, c10::complex<double> z, const torch::Tensor& grad_features,
                                   BkContext context);

// The Triton-like compat kernel (upstream-audit §1.10): (B, N) complex64 G after upstream's
// sanitiser. h float32 on CUDA, any off-diagonals (the 185x benchmark draws random ones).
torch::Tensor compat_triton_like_cuda(const Tridiagonal& h, c10::complex<double> z);

}  // namespace rbk::cuda
