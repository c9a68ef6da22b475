// The window forward's certified walk (rbk/kernels/bk_window.h, the code the CUDA kernel runs) on
// the host, so the maths behind BkForwardAlgorithm::Window is checked on every machine: (1) the
// exact fp64 state always lies in the walked disc, and the radius shrinks at least as the two-step
// bound says; (2) the window algorithm, as the kernel composes it (first walk, restarts, replays),
// matches the fp64 oracle (rbk::bk_core_diagonal, Stable) for either context, including inputs
// that drive every run through the restarts; (3) the windowed backward (bk_window_backward.h,
// issue 25), composed as its kernel composes it, matches the fp64 exact vector-Jacobian product.
// Fresh random v and z per case, seeds printed. Claims C01, C17; issues 3 and 25.
#include "rbk/bk_core.h"
#include "rbk/kernels/bk_window.h"
#include "rbk/kernels/bk_window_backward.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstdio>
#include <random>
#include <vector>

namespace {

using rbk::bk_window::Disc;
using cd = std::complex<double>;

uint64_t fresh_seed() { return static_cast<uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count()); }

// Re d_j = v_j - 2 - Re z of the Laplacian + v (the kernel's shifted input), in fp32 as the kernel
// holds it.
std::vector<float> shifted_row(const std::vector<float>& v, double z_re) {
  std::vector<float> x(v.size());
  for (size_t j = 0; j < v.size(); ++j) x[j] = v[j] + static_cast<float>(-2.0 - z_re);
  return x;
}

// Exact left states u_j = 1/(d_j - u_{j-1}), u_{-1} = 0, in fp64 from the same fp32 inputs.
std::vector<cd> exact_left_states(const std::vector<float>& x, double z_im) {
  std::vector<cd> u(x.size());
  cd prev = 0.0;
  for (size_t j = 0; j < x.size(); ++j) prev = u[j] = 1.0 / (cd(x[j], -z_im) - prev);
  return u;
}

// fp32 complex steps as the kernel takes them (detail::recip: conj / |.|^2).
struct C32 {
  float x, y;
};
C32 recip(C32 a) {
  const float r = rbk::bk_window::reciprocal(a.x * a.x + a.y * a.y);
  return {a.x * r, -a.y * r};
}

// The kernel's composition for one row (Laplacian mode): runs of `items` positions; the state
// entering a run from either side is the first walk of min(warmup, available) positions from C0
// (or from the boundary state when that reaches the row end), then bk_window::walk_into from 2 x
// warmup while its radius exceeds the tolerance; then the left replay and (bidirectional) the right
// replay writing G. Returns (Re G, Im G) per position; `restarts` counts the walk_into calls.
std::vector<C32> window_forward_row(const std::vector<float>& x, float z_im, bool causal, int items, int warmup,
                                    int64_t& restarts) {
  const int64_t n = static_cast<int64_t>(x.size());
  const float eta = z_im, dy = -z_im, tol = static_cast<float>(rbk::cuda::kBkWindowTol) * eta;
  auto x_at = [&](int64_t pos) { return x[static_cast<size_t>(pos)]; };
  auto entry = [&](bool right, int64_t edge) {
    const int64_t avail = right ? n - edge : edge;
    const int64_t len = std::min<int64_t>(warmup, avail);
    Disc s = len == avail ? rbk::bk_window::disc_boundary() : rbk::bk_window::disc_c0(eta);
    for (int64_t i = 0; i < len; ++i) disc_step(s, x_at(right ? edge + len - 1 - i : edge - len + i), dy);
    if (len == avail || s.r <= tol) return s;
    ++restarts;
    return right ? rbk::bk_window::walk_into<true>(x_at, edge, n, 2 * int64_t(warmup), eta, tol)
                 : rbk::bk_window::walk_into<false>(x_at, edge, n, 2 * int64_t(warmup), eta, tol);
  };
  std::vector<C32> G(x.size());
  for (int64_t s0 = 0; s0 < n; s0 += items) {
    const int64_t cnt = std::min<int64_t>(items, n - s0);
    const Disc l = entry(false, s0);
    std::vector<C32> ku(static_cast<size_t>(cnt));
    C32 u{l.mx, l.my};
    for (int64_t j = 0; j < cnt; ++j) {
      ku[j] = u;
      u = recip({x_at(s0 + j) - u.x, dy - u.y});
      if (causal) G[s0 + j] = u;
    }
    if (causal) continue;
    const Disc r = entry(true, s0 + cnt);
    C32 w{r.mx, r.my};
    for (int64_t j = cnt - 1; j >= 0; --j) {
      const C32 dw{x_at(s0 + j) - w.x, dy - w.y};
      G[s0 + j] = recip({dw.x - ku[j].x, dw.y - ku[j].y});
      w = recip(dw);
    }
  }
  return G;
}

