// BK-Core forward modes against the dense complex128 oracle and against upstream's documented
// behaviour (claim C01; upstream-audit §1.5, §1.7, §1.10, Appendix B items 1-2, 4).
#include "reference/bk_core_oracle.h"
#include "rbk/bk_core.h"
#include "rbk/torch_compat.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

namespace rbk {
namespace {

using torch::Tensor;

// fp64 continued fractions vs a dense LU inverse: both are backward-stable, |G| <= 1/Im z and
// the pivots satisfy |d| >= Im z, so the difference is a few hundred ulps at N = 2048.
constexpr double kFp64MaxAbsError = 1e-12;
// fp32 vs fp64: each pivot carries ~1 ulp (6e-8) of relative error and the continued fraction is
// contractive (errors are damped by |L/d| < 1 per step), so 1e-5 leaves two decades of margin.
constexpr double kFp32MaxRelError = 1e-5;
// At N = 2^20 the same argument holds; 1e-4 is the bound and still far above what we see.
constexpr double kFp32LongMaxRelError = 1e-4;

Tensor random_potential(int64_t B, int64_t N, double lo, double hi, torch::ScalarType t = torch::kDouble) {
  return torch::rand({B, N}, torch::TensorOptions().dtype(t)) * (hi - lo) + lo;
}

double max_abs(const Tensor& x) { return x.abs().max().item<double>(); }
double max_rel(const Tensor& got, const Tensor& ref) {
  return ((got.to(torch::kComplexDouble) - ref).abs() / ref.abs()).max().item<double>();
}

struct ForwardCase {
  int64_t n;
  double z_re, z_im;
};

class StableVsOracle : public ::testing::TestWithParam<ForwardCase> {};

TEST_P(StableVsOracle, Fp64AndFp32) {
  const auto p = GetParam();
  torch::manual_seed(1000 + p.n);
  // The dense oracle is O(N^3) per row: one row at large N keeps the test within seconds.
  const Tensor v = random_potential(p.n >= 1024 ? 1 : 3, p.n, -3, 3);
  const c10::complex<double> z(p.z_re, p.z_im);
  const Tridiagonal h = laplacian_with_potential(v);
  const Tensor ref = reference::bk_core_diagonal_dense(h, z, BkContext::Bidirectional);
  const Tensor g64 = bk_core_diagonal(h, z);
  const Tensor g32 = bk_core_diagonal(laplacian_with_potential(v.to(torch::kFloat)), z);
  ASSERT_EQ(g64.scalar_type(), torch::kComplexDouble);
  ASSERT_EQ(g32.scalar_type(), torch::kComplexFloat);
  const double e64 = max_abs(g64 - ref), e32 = max_rel(g32, ref);
  std::printf("N=%lld z=%g%+gi: fp64 max abs err %.3e (<= %.0e), fp32 max rel err %.3e (<= %.0e)\n",
              (long long)p.n, p.z_re, p.z_im, e64, kFp64MaxAbsError, e32, kFp32MaxRelError);
  EXPECT_LE(e64, kFp64MaxAbsError);
  EXPECT_LE(e32, kFp32MaxRelError);
}

std::string case_name(const ::testing::TestParamInfo<ForwardCase>& info) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "N%lld_zre%d_zim%d", (long long)info.param.n, int(std::lround(info.param.z_re * 100)),
                int(std::lround(info.param.z_im * 100)));
  std::string s(buf);
  for (auto& ch : s)
    if (ch == '-') ch = 'm';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Bk, StableVsOracle,
                         ::testing::Values(ForwardCase{1, 0, 1}, ForwardCase{2, 0, 1}, ForwardCase{3, 0, 1},
                                           ForwardCase{17, 0.5, 0.5}, ForwardCase{64, -1, 0.25}, ForwardCase{257, 0, 1},
                                           ForwardCase{1024, 0.3, 0.5}, ForwardCase{2048, -2, 0.2}),
                         case_name);

TEST(BkForward, TinySystemsMatchClosedForm) {
  // N = 1: G = 1/(a - z). N = 2: G = (a1 - z, a0 - z)/det.
  const c10::complex<double> z(0.2, 0.7);
  Tensor v = torch::tensor({{0.3, -1.1}}, torch::kDouble);
  const Tensor G = bk_core_diagonal(laplacian_with_potential(v), z);
  const c10::complex<double> a0(-2 + 0.3), a1(-2 - 1.1);
  const c10::complex<double> det = (a0 - z) * (a1 - z) - 1.0;
  const auto g0 = G[0][0].item<c10::complex<double>>(), g1 = G[0][1].item<c10::complex<double>>();
  const double e = std::max(std::abs(g0 - (a1 - z) / det), std::abs(g1 - (a0 - z) / det));
  std::printf("N=2 closed form error %.3e\n", e);
  EXPECT_LE(e, 1e-15);
  const Tensor G1 = bk_core_diagonal(laplacian_with_potential(v.narrow(1, 0, 1)), z);
  EXPECT_LE(std::abs(G1[0][0].item<c10::complex<double>>() - 1.0 / (a0 - z)), 1e-15);
}

