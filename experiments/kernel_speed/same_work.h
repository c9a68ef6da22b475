// Claim C17's deciding comparison (issue 16): rbk's CUDA kernel in its general tridiagonal mode
// against the native-complex vmap baseline (vmap_native_baseline.h) on the 185x benchmark's own
// inputs, both checked against fp64 before any time is taken, timed with CUDA events in interleaved
// repeats (one ratio per repeat). Writes out.summary["same_work"] (keys: main.cpp's top comment),
// rows, and the upstream-shaped compat pair's top-level keys. CUDA builds only.
#pragma once
#include "rbk/config.h"
#include "rbk/experiment.h"

namespace rbk::kernel_speed {

// A timed output "matches fp64" when its relative L2 error against the fp64 oracle is at most this:
// the accuracy threshold of exp_bk_numerics and of C17.correct_output. fp32 continued fractions on
// the benchmark's inputs measure 1e-6 .. 3e-5 (CPU, four draws of B = 16, N = 4096); the complex128
// baseline's complex64 output 3e-8; an all-zero output errs by exactly 1.
constexpr double kMatchRelErr = 1e-3;
// The O(N) fp64 oracle against the dense complex128 LU inverse (core/reference) on the rows checked
// each run: both are fp64, so they differ by rounding times conditioning (measured 4e-15 .. 8e-15
// on these inputs); 1e-10 is loose for that and far below any real disagreement.
constexpr double kOracleAgreementTol = 1e-10;

void run_same_work(const rbk::Config& cfg, rbk::ExperimentOutput& out);

}  // namespace rbk::kernel_speed