TEST(BkWindow, ExactStateStaysInTheWalkedDisc) {
  // fp32 walks against fp64 states: the centre carries fp32 rounding (relative ~1e-7, damped by
  // the contraction), so the containment is checked with that slack, 2e-6 / Im z absolute (|u| <=
  // 1/Im z); the radius itself goes far below it within ~25 steps.
  for (const double z_im : {0.25, 0.5, 1.0, 1.5}) {
    for (const double z_re : {-3.0, 0.0, 1.0}) {
      const uint64_t seed = fresh_seed();
      std::mt19937_64 rng(seed);
      std::normal_distribution<float> nd(0.f, 1.5f);
      const int64_t n = 600;
      std::vector<float> v(n);
      for (auto& e : v) e = nd(rng);
      const std::vector<float> x = shifted_row(v, z_re);
      const std::vector<cd> u = exact_left_states(x, z_im);
      const float eta = static_cast<float>(z_im);
      const double slack = 2e-6 / z_im, bound2 = std::pow(z_im, 4) + 2 * z_im * z_im;
      double worst = 0.0, worst_ratio = 0.0;
      for (int64_t s = 1; s + 80 < n; s += 7) {
        Disc d = rbk::bk_window::disc_c0(eta);
        float r_two_back = d.r, r_one_back = d.r;
        for (int64_t k = 0; k < 80; ++k) {
          disc_step(d, x[s + k], -eta);
          const double miss = std::abs(u[s + k] - cd(d.mx, d.my)) - d.r;
          worst = std::max(worst, miss);
          EXPECT_LE(miss, slack) << "exact state outside the disc: seed " << seed << " start " << s << " step " << k;
          if (k >= 1 && r_two_back > 1e-30f) worst_ratio = std::max(worst_ratio, d.r / r_two_back * bound2);
          r_two_back = r_one_back;
          r_one_back = d.r;
        }
      }
      std::printf("z=(%.2f,%.2f) seed=%llu: max(|u - m| - r) = %.2e (slack %.1e); max r_{k+2} / r_k x (eta^4 + 2 eta^2) = %.4f\n",
                  z_re, z_im, static_cast<unsigned long long>(seed), worst, slack, worst_ratio);
      // The two-step contraction bound (notes/kernel_speed.md, v5), with fp32 rounding room.
      EXPECT_LE(worst_ratio, 1.0 + 1e-5);
    }
  }
}

