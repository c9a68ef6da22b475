// exp_bk_numerics, part 2: the stable paths checked above the dense oracle's reach against an
// independent reference (core/reference/bk_core_continuant.h), and the linear-time sample.
#pragma once
#include "rbk/experiment.h"

#include <c10/util/complex.h>

#include <cstdint>

namespace bk_numerics {

// Time fits use N >= 2^16 only: below, per-call overhead dominates and the working set moves from
// L1/L2 into DRAM, which bends the curve without saying anything about the algorithm's order.
constexpr int64_t kFitMinN = int64_t(1) << 16;

// The fixed case table (potential range x z) at N = 2^n_log2 against the binary128 continuant
// reference. Appends one row per case (mode "independent_check") and returns
// summary.independent_check.
nlohmann::json independent_check(int64_t n_log2, rbk::ExperimentOutput& out);

// The stable fp32 N sweep (N = 2^kmin .. 2^kmax, B rows, v ~ U[vmin, vmax]) run `sweeps` times in
// a row, interleaved (every N once per sweep); each point is the fastest of `calls` calls. Appends
// one row per (sweep, N) (mode "timing_sweep_stable_fp32"), writes
// modes.stable_fp32.{time_exponent_repeats, time_exponent_full_range} into `stable_fp32` and
// returns summary.time_fit.
nlohmann::json linear_time_sample(int64_t kmin, int64_t kmax, int64_t B, double vmin, double vmax,
                                  c10::complex<double> z, int sweeps, int calls, nlohmann::json& stable_fp32,
                                  rbk::ExperimentOutput& out);

}  // namespace bk_numerics