TEST(BkForward, StableFp32AtTwoToTheTwenty) {
  torch::manual_seed(7);
  const int64_t N = int64_t(1) << 20;
  const Tensor v = random_potential(2, N, -3, 3);
  const c10::complex<double> z(0, 1);
  const Tensor g64 = bk_core_diagonal(laplacian_with_potential(v), z);
  const Tensor g32 = bk_core_diagonal(laplacian_with_potential(v.to(torch::kFloat)), z);
  const bool finite = torch::isfinite(torch::view_as_real(g32)).all().item<bool>();
  const double rel = max_rel(g32, g64);
  const double zeros = (g32.abs() == 0).to(torch::kDouble).mean().item<double>();
  std::printf("N=2^20 fp32: all finite %d, max rel err vs fp64 %.3e (<= %.0e), zero fraction %.3g\n", finite, rel,
              kFp32LongMaxRelError, zeros);
  EXPECT_TRUE(finite);
  EXPECT_LE(rel, kFp32LongMaxRelError);
  EXPECT_EQ(zeros, 0.0);
}

TEST(BkForward, CausalMatchesLeadingBlockOracle) {
  torch::manual_seed(11);
  for (int64_t n : {1, 2, 5, 33, 96}) {
    const Tensor v = random_potential(2, n, -3, 3);
    const c10::complex<double> z(0.1, 0.8);
    const Tridiagonal h = laplacian_with_potential(v);
    const Tensor ref = reference::bk_core_diagonal_dense(h, z, BkContext::Causal);
    const double e = max_abs(bk_core_diagonal(h, z, BkForwardMode::Stable, BkContext::Causal) - ref);
    std::printf("causal N=%lld fp64 max abs err %.3e\n", (long long)n, e);
    EXPECT_LE(e, kFp64MaxAbsError);
  }
}

TEST(BkForward, CausalityProbe) {
  // audit §1.7: G_ii depends on v_j for j > i in the papers' (bidirectional) form; the causal
  // form must not change at all (bit-identical) for i < j.
  torch::manual_seed(3);
  const int64_t N = 64, j = 40;
  const Tensor v = random_potential(1, N, -1, 1);
  Tensor v2 = v.clone();
  v2[0][j] += 0.5;
  const c10::complex<double> z(0, 1);
  for (auto ctx : {BkContext::Bidirectional, BkContext::Causal}) {
    const Tensor d = (bk_core_diagonal(laplacian_with_potential(v2), z, BkForwardMode::Stable, ctx) -
                      bk_core_diagonal(laplacian_with_potential(v), z, BkForwardMode::Stable, ctx))
                         .abs()
                         .narrow(1, 0, j);
    const double past_change = d.max().item<double>();
    std::printf("%s: max |dG_i| over i < %lld after perturbing v_%lld: %.3e (at i = %lld: %.3e)\n",
                to_string(ctx).c_str(), (long long)j, (long long)j, past_change, (long long)(j - 1),
                d[0][j - 1].item<double>());
    if (ctx == BkContext::Bidirectional) EXPECT_GT(past_change, 1e-3);  // leak: ~0.48^|i-j| decay
    else EXPECT_EQ(past_change, 0.0);
  }
}

// ---- compat modes: upstream's overflow thresholds (audit §1.5 table, Appendix A item 2) ----

int64_t first_nonfinite_n(BkForwardMode mode, double v_const, int64_t lo, int64_t hi) {
  for (int64_t n = lo; n <= hi; ++n) {
    const Tensor v = torch::full({1, n}, v_const, torch::kDouble);
    const Tensor G = bk_core_diagonal(laplacian_with_potential(v), {0, 1}, mode);
    if (!torch::isfinite(torch::view_as_real(G)).all().item<bool>()) return n;
  }
  return -1;
}