TEST(BkWindow, WindowAlgorithmMatchesFp64) {
  // The kernel's tolerance (tests/gpu/test_bk_cuda.cpp kStableRelTol): the truncation is bounded
  // by 2^-25 relative, the rest is fp32 rounding of a contracting recursion.
  constexpr double kRelTol = 1e-5;
  struct Case {
    double z_re, z_im, v_scale, v_shift;
    int items, warmup;
  };
  for (const Case c : {Case{0.0, 1.0, 1.0, 0.0, 16, 16}, Case{0.0, 1.0, 1.0, 0.0, 4, 1}, Case{-3.0, 0.5, 1.0, 0.0, 16, 16},
                       Case{0.0, 1.0, 0.0, 2.0, 16, 16}, Case{-2.0, 0.25, 1.0, 0.0, 32, 16}, Case{0.5, 0.1, 1.0, 0.0, 4, 16},
                       Case{0.0, 1.0, 40.0, -30.0, 16, 16}}) {
    const uint64_t seed = fresh_seed();
    torch::manual_seed(seed);
    const int64_t n = 1500;
    const torch::Tensor vt = (torch::randn({1, n}, torch::kDouble) * c.v_scale + c.v_shift).to(torch::kFloat);
    const std::vector<float> v(vt.data_ptr<float>(), vt.data_ptr<float>() + n);
    const std::vector<float> x = shifted_row(v, c.z_re);
    const c10::complex<double> z{c.z_re, c.z_im};
    for (const bool causal : {false, true}) {
      const rbk::BkContext ctx = causal ? rbk::BkContext::Causal : rbk::BkContext::Bidirectional;
      const torch::Tensor ref = rbk::bk_core_diagonal(rbk::laplacian_with_potential(vt.to(torch::kDouble)), z,
                                                        rbk::BkForwardMode::Stable, ctx);
      const auto r = ref.accessor<c10::complex<double>, 2>();
      int64_t restarts = 0;
      const std::vector<C32> G = window_forward_row(x, static_cast<float>(c.z_im), causal, c.items, c.warmup, restarts);
      double num = 0, den = 0;
      bool finite = true;
      for (int64_t j = 0; j < n; ++j) {
        const cd ref_j(r[0][j].real(), r[0][j].imag());
        num += std::norm(cd(G[j].x, G[j].y) - ref_j);
        den += std::norm(ref_j);
        finite = finite && std::isfinite(G[j].x) && std::isfinite(G[j].y);
      }
      const double rel = std::sqrt(num / den);
      std::printf("z=(%.2f,%.2f) v=%.0f N(0,1)%+.0f items=%d warmup=%d %-13s seed=%llu: rel err %.2e, %lld restarts\n", c.z_re,
                  c.z_im, c.v_scale, c.v_shift, c.items, c.warmup, rbk::to_string(ctx).c_str(),
                  static_cast<unsigned long long>(seed), rel, static_cast<long long>(restarts));
      EXPECT_TRUE(finite);
      EXPECT_LE(rel, kRelTol);
      // Warm-up 1 cannot certify a state in one step at Im z = 1: every interior run restarts.
      if (c.warmup == 1) {
        EXPECT_GT(restarts, n / c.items / 2);
      }
    }
  }
}

// The windowed backward of one row as its kernel composes it: one backward_run per run of ITEMS
// positions. Returns dL/da per position.
template <int ITEMS>
std::vector<float> window_backward_row(const std::vector<float>& x, const std::vector<rbk::bk_window::Cf>& gc, float z_im,
                                       bool causal, int warmup, float affine_tol) {
  const int64_t n = static_cast<int64_t>(x.size());
  const float tol = static_cast<float>(rbk::cuda::kBkWindowTol) * z_im;
  std::vector<float> grad(x.size());
  auto x_at = [&](int64_t pos) { return x[static_cast<size_t>(pos)]; };
  auto gc_at = [&](int64_t pos) { return gc[static_cast<size_t>(pos)]; };
  auto out = [&](int64_t pos, float value) { grad[static_cast<size_t>(pos)] = value; };
  for (int64_t s0 = 0; s0 < n; s0 += ITEMS)
    rbk::bk_window::backward_run<ITEMS>(x_at, gc_at, out, s0, n, causal, warmup, z_im, tol, affine_tol);
  return grad;
}

