// fp64 / complex128 oracles for BK-Core, for tests and the numerics experiment only: dense
// inverses, O(N^3) per row (O(N^4) for the causal variant), so N is kept small (<= 4096 / <= 256).
#pragma once
#include "rbk/bk_core.h"

namespace rbk::reference {

// Full resolvent (H - zI)^{-1}, (B, N, N) complex128, by a dense LU solve.
torch::Tensor resolvent_dense(const Tridiagonal& h, c10::complex<double> z);

// diag((H - zI)^{-1}) (bidirectional) or, for Causal, G^c_ii = [(H_{0..i} - zI)^{-1}]_{ii} from
// the leading (i+1)x(i+1) block. (B, N) complex128.
torch::Tensor bk_core_diagonal_dense(const Tridiagonal& h, c10::complex<double> z, BkContext context);

// dL/da_j = -sum_i Re(conj(g_i) G_ij G_ji) from dense inverses (per leading block for Causal).
torch::Tensor bk_core_diagonal_vjp_dense(const Tridiagonal& h, c10::complex<double> z, const torch::Tensor& grad_g,
                                           BkContext context);

}  // namespace rbk::reference