// Upstream's recursion written with LibTorch's own complex128 ops, as the Python code runs it.
// Used only where LibTorch still divides complex numbers by the textbook formula (<= 2.0).
int64_t first_nonfinite_n_native_torch(double v_const, int64_t lo, int64_t hi) {
  const auto o = torch::TensorOptions().dtype(torch::kComplexDouble);
  for (int64_t n = lo; n <= hi; ++n) {
    const Tensor as = torch::full({1, n}, c10::complex<double>(-2.0 + v_const, 0), o) -
                      torch::full({1}, c10::complex<double>(0, 1), o);
    const Tensor one = torch::ones({1}, o), cb = torch::ones({1}, o) * torch::ones({1}, o);
    std::vector<Tensor> th(n + 1), ph(n);
    th[0] = one;
    th[1] = as.select(1, 0);
    for (int64_t i = 1; i < n; ++i) th[i + 1] = as.select(1, i) * th[i] - cb * th[i - 1];
    ph[n - 1] = one;
    if (n >= 2) ph[n - 2] = as.select(1, n - 1);
    for (int64_t i = n - 3; i >= 0; --i) ph[i] = as.select(1, i + 1) * ph[i + 1] - cb * ph[i + 2];
    const Tensor G = torch::stack(std::vector<Tensor>(th.begin(), th.end() - 1), 1) * torch::stack(ph, 1) /
                     (th[n].unsqueeze(1) + 1e-18);
    if (!torch::isfinite(torch::view_as_real(G)).all().item<bool>()) return n;
  }
  return -1;
}

TEST(BkCompat, PocFirstNonFiniteMatchesUpstream) {
  // Audit §1.5 table (constant v, Laplacian H0, z = i, complex128): 224 (v=-3), 336 (v=-1),
  // 488 (v=0), 672 (v=+1), 740 (v=+2). Every audit value is a multiple of 4 and our exact first
  // N rounds up to it: the audit scanned N in steps of 4. The exact value must equal what
  // LibTorch's own complex128 ops give where LibTorch divides as torch 1.13 did.
  const struct {
    double v;
    int64_t audit;
  } cases[] = {{-3, 224}, {-1, 336}, {0, 488}, {1, 672}, {2, 740}};
  for (const auto& c : cases) {
    const int64_t got = first_nonfinite_n(BkForwardMode::CompatPoc, c.v, c.audit - 40, c.audit + 40);
    const int64_t rounded = (got + 3) / 4 * 4;
    std::printf("compat_poc v=%+g: first non-finite N = %lld, rounded up to the audit's step of 4: %lld (audit %lld)\n",
                c.v, (long long)got, (long long)rounded, (long long)c.audit);
    EXPECT_EQ(rounded, c.audit);
    if (torch_uses_textbook_complex_division()) {
      const int64_t native = first_nonfinite_n_native_torch(c.v, got - 8, got + 8);
      std::printf("  LibTorch %s native complex128 ops: %lld\n", torch_version_string().c_str(), (long long)native);
      EXPECT_EQ(got, native);
    }
  }
}

TEST(BkCompat, PapertimeReturnsExactZerosPastOverflow) {
  const c10::complex<double> z(0, 1);
  for (int64_t n : {int64_t(488), int64_t(1024), int64_t(4096)}) {
    const Tensor v = torch::zeros({1, n}, torch::kDouble);
    const Tensor poc = bk_core_diagonal(laplacian_with_potential(v), z, BkForwardMode::CompatPoc);
    const Tensor pt = bk_core_diagonal(laplacian_with_potential(v), z, BkForwardMode::CompatPapertime);
    const Tensor nonfinite = ~torch::isfinite(torch::view_as_real(poc)).all(-1);
    const double zero_frac = (pt.abs() == 0).to(torch::kDouble).mean().item<double>();
    const bool zeros_where_nonfinite = (pt.abs().masked_select(nonfinite) == 0).all().item<bool>();
    std::printf("N=%lld: PoC non-finite fraction %.3f, paper-time exact-zero fraction %.3f\n", (long long)n,
                nonfinite.to(torch::kDouble).mean().item<double>(), zero_frac);
    EXPECT_TRUE(zeros_where_nonfinite);
    EXPECT_TRUE(torch::isfinite(torch::view_as_real(pt)).all().item<bool>());
    if (n >= 1024) EXPECT_EQ(zero_frac, 1.0);
    else EXPECT_GT(zero_frac, 0.0);
  }
}

