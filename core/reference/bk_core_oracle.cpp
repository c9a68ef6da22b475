// Dense complex128 oracles for BK-Core (see bk_core_oracle.h).
#include "reference/bk_core_oracle.h"

namespace rbk::reference {

using torch::Tensor;

namespace {

Tensor dense_shifted(const Tridiagonal& h, c10::complex<double> z) {
  const auto opts = torch::TensorOptions().dtype(torch::kComplexDouble);
  const Tensor a = h.diag.to(torch::kCPU).to(torch::kDouble);
  const int64_t B = a.size(0), N = a.size(1);
  Tensor M = torch::zeros({B, N, N}, opts);
  M.diagonal(0, 1, 2).copy_(a.to(torch::kComplexDouble) - z);
  if (N > 1) {
    M.diagonal(1, 1, 2).copy_(h.upper.to(torch::kCPU).to(torch::kComplexDouble));
    M.diagonal(-1, 1, 2).copy_(h.lower.to(torch::kCPU).to(torch::kComplexDouble));
  }
  return M;
}

Tensor dense_inverse(const Tensor& M) {
  const int64_t B = M.size(0), N = M.size(1);
  const Tensor eye = torch::eye(N, M.options()).expand({B, N, N}).contiguous();
  return torch::linalg_solve(M, eye);
}

}  // namespace

Tensor resolvent_dense(const Tridiagonal& h, c10::complex<double> z) { return dense_inverse(dense_shifted(h, z)); }

Tensor bk_core_diagonal_dense(const Tridiagonal& h, c10::complex<double> z, BkContext context) {
  const Tensor M = dense_shifted(h, z);
  if (context == BkContext::Bidirectional) return dense_inverse(M).diagonal(0, 1, 2).contiguous();
  const int64_t B = M.size(0), N = M.size(1);
  Tensor out = torch::empty({B, N}, M.options());
  for (int64_t i = 0; i < N; ++i) {
    const Tensor block = M.narrow(1, 0, i + 1).narrow(2, 0, i + 1).contiguous();
    out.select(1, i).copy_(dense_inverse(block).select(1, i).select(1, i));
  }
  return out;
}

Tensor bk_core_diagonal_vjp_dense(const Tridiagonal& h, c10::complex<double> z, const Tensor& grad_g, BkContext context) {
  const Tensor M = dense_shifted(h, z);
  const Tensor g = grad_g.to(torch::kCPU).to(torch::kComplexDouble);
  const int64_t B = M.size(0), N = M.size(1);
  if (context == BkContext::Bidirectional) {
    const Tensor G = dense_inverse(M);
    // sum_i conj(g_i) G_ij G_ji, with G_ij G_ji = (G * G^T)_{ij}
    const Tensor prod = G * G.transpose(1, 2);
    return -torch::real(torch::einsum("bi,bij->bj", {torch::conj(g), prod}));
  }
  Tensor grad = torch::zeros({B, N}, torch::TensorOptions().dtype(torch::kDouble));
  for (int64_t i = 0; i < N; ++i) {
    const Tensor Gi = dense_inverse(M.narrow(1, 0, i + 1).narrow(2, 0, i + 1).contiguous());  // (B, i+1, i+1)
    const Tensor row = Gi.select(1, i);   // G_ij, j <= i
    const Tensor col = Gi.select(2, i);   // G_ji
    const Tensor contrib = -torch::real(torch::conj(g.select(1, i)).unsqueeze(1) * row * col);
    grad.narrow(1, 0, i + 1).add_(contrib);
  }
  return grad;
}

}  // namespace rbk::reference
