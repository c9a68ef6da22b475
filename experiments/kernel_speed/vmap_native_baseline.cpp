// Upstream's vmap path with native complex ops (vmap_native_baseline.h). Claim C17; audit §1.3,
// §1.5, §10.1.
#include "vmap_native_baseline.h"

#include <ATen/record_function.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace rbk::kernel_speed {

using torch::Tensor;

rbk::Tridiagonal draw_benchmark_inputs(int64_t batch, int64_t n) {
  if (batch < 1 || n < 1) throw std::invalid_argument("draw_benchmark_inputs: need batch >= 1 and n >= 1");
  // The draw order of the script (he_diag, h0_super, h0_sub); the values differ from torch's
  // Python seed 42, the distribution is the same.
  Tensor diag = torch::randn({batch, n});
  Tensor upper = torch::randn({batch, n - 1});
  Tensor lower = torch::randn({batch, n - 1});
  return {diag, upper, lower};
}

std::string benchmark_inputs_description(int64_t batch, int64_t n) {
  return "upstream's 185x benchmark draw (scripts/benchmark_bk_triton.py@efaa555, upstream-audit §10.1): B = " +
         std::to_string(batch) + ", N = " + std::to_string(n) +
         "; diagonal a ~ N(0, 1) (B, N), super-diagonal b and sub-diagonal c ~ N(0, 1) (B, N-1), independent, float32 "
         "(random off-diagonals, H not symmetric, not the Laplacian); z = 0.1 + 0.1i rounded to complex64";
}

std::string to_string(VmapRecurrence r) {
  return r == VmapRecurrence::UpstreamContinuants ? "upstream_continuants" : "stable_ratios";
}

namespace {

// Upstream's sanitiser constants (audit §1.3, bk_core.py@efaa555): |G| <= 50, factor 50/(|G| + 1e-9).
constexpr double kUpstreamMaxAbsG = 50.0;
constexpr double kUpstreamAbsEps = 1e-9;
constexpr double kUpstreamDetEps = 1e-18;  // "+ 1e-18" on the determinant

// theta/phi continuants, sanitiser in complex128, cast to complex64: upstream's function op for op.
Tensor upstream_continuants(const Tensor& a_c, const Tensor& b_c, const Tensor& c_c, const Tensor& alpha) {
  const int64_t B = a_c.size(0), N = a_c.size(1);
  const auto c128 = a_c.options();
  std::vector<Tensor> theta;
  theta.reserve(static_cast<size_t>(N + 1));
  theta.push_back(torch::ones({B}, c128));  // theta_0
  theta.push_back(alpha.select(1, 0));      // theta_1
  for (int64_t i = 1; i < N; ++i)           // mul, mul, mul, sub
    theta.push_back(alpha.select(1, i) * theta[i] - c_c.select(1, i - 1) * b_c.select(1, i - 1) * theta[i - 1]);
  const Tensor theta_stack = torch::stack(theta, 1);  // (B, N + 1)
  const Tensor det = theta_stack.select(1, N);
  // Upstream first fills a list of N zero scalars (each one launch) and then overwrites all of them.
  std::vector<Tensor> phi;
  phi.reserve(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) phi.push_back(torch::zeros({}, c128));
  phi[N - 1] = torch::ones({B}, c128);
  if (N > 1) {
    phi[N - 2] = alpha.select(1, N - 1);
    for (int64_t i = N - 3; i >= 0; --i)  // mul, mul, mul, sub
      phi[i] = alpha.select(1, i + 1) * phi[i + 1] - c_c.select(1, i) * b_c.select(1, i) * phi[i + 2];
  }
  const Tensor phi_stack = torch::stack(phi, 1);  // (B, N)
  const Tensor eps = torch::full({}, c10::complex<double>(kUpstreamDetEps, 0.0), c128);
  Tensor G = theta_stack.narrow(1, 0, N) * phi_stack / (det.unsqueeze(1) + eps);
  G = torch::where(torch::isfinite(G), G, torch::zeros_like(G));
  const Tensor mag = G.abs();
  const Tensor factor = torch::where(mag > kUpstreamMaxAbsG, kUpstreamMaxAbsG / (mag + kUpstreamAbsEps), torch::ones_like(mag));
  return (G * factor).to(torch::kComplexFloat);
}

// Ratios of consecutive continuants (continued fractions), cast to complex64.
Tensor stable_ratios(const Tensor& b_c, const Tensor& c_c, const Tensor& alpha) {
  const int64_t N = alpha.size(1);
  std::vector<Tensor> dl(static_cast<size_t>(N)), dr(static_cast<size_t>(N));
  dl[0] = alpha.select(1, 0);
  for (int64_t i = 1; i < N; ++i)  // mul, div, sub
    dl[i] = alpha.select(1, i) - c_c.select(1, i - 1) * b_c.select(1, i - 1) / dl[i - 1];
  dr[N - 1] = alpha.select(1, N - 1);
  for (int64_t i = N - 2; i >= 0; --i)  // mul, div, sub
    dr[i] = alpha.select(1, i) - c_c.select(1, i) * b_c.select(1, i) / dr[i + 1];
  // G_i = 1/(a_i - z - L_i - R_i) with L_i = alpha_i - dl_i, R_i = alpha_i - dr_i.
  const Tensor G = (torch::stack(dl, 1) + torch::stack(dr, 1) - alpha).reciprocal();
  return G.to(torch::kComplexFloat);
}

}  // namespace