TEST(BkWindow, WindowBackwardMatchesFp64) {
  // The GPU backward's tolerance (tests/gpu/test_bk_cuda.cpp): relative L2 error of dL/dv against
  // the fp64 exact VJP. The truncation is bounded by (16/3) 2^-26 max|g| / eta^2 per position
  // (bk_window_backward.h); the rest is fp32 rounding of contracting recursions.
  constexpr double kRelTol = 1e-5;
  struct Case {
    double z_re, z_im, v_scale, v_shift;
    int warmup;
  };
  for (const Case c : {Case{0.0, 1.0, 1.0, 0.0, 16}, Case{0.0, 1.0, 1.0, 0.0, 1}, Case{-3.0, 0.5, 1.0, 0.0, 16},
                       Case{0.0, 1.0, 0.0, 2.0, 16}, Case{-2.0, 0.25, 1.0, 0.0, 16}, Case{0.5, 0.1, 1.0, 0.0, 16},
                       Case{0.0, 1.0, 40.0, -30.0, 16}}) {
    const uint64_t seed = fresh_seed();
    torch::manual_seed(seed);
    const int64_t n = 1500;
    const torch::Tensor vt = (torch::randn({1, n}, torch::kDouble) * c.v_scale + c.v_shift).to(torch::kFloat);
    const torch::Tensor gt = torch::randn({1, n, 2}, torch::kFloat);
    const std::vector<float> v(vt.data_ptr<float>(), vt.data_ptr<float>() + n);
    const std::vector<float> x = shifted_row(v, c.z_re);
    std::vector<rbk::bk_window::Cf> gc(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) gc[j] = {gt[0][j][0].item<float>(), -gt[0][j][1].item<float>()};
    const c10::complex<double> z{c.z_re, c.z_im};
    const torch::Tensor g = torch::view_as_complex(gt.to(torch::kDouble).contiguous());
    for (const bool causal : {false, true}) {
      const rbk::BkContext ctx = causal ? rbk::BkContext::Causal : rbk::BkContext::Bidirectional;
      const torch::Tensor ref = rbk::bk_core_diagonal_vjp_exact(rbk::laplacian_with_potential(vt.to(torch::kDouble)), z, g, ctx);
      const float eta = static_cast<float>(c.z_im), affine_tol = static_cast<float>(rbk::cuda::kBkWindowAffineTol);
      const std::vector<float> got = window_backward_row<16>(x, gc, eta, causal, c.warmup, affine_tol);
      const std::vector<float> got4 = window_backward_row<4>(x, gc, eta, causal, c.warmup, affine_tol);
      // Without certification (every window kept at its first length): must be worse somewhere,
      // or the test could not tell a certified walk from a lucky one.
      const std::vector<float> uncertified = window_backward_row<16>(x, gc, eta, causal, 1, 1e30f);
      auto rel_err = [&](const std::vector<float>& a) {
        double num = 0, den = 0;
        for (int64_t j = 0; j < n; ++j) {
          const double r = ref[0][j].item<double>();
          num += (a[j] - r) * (a[j] - r);
          den += r * r;
        }
        return std::sqrt(num / den);
      };
      const double e16 = rel_err(got), e4 = rel_err(got4), eu = rel_err(uncertified);
      std::printf("z=(%.2f,%.2f) v=%.0f N(0,1)%+.0f warmup=%d %-13s seed=%llu: rel err %.2e (items 16), %.2e (items 4), "
                  "%.2e uncertified 1-step windows\n",
                  c.z_re, c.z_im, c.v_scale, c.v_shift, c.warmup, rbk::to_string(ctx).c_str(),
                  static_cast<unsigned long long>(seed), e16, e4, eu);
      EXPECT_LE(e16, kRelTol);
      EXPECT_LE(e4, kRelTol);
      if (c.z_im >= 0.5 && c.v_scale <= 1.0) {
        EXPECT_GT(eu, 1e-3);
      }
    }
  }
}

}  // namespace