TEST(BkCompat, TritonFp32IsZeroNearSixtyFour) {
  // Audit §1.5 (complex64 column: v = 0 -> 64) and §1.10: the fp32 serial kernel overflows near 64.
  const int64_t first = first_nonfinite_n(BkForwardMode::CompatPoc, 0.0, 2, 600);  // sanity: complex128
  int64_t first_zero = -1;
  for (int64_t n = 2; n <= 200 && first_zero < 0; ++n) {
    const Tensor G = bk_core_diagonal(laplacian_with_potential(torch::zeros({1, n}, torch::kDouble)), {0, 1},
                                        BkForwardMode::CompatPapertimeTriton);
    if ((G.abs() == 0).any().item<bool>()) first_zero = n;
  }
  const Tensor G128 = bk_core_diagonal(laplacian_with_potential(torch::zeros({1, 128}, torch::kFloat)), {0, 1},
                                         BkForwardMode::CompatPapertimeTriton);
  const double zf = (G128.abs() == 0).to(torch::kDouble).mean().item<double>();
  std::printf("triton fp32: first N with a zero output %lld (complex128 PoC: %lld); zero fraction at N=128: %.3f\n",
              (long long)first_zero, (long long)first, zf);
  EXPECT_GE(first_zero, 56);
  EXPECT_LE(first_zero, 72);
  EXPECT_EQ(zf, 1.0);
}

TEST(BkCompat, TensorOpsExecutionIsBitIdenticalToLoops) {
  // The upstream-style execution (one batched op per step) and the plain loops run one formula.
  torch::manual_seed(5);
  for (auto mode : {BkForwardMode::CompatPoc, BkForwardMode::CompatPapertime, BkForwardMode::CompatPapertimeTriton}) {
    for (int64_t n : {1, 2, 3, 50, 300, 600}) {
      const Tensor v = random_potential(3, n, -1, 1, torch::kFloat);
      const Tridiagonal h = laplacian_with_potential(v);
      const Tensor a = torch::view_as_real(bk_core_diagonal(h, {0, 1}, mode, BkContext::Bidirectional, CompatExecution::ScalarLoop));
      const Tensor b = torch::view_as_real(bk_core_diagonal(h, {0, 1}, mode, BkContext::Bidirectional, CompatExecution::TensorOps));
      // Compare bit patterns so NaN == NaN counts as equal.
      const bool same = torch::equal(a.contiguous().view(torch::kInt), b.contiguous().view(torch::kInt));
      if (!same) std::printf("mismatch: %s N=%lld\n", to_string(mode).c_str(), (long long)n);
      EXPECT_TRUE(same);
    }
  }
}

TEST(BkCompat, CompatIsExactBeforeOverflow) {
  // Below the threshold the complex128 recursion is the true G (to complex64 rounding).
  torch::manual_seed(9);
  const Tensor v = random_potential(2, 100, -0.5, 0.5);
  const Tridiagonal h = laplacian_with_potential(v);
  const Tensor ref = reference::bk_core_diagonal_dense(h, {0, 1}, BkContext::Bidirectional);
  const double e = max_rel(bk_core_diagonal(h, {0, 1}, BkForwardMode::CompatPapertime), ref);
  std::printf("compat paper-time N=100 max rel err %.3e\n", e);
  EXPECT_LE(e, 1e-6);  // complex64 output rounding (6e-8) with margin
}

// ---- bad input ----

TEST(BkInput, RejectsBadInputWithClearMessages) {
  const Tensor v = torch::zeros({2, 8}, torch::kDouble);
  auto expect_error = [](const std::function<void()>& fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const c10::Error& e) {
      const std::string msg = e.what();
      std::printf("error as expected: %s\n", msg.substr(0, msg.find('\n')).c_str());
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  expect_error([&] { bk_core_diagonal(laplacian_with_potential(v), {0, 0}); }, "Im z must be > 0");
  expect_error([&] { bk_core_diagonal(laplacian_with_potential(v), {0, -1}); }, "Im z must be > 0");
  Tensor bad = v.clone();
  bad[1][3] = std::nan("");
  expect_error([&] { bk_core_diagonal(laplacian_with_potential(bad), {0, 1}); }, "NaN or Inf");
  Tridiagonal h = laplacian_with_potential(v);
  h.upper = torch::ones({2, 8}, torch::kDouble);
  expect_error([&] { bk_core_diagonal(h, {0, 1}); }, "upper must be (B, N-1)");
  expect_error([&] { laplacian_with_potential(torch::zeros({8}, torch::kDouble)); }, "must be (B, N)");
  expect_error([&] { bk_core_diagonal(laplacian_with_potential(v), {0, 1}, BkForwardMode::CompatPoc, BkContext::Causal); },
               "no causal variant");
}

}  // namespace
}  // namespace rbk
