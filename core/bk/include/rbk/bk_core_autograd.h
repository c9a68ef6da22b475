// torch::autograd::Function wrapper so a model can use any BK-Core forward x gradient combination.
#pragma once
#include "rbk/bk_core.h"

namespace rbk {

struct BkCoreOptions {
  BkForwardMode forward = BkForwardMode::Stable;
  BkGradientMode gradient = BkGradientMode::Exact;
  BkContext context = BkContext::Bidirectional;
  c10::complex<double> z{0.0, 1.0};  // upstream's fixed z = 1j
  CompatExecution compat_execution = CompatExecution::ScalarLoop;
};

// v: (B, N) float32 | float64 | bfloat16 | float16, requires_grad as the caller wants.
// H = Laplacian + diag(v). Returns features (B, N, 2): float64 for a float64 v with the Stable
// forward, float32 otherwise (compat forwards as upstream; 16-bit potentials are scanned in
// float32). The gradient comes back in v's dtype.
// Backward: Exact -> the exact O(N) vector-Jacobian product (always of the true G, whatever the
// forward); hybrid modes -> upstream's formulas applied to the G this forward returned;
// Autograd -> no custom backward: LibTorch differentiates bk_core_diagonal_stable_differentiable
// (stable forward only; the C02 baseline).
torch::Tensor bk_core_features(const torch::Tensor& v, const BkCoreOptions& options = {});

}  // namespace rbk
