// The extended-precision continuant reference (core/reference/bk_core_continuant.h), which checks
// BK-Core above the dense oracle's reach in exp_bk_numerics (claim C01): it must agree with the
// dense complex128 oracle at small N and with the fp64 stable path at moderate N, carry more than
// double precision, and disagree clearly when fed a different H.
#include "reference/bk_core_continuant.h"
#include "reference/bk_core_oracle.h"
#include "rbk/bk_core.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <ostream>
#include <string>

namespace rbk {
namespace {

using torch::Tensor;

// vs the dense LU oracle: the reference is rounded once to complex128 (1.1e-16 relative); the
// oracle's own error is a few ulps times the condition of H - zI, <= ~|H| / Im z ~ 1e3 at
// Im z = 1/128 and |v| <= 10, so agreement to ~1e-14 is expected (seen: <= 8.5e-15 over these
// cases); 1e-12 leaves a margin of 100.
constexpr double kVsOracleMaxRelError = 1e-12;
// vs the fp64 continued fractions at N = 2^16: each pivot carries ~1 ulp and the fraction is
// contractive, so the fp64 path is accurate to ~1e-14 relative (seen: <= 1.1e-14 at Im z = 1/128,
// |v| <= 10); 1e-12 leaves the same margin, 4 decades below the perturbation signal below.
constexpr double kVsFp64MaxRelError = 1e-12;
// Self-check of the reference: theta_{N-1} and phi_0 (the same determinant, two recursions) differ
// by the accumulated binary128 rounding, ~N * 1e-34 * (amplification <= |a - z| / Im z ~ 2e3)
// ~ 1e-25 at N = 2^16 as a worst case (seen: <= 4e-32). A double-precision implementation would
// give >= 1e-16 * sqrt(N) ~ 1e-14, so 1e-22 separates the two by 8 decades.
constexpr double kDetMismatchMax = 1e-22;
// A wrong H must show: v perturbed by 1e-6 moves G by ~|G|^2 * 1e-6 ~ 1e-6 relative, 6 decades
// above kVsFp64MaxRelError; demanding > 1e-8 keeps two decades of slack on the signal.
constexpr double kPerturbation = 1e-6;
constexpr double kPerturbedMinRelError = 1e-8;

double max_rel(const Tensor& got, const Tensor& ref) {
  return ((got.to(torch::kComplexDouble) - ref).abs() / ref.abs()).max().item<double>();
}

struct Case {
  int64_t n;
  double v_half_width, z_re, z_im;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "N=" << c.n << " |v|<=" << c.v_half_width << " z=" << c.z_re << "+" << c.z_im << "i";
}

class ContinuantVsOracle : public ::testing::TestWithParam<Case> {};

TEST_P(ContinuantVsOracle, AgreesToNearDoublePrecision) {
  const Case p = GetParam();
  torch::manual_seed(7 + p.n);
  const Tensor v = (torch::rand({2, p.n}, torch::kDouble) * 2 - 1) * p.v_half_width;
  const Tridiagonal h = laplacian_with_potential(v);
  const c10::complex<double> z(p.z_re, p.z_im);
  const auto ref = reference::bk_core_diagonal_continuant(h, z);
  const Tensor oracle = reference::bk_core_diagonal_dense(h, z, BkContext::Bidirectional);
  const double err = max_rel(ref.diag, oracle), mism = ref.det_mismatch.max().item<double>();
  std::printf("N=%lld |v|<=%g z=%g%+gi: continuant vs dense oracle max rel err %.3e (<= %.0e), det mismatch %.2e\n",
              (long long)p.n, p.v_half_width, p.z_re, p.z_im, err, kVsOracleMaxRelError, mism);
  EXPECT_LE(err, kVsOracleMaxRelError);
  EXPECT_LE(mism, kDetMismatchMax);
}

INSTANTIATE_TEST_SUITE_P(Bk, ContinuantVsOracle,
                         ::testing::Values(Case{1, 1, 0, 1}, Case{2, 1, 0.5, 0.25}, Case{64, 1, 0, 1},
                                           Case{64, 10, -5, 1.0 / 128}, Case{256, 0.125, -2, 1.0 / 128},
                                           Case{256, 1, 3, 0.125}, Case{256, 10, 12, 0.125}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return "n" + std::to_string(info.param.n) + "_case" + std::to_string(info.index);
                         });

// Non-symmetric H with b_i c_i of both signs is accepted too (the recursion only needs k_i = b_i c_i).
TEST(BkContinuant, GeneralTridiagonalMatchesOracle) {
  torch::manual_seed(11);
  const int64_t N = 128;
  const Tridiagonal h{torch::rand({1, N}, torch::kDouble) * 4 - 2, torch::rand({1, N - 1}, torch::kDouble) + 0.5,
                      torch::rand({1, N - 1}, torch::kDouble) * 2 - 1};
  const c10::complex<double> z(0.3, 1.0);
  const double err = max_rel(reference::bk_core_diagonal_continuant(h, z).diag,
                             reference::bk_core_diagonal_dense(h, z, BkContext::Bidirectional));
  std::printf("general tridiagonal N=%lld: max rel err %.3e (<= %.0e)\n", (long long)N, err, kVsOracleMaxRelError);
  EXPECT_LE(err, kVsOracleMaxRelError);
}

TEST(BkContinuant, AgreesWithFp64StablePathAtModerateN) {
  const int64_t N = int64_t(1) << 16;
  torch::manual_seed(3);
  for (const Case& p : {Case{N, 1, 0, 1}, Case{N, 10, -5, 1.0 / 128}, Case{N, 0.125, -2, 1.0 / 128}}) {
    const Tensor v = (torch::rand({1, N}, torch::kDouble) * 2 - 1) * p.v_half_width;
    const Tridiagonal h = laplacian_with_potential(v);
    const c10::complex<double> z(p.z_re, p.z_im);
    const auto ref = reference::bk_core_diagonal_continuant(h, z);
    const double err = max_rel(bk_core_diagonal(h, z), ref.diag), mism = ref.det_mismatch.item<double>();
    std::printf("N=2^16 |v|<=%g z=%g%+gi: fp64 stable vs continuant max rel err %.3e (<= %.0e), det mismatch %.2e (<= %.0e)\n",
                p.v_half_width, p.z_re, p.z_im, err, kVsFp64MaxRelError, mism, kDetMismatchMax);
    EXPECT_LE(err, kVsFp64MaxRelError);
    EXPECT_LE(mism, kDetMismatchMax);
  }
}

// The check can fail: the reference of a slightly different H (perturbed potential everywhere, or
// one diagonal entry) disagrees with the fp64 path of the original H far beyond the tolerance.
TEST(BkContinuant, WrongDiagonalGivesClearDisagreement) {
  const int64_t N = 4096;
  torch::manual_seed(5);
  const Tensor v = torch::rand({1, N}, torch::kDouble) * 2 - 1;
  const c10::complex<double> z(0, 1);
  const Tensor g64 = bk_core_diagonal(laplacian_with_potential(v), z);
  const Tensor noisy = v + (torch::rand({1, N}, torch::kDouble) * 2 - 1) * kPerturbation;
  Tensor one_site = v.clone();
  one_site[0][N / 2] += kPerturbation;
  const double err_noisy = max_rel(g64, reference::bk_core_diagonal_continuant(laplacian_with_potential(noisy), z).diag);
  const double err_site = max_rel(g64, reference::bk_core_diagonal_continuant(laplacian_with_potential(one_site), z).diag);
  const double err_same = max_rel(g64, reference::bk_core_diagonal_continuant(laplacian_with_potential(v), z).diag);
  std::printf("fp64 path vs reference of: the same H %.3e, v + %.0e noise %.3e, one site + %.0e %.3e (must be > %.0e)\n",
              err_same, kPerturbation, err_noisy, kPerturbation, err_site, kPerturbedMinRelError);
  EXPECT_LE(err_same, kVsFp64MaxRelError);
  EXPECT_GT(err_noisy, kPerturbedMinRelError);
  EXPECT_GT(err_site, kPerturbedMinRelError);
}

TEST(BkContinuant, RunsInMoreThanDoublePrecisionAndRejectsBadInput) {
  std::printf("continuant reference precision: %d significand bits\n", reference::continuant_precision_bits());
  EXPECT_GT(reference::continuant_precision_bits(), 53);
  const Tridiagonal h = laplacian_with_potential(torch::zeros({1, 8}, torch::kDouble));
  EXPECT_THROW(reference::bk_core_diagonal_continuant(h, {0.0, 0.0}), c10::Error);
}

}  // namespace
}  // namespace rbk
