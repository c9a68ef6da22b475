// Correctness of a timed output against the fp64 oracle, for exp_kernel_speed (claim C17): every
// path is checked before any of its times is reported.
#pragma once
#include "rbk/bk_core.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>

namespace rbk::kernel_speed {

struct Accuracy {
  double rel_err = NAN;          // ||x - ref|| / ||ref|| over (Re, Im) or the gradient
  double zero_fraction = NAN;    // fraction of positions whose output is exactly 0
  double finite_fraction = NAN;  // fraction of finite elements
};

// feats: (B, N, 2) or (B, N) real, any device; ref likewise (float64, CPU).
inline Accuracy accuracy(const torch::Tensor& feats, const torch::Tensor& ref) {
  Accuracy a;
  const torch::Tensor f = feats.to(torch::kCPU, torch::kDouble);
  const torch::Tensor r = ref.to(torch::kDouble);
  const torch::Tensor mag = f.dim() == 3 ? f.abs().sum(-1) : f.abs();
  a.zero_fraction = (mag == 0).to(torch::kDouble).mean().item<double>();
  a.finite_fraction = torch::isfinite(f).to(torch::kDouble).mean().item<double>();
  a.rel_err = ((f - r).norm() / r.norm()).item<double>();
  return a;
}

inline nlohmann::json accuracy_json(const Accuracy& a) {
  return {{"rel_err_vs_fp64", a.rel_err}, {"zero_fraction", a.zero_fraction}, {"finite_fraction", a.finite_fraction}};
}

// The fp64 oracle of every row: rbk's continued fractions in float64 on the CPU (O(N); checked
// against the dense complex128 LU inverse of core/reference in the unit tests and, on a few rows, in
// every run: summary same_work/oracle_vs_dense_rel_err). Features (B, N, 2) float64.
inline torch::Tensor oracle_features(const rbk::Tridiagonal& h, c10::complex<double> z,
                                     rbk::BkContext ctx = rbk::BkContext::Bidirectional) {
  const rbk::Tridiagonal h64{h.diag.to(torch::kCPU, torch::kDouble), h.upper.to(torch::kCPU, torch::kDouble),
                             h.lower.to(torch::kCPU, torch::kDouble)};
  return torch::view_as_real(rbk::bk_core_diagonal(h64, z, rbk::BkForwardMode::Stable, ctx)).contiguous();
}

}  // namespace rbk::kernel_speed
