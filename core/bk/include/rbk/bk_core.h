// BK-Core: the diagonal of the resolvent G = (H - zI)^{-1} of a tridiagonal H, in O(N), batched.
// Claim C01 (seeds 000/001 §3.1, §4.3; 002 abstract); upstream-audit §1.
//
// H has main diagonal a (B, N), super-diagonal b (B, N-1) and sub-diagonal c (B, N-1). The model
// uses H = H0 + diag(v) with H0 the un-negated 1-D Laplacian (diagonal -2, off-diagonals +1) and
// z = i. Features are (Re G_ii, Im G_ii).
//
// Two faces of one implementation:
//  * corrected: the continued-fraction (Schur complement) form
//        G_ii = 1 / (a_i - z - L_i - R_i),  L_i = k_{i-1}/(a_{i-1} - z - L_{i-1}),
//                                           R_i = k_i /(a_{i+1} - z - R_{i+1}),  k_i = b_i c_i,
//    whose every quantity stays O(1) for Im z > 0 (no overflow at any N), and its causal variant
//    G^causal_ii = 1 / (a_i - z - L_i), the last diagonal entry of the resolvent of the leading
//    (i+1)x(i+1) block, which depends on a_0..a_i only;
//  * compat: the upstream theta/phi continuant recursion exactly as the authors' code runs it
//    (PoC, paper-time with its sanitiser, paper-time Triton in fp32), overflow and all.
#pragma once
#include "rbk/bk_types.h"

#include <torch/torch.h>
#include <c10/util/complex.h>
#include <string>

namespace rbk {

// H0 + diag(v) with H0 the 1-D Laplacian as upstream: a = -2 + v, b = c = 1.
Tridiagonal laplacian_with_potential(const torch::Tensor& v);  // v: (B, N) float32 | float64

// Throws c10::Error (TORCH_CHECK) with a message naming the tensor for: shapes that do not
// match, non-floating dtypes, NaN/Inf entries, Im z <= 0, compat mode with causal context.
void check_bk_inputs(const Tridiagonal& h, c10::complex<double> z, BkForwardMode mode, BkContext context);

// G_ii, (B, N) complex. Stable: complex64 for float32 input, complex128 for float64.
// Compat modes: complex64 always, as upstream returns.
torch::Tensor bk_core_diagonal(const Tridiagonal& h, c10::complex<double> z,
                                 BkForwardMode mode = BkForwardMode::Stable,
                                 BkContext context = BkContext::Bidirectional,
                                 CompatExecution execution = CompatExecution::ScalarLoop);

// Exact vector-Jacobian product of G_ii (Stable, either context) with respect to the diagonal a:
// grad_g = dL/dRe G + i dL/dIm G, (B, N) complex. Returns dL/da (B, N) in h.diag's dtype.
// Uses G_ij G_ji = G_jj^2 prod_{m=i}^{j-1} k_m / dl_m^2 (i < j), the mirror product with the right
// pivots for i > j, accumulated by one forward and one backward sweep: O(N), overflow-free.
torch::Tensor bk_core_diagonal_vjp_exact(const Tridiagonal& h, c10::complex<double> z,
                                           const torch::Tensor& grad_g, BkContext context);

// The stable forward (same continued fractions, same context rule) as plain differentiable
// LibTorch ops on complex tensors, one batched op per recursion step, so that LibTorch's autograd
// can differentiate it (BkGradientMode::Autograd; claim C02 compares it with the custom exact
// backward). v: (B, N) float32 | float64 -> G_ii (B, N) complex64 | complex128, part of the
// autograd graph of v. O(N) ops of size B: per-op dispatch dominates, so it is a baseline for
// timings and gradient checks, not a path for models. Any device. Division is LibTorch's own;
// every divisor has |.| >= Im z for symmetric H, so nothing overflows.
torch::Tensor bk_core_diagonal_stable_differentiable(const torch::Tensor& v, c10::complex<double> z,
                                                       BkContext context = BkContext::Bidirectional);

// Upstream's hybrid "analytic" gradients, from the saved G (B, N) complex64 and the incoming
// grad_features (B, N, 2). Returns grad_v (B, N) float32, as upstream.
torch::Tensor hybrid_gradient(const torch::Tensor& G, const torch::Tensor& grad_features, BkGradientMode mode);

// Whether the model's H = Laplacian + diag(v) goes to the v-only CUDA kernels
// (rbk/cuda_glue/bk_core_cuda.h: bk_core_features_cuda, bk_core_features_vjp_cuda), which read v alone (float32
// or bfloat16, no off-diagonal tensors, no complex intermediate): the stable forward of a (B, N)
// CUDA v of either dtype in a build with the kernels. bk_core_features asks this; every other
// stable call goes through bk_core_diagonal, which chooses CPU / CUDA / fp64 itself.
bool bk_core_v_only_kernel_applies(const torch::Tensor& v, BkForwardMode forward);

// Features (Re G, Im G) as (B, N, 2) real.
torch::Tensor bk_core_features_of_diagonal(const torch::Tensor& G);

}  // namespace rbk
