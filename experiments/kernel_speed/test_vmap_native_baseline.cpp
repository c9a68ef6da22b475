// CPU tests of the native-complex vmap baselines of exp_kernel_speed (claim C17;
// vmap_native_baseline.h): the corrected one (continued-fraction ratios) matches the dense
// complex128 oracle of core/reference; the literal upstream one matches it where its continuants
// do not overflow and returns only zeros on the 185x benchmark's inputs at N = 4096 (audit §1.5,
// §10.1); the op counts per recursion step are the ones the same-work argument states.
#include "accuracy.h"
#include "reference/bk_core_oracle.h"
#include "vmap_native_baseline.h"

#include <gtest/gtest.h>

#include <cstdio>

namespace {

using rbk::kernel_speed::accuracy;
using rbk::kernel_speed::VmapRecurrence;
using rbk::kernel_speed::vmap_native_features;
using torch::Tensor;

// Both baselines return G cast to complex64 (upstream's output dtype): each component carries a
// rounding error up to 2^-24 = 6e-8 relative, so the relative L2 error against fp64 is about that.
// 1e-6 leaves room for the fp64 recursion's own error (measured 1e-14 .. 1e-15 against the dense
// LU on these inputs) while any algorithmic slip (a shifted pivot, a lost term) errs by O(1e-2) or
// more.
constexpr double kComplex64OutputTol = 1e-6;
// The O(N) fp64 oracle (continued fractions) against the dense complex128 LU inverse: both are
// fp64; their difference is rounding amplified by the conditioning of these random,
// non-symmetric H (measured ~1e-14 at N = 4096), so 1e-10 is loose for rounding and far below any
// real disagreement.
constexpr double kOracleAgreementTol = 1e-10;

Tensor dense_features(const rbk::Tridiagonal& h, c10::complex<double> z) {
  const rbk::Tridiagonal h64{h.diag.to(torch::kDouble), h.upper.to(torch::kDouble), h.lower.to(torch::kDouble)};
  return torch::view_as_real(rbk::reference::bk_core_diagonal_dense(h64, z, rbk::BkContext::Bidirectional)).contiguous();
}

rbk::Tridiagonal laplacian_inputs(int64_t B, int64_t N) {
  return rbk::laplacian_with_potential(torch::randn({B, N}));
}

TEST(VmapNativeBaseline, StableRatiosMatchDenseOracleOnBenchmarkDistribution) {
  torch::manual_seed(11);
  const rbk::Tridiagonal h = rbk::kernel_speed::draw_benchmark_inputs(3, 96);
  const Tensor f = vmap_native_features(h, rbk::kernel_speed::kBenchmarkZ, VmapRecurrence::StableRatios);
  ASSERT_EQ(f.sizes(), (std::vector<int64_t>{3, 96, 2}));
  ASSERT_EQ(f.scalar_type(), torch::kFloat);
  const auto a = accuracy(f, dense_features(h, rbk::kernel_speed::kBenchmarkZ));
  std::printf("stable ratios vs dense, benchmark distribution B=3 N=96: rel err %.3e, zeros %.3g\n", a.rel_err,
              a.zero_fraction);
  EXPECT_LE(a.rel_err, kComplex64OutputTol);
  EXPECT_EQ(a.zero_fraction, 0.0);
  EXPECT_EQ(a.finite_fraction, 1.0);
}

TEST(VmapNativeBaseline, BothRecurrencesMatchDenseOracleOnLaplacianBeforeOverflow) {
  // N = 48 is far below the first overflow of the continuants (N = 224 at v = -3, audit §1.5), and
  // |G| <= 1/Im z = 1 keeps upstream's |G| <= 50 clip idle: the literal path must be exact here.
  torch::manual_seed(12);
  const rbk::Tridiagonal h = laplacian_inputs(3, 48);
  const Tensor ref = dense_features(h, rbk::kernel_speed::kModelZ);
  for (const auto rec : {VmapRecurrence::StableRatios, VmapRecurrence::UpstreamContinuants}) {
    const auto a = accuracy(vmap_native_features(h, rbk::kernel_speed::kModelZ, rec), ref);
    std::printf("%s vs dense, Laplacian + v B=3 N=48 z=i: rel err %.3e\n", rbk::kernel_speed::to_string(rec).c_str(),
                a.rel_err);
    EXPECT_LE(a.rel_err, kComplex64OutputTol) << rbk::kernel_speed::to_string(rec);
    EXPECT_EQ(a.zero_fraction, 0.0) << rbk::kernel_speed::to_string(rec);
  }
}

TEST(VmapNativeBaseline, OracleMatchesDenseOnBenchmarkDistribution) {
  // The experiment's O(N) oracle on the benchmark's non-symmetric inputs, against dense LU.
  torch::manual_seed(13);
  const rbk::Tridiagonal h = rbk::kernel_speed::draw_benchmark_inputs(2, 512);
  const Tensor ref = dense_features(h, rbk::kernel_speed::kBenchmarkZ);
  const double err = accuracy(rbk::kernel_speed::oracle_features(h, rbk::kernel_speed::kBenchmarkZ), ref).rel_err;
  std::printf("fp64 continued fractions vs dense LU, benchmark distribution B=2 N=512: rel err %.3e\n", err);
  EXPECT_LE(err, kOracleAgreementTol);
}

TEST(VmapNativeBaseline, BenchmarkInputsAtPaperPoint) {
  // B = 16, N = 4096 (Table 13): the literal path returns 100 % zeros (overflow, then the sanitiser;
  // audit §10.1), the stable ratios return the fp64 answer.
  torch::manual_seed(14);
  const rbk::Tridiagonal h = rbk::kernel_speed::draw_benchmark_inputs(16, 4096);
  const Tensor ref = rbk::kernel_speed::oracle_features(h, rbk::kernel_speed::kBenchmarkZ);
  const auto lit =
      accuracy(vmap_native_features(h, rbk::kernel_speed::kBenchmarkZ, VmapRecurrence::UpstreamContinuants), ref);
  const auto stb = accuracy(vmap_native_features(h, rbk::kernel_speed::kBenchmarkZ, VmapRecurrence::StableRatios), ref);
  std::printf("B=16 N=4096 benchmark inputs: upstream continuants zeros %.6f (rel err %.3g); stable ratios rel err "
              "%.3e, zeros %.3g\n",
              lit.zero_fraction, lit.rel_err, stb.rel_err, stb.zero_fraction);
  EXPECT_EQ(lit.zero_fraction, 1.0);
  EXPECT_EQ(lit.finite_fraction, 1.0);  // the sanitiser leaves zeros, not NaN
  EXPECT_LE(stb.rel_err, kComplex64OutputTol);
  EXPECT_EQ(stb.zero_fraction, 0.0);
  EXPECT_EQ(stb.finite_fraction, 1.0);
}

TEST(VmapNativeBaseline, ArithmeticOpsPerRecursionStep) {
  // One native op per arithmetic step: going from N to N + 32 adds 32 steps to each of the two
  // sweeps, i.e. 2 * 32 * (ops per step) arithmetic operator calls; the assembly does not grow.
  torch::manual_seed(15);
  for (const auto rec : {VmapRecurrence::StableRatios, VmapRecurrence::UpstreamContinuants}) {
    const int expected = rec == VmapRecurrence::StableRatios ? rbk::kernel_speed::kStableOpsPerStep
                                                             : rbk::kernel_speed::kUpstreamOpsPerStep;
    rbk::kernel_speed::AtenOpCount c[2];
    const int64_t ns[2] = {64, 96};
    for (int k = 0; k < 2; ++k) {
      const rbk::Tridiagonal h = rbk::kernel_speed::draw_benchmark_inputs(4, ns[k]);
      c[k] = rbk::kernel_speed::count_aten_ops([&] { (void)vmap_native_features(h, rbk::kernel_speed::kBenchmarkZ, rec); });
    }
    const double per_step = static_cast<double>(c[1].arithmetic - c[0].arithmetic) / (2.0 * (ns[1] - ns[0]));
    const double top_per_pos = static_cast<double>(c[1].top_level - c[0].top_level) / (ns[1] - ns[0]);
    std::printf("%s: arithmetic ops %lld (N=64) %lld (N=96): %.3f per step and sweep; top-level calls %.2f per "
                "position\n",
                rbk::kernel_speed::to_string(rec).c_str(), (long long)c[0].arithmetic, (long long)c[1].arithmetic,
                per_step, top_per_pos);
    EXPECT_EQ(per_step, expected) << rbk::kernel_speed::to_string(rec);
    EXPECT_GT(c[0].top_level, c[0].arithmetic);
  }
}

TEST(VmapNativeBaseline, RejectsMismatchedShapes) {
  const rbk::Tridiagonal h{torch::randn({2, 8}), torch::randn({2, 6}), torch::randn({2, 6})};
  EXPECT_THROW(vmap_native_features(h, rbk::kernel_speed::kBenchmarkZ, VmapRecurrence::StableRatios), c10::Error);
}

}  // namespace
