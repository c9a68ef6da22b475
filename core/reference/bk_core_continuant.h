// An independent reference for diag((H - zI)^{-1}) at any N (claim C01 above the dense oracle's
// reach), for tests and the numerics experiment only.
//
// It differs from the stable path it checks in both formulation and precision:
//  * formulation: the determinant (continuant) ratio G_ii = theta_{i-1} phi_{i+1} / det(H - zI),
//    with theta_k the leading and phi_k the trailing principal minors of H - zI, each from its own
//    three-term recursion, and one global determinant for every i; the stable path instead divides
//    by local Schur complements (continued fractions, no determinant anywhere);
//  * precision: IEEE binary128 (113-bit significand, GCC's __float128 in software; where the
//    compiler has none, long double, which is binary128 on aarch64 and 80-bit x87 elsewhere), with
//    a separate power-of-two exponent kept per minor so that minors of any size neither overflow
//    nor underflow. The stable path runs in fp64 or fp32.
// It also returns an estimate of its own error: det(H - zI) is computed twice, as theta_{N-1} by
// the forward recursion and as phi_0 by the backward one, and the two disagree by about the
// accumulated rounding of the minors.
// Cost: O(N) per row in software floating point, about 1 s per row at N = 2^20 on one core.
#pragma once
#include "rbk/bk_core.h"

namespace rbk::reference {

struct ContinuantDiagonal {
  torch::Tensor diag;          // (B, N) complex128: G_ii rounded once from the extended precision
  torch::Tensor det_mismatch;  // (B) float64: |phi_0 / theta_{N-1} - 1|, the reference's self-check
};

// h: diag (B, N), upper/lower (B, N-1), float32 or float64 (taken exactly). Im z > 0 (checked).
// Requires b_i c_i real (any sign); for symmetric H no minor of H - zI vanishes.
ContinuantDiagonal bk_core_diagonal_continuant(const Tridiagonal& h, c10::complex<double> z);

// Significand bits of the arithmetic the reference runs in (113 for binary128).
int continuant_precision_bits();

}  // namespace rbk::reference
