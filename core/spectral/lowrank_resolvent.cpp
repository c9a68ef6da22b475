// Semiseparable resolvent diagonal (see lowrank_resolvent.h; upstream-audit §6.1; claim C14).
#include "rbk/lowrank_resolvent.h"

#include <cmath>
#include <stdexcept>
#include <vector>

namespace rbk {

int64_t semiseparable_rank_of(const LmConfig& c) {
  if (c.semiseparable_rank >= 0) return c.semiseparable_rank;
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::log2(static_cast<double>(c.n_seq)))));
}

torch::Tensor tridiagonal_solve_shifted(const torch::Tensor& v, const torch::Tensor& rhs, c10::complex<double> z) {
  TORCH_CHECK(v.dim() == 2, "tridiagonal_solve_shifted: v must be (B, n), got ", v.sizes());
  TORCH_CHECK(rhs.dim() == 2 && rhs.size(0) == v.size(1), "tridiagonal_solve_shifted: rhs must be (n, m) with n = ",
              v.size(1), ", got ", rhs.sizes());
  const int64_t n = v.size(1);
  const auto cdt = torch::kComplexDouble;
  // Diagonal of T - z: -2 + v - z; off-diagonals 1.
  auto a = v.to(torch::kFloat64).to(cdt) - 2.0 - torch::scalar_tensor(c10::complex<double>(z), v.options().dtype(cdt));
  auto r = rhs.to(cdt);  // (n, m)
  // Forward sweep: pivot m_i = a_i - 1 / m_{i-1}; d_i = (r_i - d_{i-1}) / m_i.
  std::vector<torch::Tensor> inv_pivot(n), d(n);
  auto pivot = a.select(1, 0);                                    // (B,)
  inv_pivot[0] = pivot.reciprocal();
  d[0] = r[0].unsqueeze(0) * inv_pivot[0].unsqueeze(1);           // (B, m)
  for (int64_t i = 1; i < n; ++i) {
    pivot = a.select(1, i) - inv_pivot[i - 1];
    inv_pivot[i] = pivot.reciprocal();
    d[i] = (r[i].unsqueeze(0) - d[i - 1]) * inv_pivot[i].unsqueeze(1);
  }
  // Back substitution: x_i = d_i - x_{i+1} / m_i (the super-diagonal is 1).
  std::vector<torch::Tensor> x(n);
  x[n - 1] = d[n - 1];
  for (int64_t i = n - 2; i >= 0; --i) x[i] = d[i] - x[i + 1] * inv_pivot[i].unsqueeze(1);
  return torch::stack(x, 1);  // (B, n, m)
}

torch::Tensor semiseparable_diagonal_correction(const torch::Tensor& v, const torch::Tensor& U, const torch::Tensor& V,
                                                c10::complex<double> z) {
  TORCH_CHECK(U.dim() == 2 && V.sizes() == U.sizes() && U.size(0) == v.size(1),
              "semiseparable_diagonal_correction: U, V must be (n, r) with n = ", v.size(1), ", got ", U.sizes(), " and ",
              V.sizes());
  const int64_t r = U.size(1);
  const auto cdt = torch::kComplexDouble;
  auto XY = tridiagonal_solve_shifted(v, torch::cat({U, V}, 1), z);  // (B, n, 2r)
  auto X = XY.narrow(2, 0, r), Y = XY.narrow(2, r, r);
  auto Vc = V.to(cdt);
  auto C = torch::eye(r, v.options().dtype(cdt)).unsqueeze(0) + torch::matmul(Vc.t().unsqueeze(0), X);  // (B, r, r)
  auto W = torch::matmul(X, torch::inverse(C));  // (B, n, r)
  return (W * Y).sum(-1);                        // (B, n)
}

ResolventMemory resolvent_memory_per_layer(int64_t batch, int64_t n, int64_t rank) {
  constexpr double kComplex64Bytes = 8.0;
  // Forward holds the matrix and its inverse; autograd saves the inverse for the backward, which
  // forms one more N x N gradient: three N x N complex matrices per sequence at the peak.
  constexpr double kDenseMatricesAtPeak = 3.0;
  const double B = static_cast<double>(batch), N = static_cast<double>(n), r = static_cast<double>(rank);
  ResolventMemory m;
  m.dense_bytes = kDenseMatricesAtPeak * B * N * N * kComplex64Bytes;
  // band 3N + factors 2Nr (shared by the batch) + per sequence: X, Y (2Nr), pivots N, d's (2Nr),
  // and their gradients at the peak (x2).
  m.semiseparable_bytes = kComplex64Bytes * (3.0 * N + 2.0 * N * r + 2.0 * B * (4.0 * N * r + N));
  return m;
}

}  // namespace rbk
