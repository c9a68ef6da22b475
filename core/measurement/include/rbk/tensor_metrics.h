// Error metrics between a computed tensor and its reference, the ones every experiment and test
// reports: all in float64 on the CPU (whatever the inputs' dtype and device), so a metric never
// rounds in the precision it is judging. Complex tensors are compared by modulus (|a - b|).
#pragma once
#include <torch/torch.h>

#include <algorithm>

namespace rbk {

namespace detail {
inline torch::Tensor flat_f64_on_cpu(const torch::Tensor& t) {
  const auto c = t.detach().cpu();
  return c.is_complex() ? c.to(torch::kComplexDouble).flatten() : c.to(torch::kDouble).flatten();
}
}  // namespace detail

// ||got - ref||_2 / ||ref||_2; a zero reference divides by 1e-300 (so any error is enormous, not NaN).
inline double relative_l2_error(const torch::Tensor& got, const torch::Tensor& ref) {
  const auto g = detail::flat_f64_on_cpu(got), r = detail::flat_f64_on_cpu(ref);
  TORCH_CHECK(g.numel() == r.numel(), "relative_l2_error: ", g.numel(), " values against ", r.numel());
  return (g - r).norm().item<double>() / std::max(r.norm().item<double>(), 1e-300);
}

// max |got - ref|.
inline double max_abs_error(const torch::Tensor& got, const torch::Tensor& ref) {
  const auto g = detail::flat_f64_on_cpu(got), r = detail::flat_f64_on_cpu(ref);
  TORCH_CHECK(g.numel() == r.numel(), "max_abs_error: ", g.numel(), " values against ", r.numel());
  return g.numel() == 0 ? 0.0 : (g - r).abs().max().item<double>();
}

// <a, b> / (||a|| ||b||) of real tensors, flattened; NaN when either is zero (no direction).
inline double cosine_similarity(const torch::Tensor& a, const torch::Tensor& b) {
  const auto x = detail::flat_f64_on_cpu(a), y = detail::flat_f64_on_cpu(b);
  TORCH_CHECK(!x.is_complex() && !y.is_complex(), "cosine_similarity: real tensors only");
  TORCH_CHECK(x.numel() == y.numel(), "cosine_similarity: ", x.numel(), " values against ", y.numel());
  return ((x * y).sum() / (x.norm() * y.norm())).item<double>();
}

// The tolerance rule of the kernel tests and kernel experiments: a fast path's error against the
// fp64 oracle may be at most `factor` times the error of plain fp32 LibTorch on the same inputs
// (an equally stable algorithm rounds about as much), plus `floor` for inputs where the fp32
// reference happens to be unusually exact.
inline double error_bound_from_fp32_reference(double fp32_reference_error, double factor, double floor) {
  return factor * fp32_reference_error + floor;
}

}  // namespace rbk
