// Semiseparable resolvent diagonal (see lowrank_resolvent.h; upstream-audit §6.1; claim C14).
#include "rbk/lowrank_resolvent.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <stdexcept>
#include <vector>

namespace rbk {

int64_t semiseparable_rank_of(const LmConfig& c) {
  if (c.semiseparable_rank >= 0) return c.semiseparable_rank;
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::log2(static_cast<double>(c.n_seq)))));
}

torch::Tensor tridiagonal_solve_shifted_reference(const torch::Tensor& v, const torch::Tensor& rhs, c10::complex<double> z) {
  TORCH_CHECK(v.dim() == 2, "tridiagonal_solve_shifted_reference: v must be (B, n), got ", v.sizes());
  TORCH_CHECK(rhs.dim() == 2 && rhs.size(0) == v.size(1), "tridiagonal_solve_shifted_reference: rhs must be (n, m) with n = ",
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

namespace {

using Complex = c10::complex<double>;

// One Thomas solve of (T(v) - shift) X = R, T with diagonal -2 + v and off-diagonals 1: R and X are
// (n, m) row-major, inv_pivot (n) scratch. The recurrences of the reference, element by element:
// pivot_i = a_i - 1 / pivot_{i-1}, d_i = (r_i - d_{i-1}) / pivot_i, x_i = d_i - x_{i+1} / pivot_i.
void thomas_solve(const double* v, int64_t n, int64_t m, Complex shift, const Complex* R, Complex* X, Complex* inv_pivot) {
  for (int64_t i = 0; i < n; ++i) {
    Complex pivot = Complex(v[i] - 2.0, 0.0) - shift;
    if (i > 0) pivot -= inv_pivot[i - 1];
    inv_pivot[i] = Complex(1.0, 0.0) / pivot;
    for (int64_t j = 0; j < m; ++j)
      X[i * m + j] = (i > 0 ? R[i * m + j] - X[(i - 1) * m + j] : R[i * m + j]) * inv_pivot[i];
  }
  for (int64_t i = n - 2; i >= 0; --i)
    for (int64_t j = 0; j < m; ++j) X[i * m + j] -= X[(i + 1) * m + j] * inv_pivot[i];
}

// Solves every batch row on the host: v (B, n) fp64, R (n, m) shared (rhs_per_batch false) or
// (B, n, m), both contiguous complex128 / fp64 CPU tensors. Returns X (B, n, m) complex128.
torch::Tensor thomas_solve_batch(const torch::Tensor& v, const torch::Tensor& R, Complex shift, bool rhs_per_batch) {
  const int64_t B = v.size(0), n = v.size(1), m = R.size(-1);
  auto X = torch::empty({B, n, m}, R.options());
  const double* vp = v.data_ptr<double>();
  const Complex* rp = R.data_ptr<Complex>();
  Complex* xp = X.data_ptr<Complex>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<Complex> inv_pivot(static_cast<size_t>(n));
    for (int64_t b = b0; b < b1; ++b)
      thomas_solve(vp + b * n, n, m, shift, rp + (rhs_per_batch ? b * n * m : 0), xp + b * n * m, inv_pivot.data());
  });
  return X;
}

// The solve as one autograd node whose recurrences run on the host. The reference's torch ops cost
// ~30 kernel launches per position with their backward (a model with rank-8 factors at N = 256:
// ~31k launches a training step, about 0.6 s on an H100, session 34); here one solve is a copy of v
// and R to the host and of X back. Backward, with A = T(v) - z complex symmetric and G the incoming
// gradient: gR = (A^H)^-1 G = (T(v) - conj z)^-1 G, grad_A = -gR X^H, so grad_v = -Re rowsum(gR conj X)
// (v enters A's diagonal as a real number) and grad_R = sum over the batch of gR (Re for a real R).
// The host copies synchronise with the device, so a CUDA-graph capture of a model using this fails
// loudly rather than capturing a stale solve.
class TridiagonalSolveShifted : public torch::autograd::Function<TridiagonalSolveShifted> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& v, const torch::Tensor& rhs,
                               Complex z) {
    const auto v_host = v.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    const auto r_host = rhs.detach().to(torch::kCPU).to(torch::kComplexDouble).contiguous();
    const auto x_host = thomas_solve_batch(v_host, r_host, z, false);
    ctx->saved_data["v_host"] = v_host;
    ctx->saved_data["x_host"] = x_host;
    ctx->saved_data["z_real"] = z.real();
    ctx->saved_data["z_imag"] = z.imag();
    ctx->saved_data["v_like"] = torch::empty({0}, v.options());
    ctx->saved_data["rhs_like"] = torch::empty({0}, rhs.options());
    return x_host.to(v.device());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    // The host loops leave no graph: a second derivative would silently be zero.
    TORCH_CHECK(!torch::GradMode::is_enabled(),
                "tridiagonal_solve_shifted: not twice differentiable (its backward runs on the host); "
                "use tridiagonal_solve_shifted_reference for higher derivatives");
    const auto& g = grad_outputs[0];
    if (!g.defined()) return {torch::Tensor(), torch::Tensor(), torch::Tensor()};
    const auto v_host = ctx->saved_data["v_host"].toTensor();
    const auto x_host = ctx->saved_data["x_host"].toTensor();
    const auto v_like = ctx->saved_data["v_like"].toTensor();
    const auto rhs_like = ctx->saved_data["rhs_like"].toTensor();
    const Complex z_conj(ctx->saved_data["z_real"].toDouble(), -ctx->saved_data["z_imag"].toDouble());
    const auto g_host = g.to(torch::kCPU).to(torch::kComplexDouble).contiguous();
    const auto gR = thomas_solve_batch(v_host, g_host, z_conj, true);   // (B, n, m)
    const auto grad_v = -torch::real((gR * x_host.conj()).sum(-1));     // (B, n)
    auto grad_rhs = gR.sum(0);                                          // (n, m)
    if (!rhs_like.is_complex()) grad_rhs = torch::real(grad_rhs);
    return {grad_v.to(v_like.options()), grad_rhs.to(rhs_like.options()), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor tridiagonal_solve_shifted(const torch::Tensor& v, const torch::Tensor& rhs, c10::complex<double> z) {
  TORCH_CHECK(v.dim() == 2 && !v.is_complex(), "tridiagonal_solve_shifted: v must be real (B, n), got ", v.sizes(),
              " ", v.scalar_type());
  TORCH_CHECK(rhs.dim() == 2 && rhs.size(0) == v.size(1), "tridiagonal_solve_shifted: rhs must be (n, m) with n = ",
              v.size(1), ", got ", rhs.sizes());
  return TridiagonalSolveShifted::apply(v, rhs, z);
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
