// Semiseparable matrices and the parameter / memory counts of claim C10 (semiseparable.h).
#include "rbk/semiseparable.h"

#include "rbk/phase1_model.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace rbk {

namespace {
int64_t floor_log2(int64_t d) {
  int64_t lg = 0;
  while ((int64_t{2} << lg) <= d) ++lg;
  return lg;
}
}  // namespace

int64_t semiseparable_rank(int64_t n) {
  if (n < 1) throw std::invalid_argument("semiseparable_rank: n must be >= 1, got " + std::to_string(n));
  int64_t r = 0;
  while ((int64_t{1} << r) < n) ++r;  // ceil(log2 n)
  return std::max<int64_t>(1, r);
}

Semiseparable random_semiseparable(int64_t n, int64_t rank, torch::ScalarType dtype) {
  if (n < 2 || rank < 1)
    throw std::invalid_argument("random_semiseparable: need n >= 2 and rank >= 1, got " + std::to_string(n) + ", " +
                                std::to_string(rank));
  const auto o = torch::TensorOptions().dtype(dtype);
  Semiseparable h;
  h.diag = torch::randn({n}, o);
  h.sub = torch::randn({n - 1}, o);
  h.super = torch::randn({n - 1}, o);
  // 1 / sqrt(r) per factor keeps each entry of U V^T of order 1 / sqrt(r) * sqrt(r) ... = O(1).
  const double s = 1.0 / std::sqrt(std::sqrt(static_cast<double>(rank)));
  h.U = torch::randn({n, rank}, o) * s;
  h.V = torch::randn({n, rank}, o) * s;
  return h;
}

torch::Tensor semiseparable_matvec(const Semiseparable& h, const torch::Tensor& x) {
  const int64_t n = h.size();
  TORCH_CHECK(x.dim() == 2 && x.size(1) == n, "semiseparable_matvec: x must be (B, ", n, "), got ", x.sizes());
  auto y = x * h.diag;
  // (T x)_i = d_i x_i + super_i x_{i+1} + sub_{i-1} x_{i-1}
  y.narrow(1, 0, n - 1).add_(x.narrow(1, 1, n - 1) * h.super);
  y.narrow(1, 1, n - 1).add_(x.narrow(1, 0, n - 1) * h.sub);
  return y.add_(torch::matmul(torch::matmul(x, h.V), h.U.t()));
}

torch::Tensor semiseparable_dense(const Semiseparable& h) {
  auto m = torch::diag(h.diag) + torch::diag(h.super, 1) + torch::diag(h.sub, -1);
  return m + torch::matmul(h.U, h.V.t());
}

int64_t semiseparable_stored_elements(int64_t n, int64_t rank) { return 3 * n - 2 + 2 * n * rank; }

double param_ratio_upstream_formula(int64_t d) {
  return 4.0 * static_cast<double>(d) * static_cast<double>(d) /
         (3.0 * static_cast<double>(d) + 2.0 * static_cast<double>(d) * static_cast<double>(floor_log2(d)));
}

double param_ratio_like_for_like(int64_t d) {
  const double D = static_cast<double>(d);
  const double transformer_layer = (4.0 * D * D + 4.0 * D) + (8.0 * D * D + 5.0 * D) + 4.0 * D;
  Phase2CompatConfig c;
  c.vocab_size = 2;
  c.d_model = d;
  c.n_layers = 1;
  const auto b = phase2_compat_parameter_breakdown(c);
  return transformer_layer / static_cast<double>(b.layers + b.other);
}

double attention_layer_elements(int64_t n, int64_t d, int64_t batch) {
  const double N = static_cast<double>(n), D = static_cast<double>(d), B = static_cast<double>(batch);
  return B * (3.0 * N * D + 2.0 * N * N + N * D);
}

double semiseparable_layer_elements(int64_t n, int64_t d, int64_t batch) {
  const double N = static_cast<double>(n), D = static_cast<double>(d), B = static_cast<double>(batch);
  const double r = static_cast<double>(semiseparable_rank(n));
  return static_cast<double>(semiseparable_stored_elements(n, semiseparable_rank(n))) + B * (r * D + 2.0 * N * D);
}

double upstream_estimated_memory_savings(int64_t n, int64_t batch, bool checkpointing) {
  const double N = static_cast<double>(n), B = static_cast<double>(batch), f = 4.0, c = 8.0;
  const double r = static_cast<double>(semiseparable_rank(n));
  const double tri = 3.0 * N * f, low = 2.0 * N * r * f;
  const double act = checkpointing ? 3.0 * N * f : B * N * c;
  const double total = tri + low + act + 2.0 * (tri + low);
  const double dense = N * N * f + B * N * N * c + 2.0 * N * N * f;
  return 1.0 - total / dense;
}

}  // namespace rbk
