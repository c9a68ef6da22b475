// Width search that matches a baseline LM to a parameter budget (see model_sizing.h; issue 7).
#include "rbk/model_sizing.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <string>

namespace rbk {
namespace {

// The widest model the search tries: far above any configuration of the papers (D <= 1024), and
// small enough that the tiny-V count of one candidate stays cheap.
constexpr int64_t kMaxSearchedWidth = 8192;

// The initialisation decides values, not shapes: counting with LibTorch's default init skips the
// paper-time schemes' costly parts (RWKV's orthogonal init is a QR of the V x D embedding).
int64_t direct_count(const LmConfig& c) {
  LmConfig k = c;
  k.init = "torch_default";
  return count_parameters(*make_language_model(k));
}

LmConfig with_width(const LmConfig& base, int64_t d) {
  LmConfig c = base;
  c.d_model = d;
  if (c.arch == "transformer" || c.arch == "rwkv") c.ffn_dim = 4 * d;
  if (c.arch == "mamba") c.dt_rank = 0;
  return c;
}

}  // namespace

int64_t estimate_parameter_count(const LmConfig& c) {
  // P(V, N) = P(2, 1) + (V - 2) dP/dV + (N - 1) dP/dN for models affine in V and N.
  LmConfig a = c;
  a.vocab_size = 2;
  a.n_seq = 1;
  a.prime_bump = "none";  // adds no parameters; "potential" would build an N-point table
  LmConfig v = a, n = a;
  v.vocab_size = 3;
  n.n_seq = 2;
  const int64_t p0 = direct_count(a);
  const int64_t per_v = direct_count(v) - p0;
  const int64_t per_n = direct_count(n) - p0;
  return p0 + (c.vocab_size - 2) * per_v + (c.n_seq - 1) * per_n;
}

LmConfig size_to_parameter_count(const LmConfig& base, int64_t target, double tolerance, int64_t width_multiple) {
  if (target < 1) throw std::invalid_argument("size_to_parameter_count: target_params must be >= 1");
  if (!(tolerance >= 0.0)) throw std::invalid_argument("size_to_parameter_count: tolerance must be >= 0");
  if (width_multiple < 1) throw std::invalid_argument("size_to_parameter_count: width_multiple must be >= 1");
  int64_t step = width_multiple;
  // Transformer: a head dimension that is a multiple of 8, so SDPA can choose flash attention.
  if (base.arch == "transformer") step = std::lcm(width_multiple, 8 * base.n_heads);
  // Validated at a grid width: base's own width need not fit the grid (e.g. a Transformer sized
  // from a ResNet-BK D = 256 with 3 heads).
  with_width(base, step).validate();
  (void)direct_count(with_width(base, step));  // fails early for archs not built in

  // Counts grow with the width: find the first grid width whose count exceeds the target by
  // doubling, then bisection (a dozen counts instead of a scan), and keep the closer of it and
  // its lower neighbour.
  auto count_at = [&](int64_t k) { return estimate_parameter_count(with_width(base, k * step)); };
  const int64_t k_max = std::max<int64_t>(1, kMaxSearchedWidth / step);
  int64_t lo = 0, hi = 1;  // invariant: count(lo) <= target (lo = 0: width 0), count(hi) > target or hi = k_max
  while (hi < k_max && count_at(hi) <= target) {
    lo = hi;
    hi = std::min(k_max, 2 * hi);
  }
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (count_at(mid) <= target ? lo : hi) = mid;
  }
  int64_t k_best = hi;
  if (lo >= 1 && std::llabs(count_at(lo) - target) <= std::llabs(count_at(hi) - target)) k_best = lo;
  const LmConfig best = with_width(base, k_best * step);
  const int64_t exact = direct_count(best);
  const double rel = static_cast<double>(exact) / static_cast<double>(target) - 1.0;
  if (std::abs(rel) > tolerance)
    throw std::runtime_error("size_to_parameter_count: arch '" + base.arch + "' has no width (multiple of " +
                             std::to_string(step) + ", n_layers " + std::to_string(base.n_layers) +
                             ") within " + std::to_string(tolerance * 100) + "% of " + std::to_string(target) +
                             " parameters; closest: d_model " + std::to_string(best.d_model) + " with " +
                             std::to_string(exact) + " (" + std::to_string(rel * 100) + "%)");
  return best;
}

}  // namespace rbk
