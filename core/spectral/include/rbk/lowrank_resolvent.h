// The semiseparable structure H = T + U V^T of the papers (000/001 §3, "Phase 2"; upstream-audit
// §6.1), implemented as described: the diagonal of (T + U V^T - z)^-1 with T the BK-Core's
// tridiagonal H (diagonal -2 + v, off-diagonals 1) and learned rank-r factors U, V. Used by the
// ResNet-BK block when model.semiseparable_rank != 0 (exp_ablations, claim C14).
//
// Woodbury with A = T - z (complex symmetric, so A^-T = A^-1):
//   (A + U V^T)^-1 = A^-1 - X (I_r + V^T X)^-1 Y^T,   X = A^-1 U,  Y = A^-1 V,
// so diag = G_tri - rowsum((X C^-1) * Y), C = I_r + V^T X. X and Y come from one tridiagonal
// (Thomas) solve with 2r right-hand sides: O(N r) time and memory, never an N x N matrix.
// Upstream's own "Woodbury" (audit §5.1) replaces A^-1 by diag(G_tri) first, which is not the
// diagonal of (T + U V^T - z)^-1; with its U = V = 0 the correction is zero either way.
#pragma once
#include "rbk/language_model.h"

#include <c10/util/complex.h>
#include <torch/torch.h>

namespace rbk {

// Initial std of the learned factors: HEAD's randn * 0.01 (audit §6.1). Small, so a model starts
// close to the tridiagonal one and the correction grows only as the factors learn.
constexpr double kSemiseparableInitStd = 0.01;

// Rank of model.semiseparable_rank: 0 = off, -1 = upstream's max(1, ceil(log2 n_seq)), else as given.
int64_t semiseparable_rank_of(const LmConfig& c);

// Thomas solve of (T - z) X = R for every batch row: v (B, n) real potential, R (n, m) complex or
// real right-hand sides shared by the batch. Returns X (B, n, m) complex128 on v's device,
// differentiable in v and R (once: its backward is closed-form). Stable without pivoting for
// Im z > 0: every pivot has |Im| >= Im z (the continued fraction of the BK-Core). The recurrences
// run on the host in complex128, one autograd node per call (a few copies instead of ~30 kernel
// launches per position); tridiagonal_solve_shifted_reference is the same recurrences as torch
// ops under autograd, its fp64 oracle (test_ablations.cpp: values and gradients).
torch::Tensor tridiagonal_solve_shifted(const torch::Tensor& v, const torch::Tensor& rhs, c10::complex<double> z);
torch::Tensor tridiagonal_solve_shifted_reference(const torch::Tensor& v, const torch::Tensor& rhs, c10::complex<double> z);

// The low-rank part of the diagonal: diag(X C^-1 Y^T) (B, n) complex128, so that
// diag((T + U V^T - z)^-1) = G_tri - correction. v (B, n) float; U, V (n, r) float.
torch::Tensor semiseparable_diagonal_correction(const torch::Tensor& v, const torch::Tensor& U, const torch::Tensor& V,
                                                c10::complex<double> z);

// Peak bytes of one layer's resolvent-diagonal computation for a batch of B sequences of length
// n, counted from the tensors each path must hold (claim C14's "w/o semiseparable: OOM"):
//  dense: the N x N complex matrix (T + U V^T - z) and its inverse (LU in place, one copy more),
//         complex64 (8 bytes), plus autograd's saved inverse for the backward;
//  semiseparable: band (3 N), factors (2 N r), solves X, Y and the Thomas pivots (N (2r + 1)),
//         complex64, with the same saved copies for the backward.
struct ResolventMemory {
  double dense_bytes = 0;
  double semiseparable_bytes = 0;
};
ResolventMemory resolvent_memory_per_layer(int64_t batch, int64_t n, int64_t rank);

}  // namespace rbk