Tensor vmap_native_features(const rbk::Tridiagonal& h, c10::complex<double> z, VmapRecurrence recurrence) {
  // Shape and dtype checks only: a check that reads values would synchronise inside a timed call.
  TORCH_CHECK(h.diag.defined() && h.diag.dim() == 2 && h.diag.size(0) >= 1 && h.diag.size(1) >= 1,
              "vmap_native_features: diag must be (B, N) with B, N >= 1");
  const int64_t B = h.diag.size(0), N = h.diag.size(1);
  TORCH_CHECK(h.upper.sizes() == h.lower.sizes() && h.upper.dim() == 2 && h.upper.size(0) == B && h.upper.size(1) == N - 1,
              "vmap_native_features: upper and lower must be (B, N-1) = (", B, ", ", N - 1, "), got ", h.upper.sizes(),
              " and ", h.lower.sizes());
  TORCH_CHECK(h.diag.is_floating_point() && h.upper.is_floating_point() && h.lower.is_floating_point(),
              "vmap_native_features: H entries must be real floating tensors");
  TORCH_CHECK(z.imag() > 0.0, "vmap_native_features: Im z must be > 0, got ", z.imag());
  // Upstream's casts (a, b, c, z -> complex128; z arrives as a complex64 tensor) and a - z.
  const Tensor a_c = h.diag.to(torch::kComplexDouble);
  const Tensor b_c = h.upper.to(torch::kComplexDouble);
  const Tensor c_c = h.lower.to(torch::kComplexDouble);
  const Tensor z64 = torch::full({}, c10::complex<float>(static_cast<float>(z.real()), static_cast<float>(z.imag())),
                                 h.diag.options().dtype(torch::kComplexFloat));
  const Tensor alpha = a_c - z64.to(torch::kComplexDouble);  // (B, N)
  const Tensor G = recurrence == VmapRecurrence::UpstreamContinuants ? upstream_continuants(a_c, b_c, c_c, alpha)
                                                                     : stable_ratios(b_c, c_c, alpha);
  // BKCoreFunction.forward: features = stack([G.real, G.imag], -1).to(float32).
  return torch::stack({torch::real(G), torch::imag(G)}, -1).to(torch::kFloat);
}

namespace {

thread_local AtenOpCount* t_op_count = nullptr;
thread_local int t_op_depth = 0;

bool is_arithmetic_op(const char* name) {
  static const char* const kNames[] = {"aten::mul", "aten::mul_", "aten::div",  "aten::div_",       "aten::sub",
                                       "aten::sub_", "aten::add", "aten::add_", "aten::rsub",       "aten::reciprocal",
                                       "aten::reciprocal_"};
  for (const char* n : kNames)
    if (std::strcmp(name, n) == 0) return true;
  return false;
}

std::unique_ptr<at::ObserverContext> on_op_start(const at::RecordFunction& fn) {
  if (t_op_count != nullptr && t_op_depth == 0) {
    ++t_op_count->top_level;
    if (is_arithmetic_op(fn.name())) ++t_op_count->arithmetic;
  }
  ++t_op_depth;
  return nullptr;
}

void on_op_end(const at::RecordFunction&, at::ObserverContext*) { --t_op_depth; }

}  // namespace

AtenOpCount count_aten_ops(const std::function<void()>& fn) {
  AtenOpCount count;
  t_op_count = &count;
  t_op_depth = 0;
  const at::CallbackHandle handle =
      at::addThreadLocalCallback(at::RecordFunctionCallback(on_op_start, on_op_end).scopes({at::RecordScope::FUNCTION}));
  try {
    fn();
  } catch (...) {
    at::removeCallback(handle);
    t_op_count = nullptr;
    throw;
  }
  at::removeCallback(handle);
  t_op_count = nullptr;
  if (t_op_depth != 0) throw std::runtime_error("count_aten_ops: unbalanced operator callbacks");
  return count;
}

}  // namespace rbk::kernel_speed
