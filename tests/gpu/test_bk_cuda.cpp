// CUDA BK-Core kernels against the CPU fp64 stable path (rbk::bk_core_diagonal,
// rbk::bk_core_diagonal_vjp_exact), which the foundation tests hold against dense inverses.
// Claims C01, C17; issue 3. Every case draws fresh v, z and upstream gradients (seed printed),
// poisons the outputs with NaN before the launch and checks every element was written, prints its
// errors, then asserts. Skips where no CUDA device is visible.
#include "rbk/bk_core.h"
#include "rbk/bk_core_autograd.h"

#if defined(RBK_HAVE_CUDA_KERNEL_LIB)
#include "rbk/kernels/bk_scan_launch.h"
#include <cuda_runtime_api.h>
#endif
#if defined(RBK_WITH_CUDA_KERNELS)
#include "rbk/cuda_glue/bk_core_cuda.h"
#endif

#include <gtest/gtest.h>

#include "gpu_test_support.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace {

using torch::Tensor;
using rbk::gpu_test::fresh_seed;

// fp32 kernels vs the fp64 oracle, relative to the reference's norm (and, separately, its largest
// entry). The continued fractions contract (|u|, |w| <= 1/Im z), so rounding does not accumulate
// along a row: a plain fp32 sequential implementation lands at ~1e-7 to 1e-6 for the z drawn here;
// 1e-5 is the acceptance bound and leaves room for the scan's reassociation.
constexpr double kStableRelTol = 1e-5;
// bf16 inputs: the reference is computed from the same bf16-rounded v, so only fp32 arithmetic
// differs; the same bound applies.
constexpr double kBf16RelTol = kStableRelTol;
// Compat kernel vs the CPU compat mode: the same IEEE operations in the same order (no FMA on
// either side), so values agree to the last bit except through hypotf at the |G| <= 50 clip.
constexpr double kCompatRelTol = 1e-6;

struct Draw {
  Tensor v;       // (B, N) float32
  Tensor gfeat;   // (B, N, 2) float32 upstream gradient
  c10::complex<double> z;
  uint64_t seed;
};

Draw draw(int64_t B, int64_t N) {
  Draw d;
  d.seed = fresh_seed();
  torch::manual_seed(d.seed);
  std::mt19937_64 rng(d.seed);
  std::uniform_real_distribution<double> scale(0.5, 3.0), zre(-3.0, 1.0), zim(0.5, 1.5);
  d.v = (torch::randn({B, N}, torch::kDouble) * scale(rng)).to(torch::kFloat);
  d.gfeat = torch::randn({B, N, 2}, torch::kFloat);
  d.z = {zre(rng), zim(rng)};
  return d;
}

struct Err {
  double rel_l2;
  double rel_max;
};
Err rel_error(const Tensor& got, const Tensor& ref) {
  const Tensor g = got.to(torch::kDouble), r = ref.to(torch::kDouble);
  const double rn = r.norm().item<double>(), rm = r.abs().max().item<double>();
  return {(g - r).norm().item<double>() / std::max(rn, 1e-300), (g - r).abs().max().item<double>() / std::max(rm, 1e-300)};
}

Tensor reference_features(const Tensor& v, c10::complex<double> z, rbk::BkContext ctx) {
  const Tensor G = rbk::bk_core_diagonal(rbk::laplacian_with_potential(v.to(torch::kDouble)), z,
                                           rbk::BkForwardMode::Stable, ctx);
  return torch::view_as_real(G).contiguous();
}
Tensor reference_grad(const Tensor& v, c10::complex<double> z, const Tensor& gfeat, rbk::BkContext ctx) {
  const Tensor g = torch::view_as_complex(gfeat.to(torch::kDouble).contiguous());
  return rbk::bk_core_diagonal_vjp_exact(rbk::laplacian_with_potential(v.to(torch::kDouble)), z, g, ctx);
}

#if defined(RBK_HAVE_CUDA_KERNEL_LIB)

using rbk::gpu_test::DevBuf;
using rbk::gpu_test::have_device;
using rbk::gpu_test::to_device;

#define RBK_CUDA_OK(expr)                                                               \
  do {                                                                                  \
    const cudaError_t rbk_e_ = (expr);                                                  \
    ASSERT_EQ(rbk_e_, cudaSuccess) << #expr << ": " << cudaGetErrorString(rbk_e_);      \
  } while (0)

// Forward (and backward) choices of the launcher (BkScanParams); defaults = what the model gets.
struct FwdChoice {
  rbk::cuda::BkForwardAlgorithm algorithm = rbk::cuda::BkForwardAlgorithm::Auto;
  int forward_threads = 0;
  int window_items = 0;
  int window_warmup = 0;
  rbk::cuda::BkBackwardAlgorithm backward = rbk::cuda::BkBackwardAlgorithm::Auto;
  std::string name() const {
    using A = rbk::cuda::BkForwardAlgorithm;
    const std::string a = algorithm == A::Auto ? "auto" : algorithm == A::Scan ? "scan" : "window";
    return a + " threads=" + std::to_string(forward_threads) + " items=" + std::to_string(window_items) +
           " warmup=" + std::to_string(window_warmup);
  }
};

// Runs the raw launcher; out is poisoned with NaN (all bits set) first. Returns (B, N, 2) or (B, N).
Tensor run_stable(const Tensor& v_in, c10::complex<double> z, bool causal, bool backward, const Tensor* gfeat,
                  rbk::cuda::InputType type, const FwdChoice& choice = {}) {
  const int64_t B = v_in.size(0), N = v_in.size(1);
  auto dv = to_device(v_in);
  std::unique_ptr<DevBuf> dg;
  if (backward) dg = to_device(*gfeat);
  const int64_t out_numel = backward ? B * N : B * N * 2;
  DevBuf out(out_numel * sizeof(float));
  DevBuf ws(rbk::cuda::bk_stable_workspace_bytes(B, N));
  EXPECT_TRUE(dv->p && out.p && (ws.bytes == 0 || ws.p)) << "cudaMalloc failed";
  EXPECT_EQ(cudaMemset(out.p, 0xff, out.bytes), cudaSuccess);
  rbk::cuda::BkScanParams p;
  p.diag = dv->p;
  p.diag_type = type;
  p.grad_features = backward ? dg->f() : nullptr;
  p.out = out.f();
  p.batch = B;
  p.n = N;
  p.z_re = z.real();
  p.z_im = z.imag();
  p.causal = causal;
  p.workspace = ws.p;
  p.forward_threads = choice.forward_threads;
  p.forward_algorithm = choice.algorithm;
  p.window_items = choice.window_items;
  p.window_warmup = choice.window_warmup;
  p.backward_algorithm = choice.backward;
  const cudaError_t e = backward ? rbk::cuda::launch_bk_stable_backward(p, nullptr) : rbk::cuda::launch_bk_stable_forward(p, nullptr);
  EXPECT_EQ(e, cudaSuccess) << cudaGetErrorString(e);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess) << cudaGetErrorString(cudaGetLastError());
  Tensor host = backward ? torch::empty({B, N}, torch::kFloat) : torch::empty({B, N, 2}, torch::kFloat);
  EXPECT_EQ(cudaMemcpy(host.data_ptr(), out.p, out.bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  return host;
}

class StableKernel : public ::testing::TestWithParam<std::tuple<int64_t, int64_t>> {};

TEST_P(StableKernel, ForwardAndExactGradientMatchFp64) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  const auto [B, N] = GetParam();
  const Draw d = draw(B, N);
  using A = rbk::cuda::BkForwardAlgorithm;
  for (const auto ctx : {rbk::BkContext::Bidirectional, rbk::BkContext::Causal}) {
    const bool causal = ctx == rbk::BkContext::Causal;
    const Tensor fref = reference_features(d.v, d.z, ctx);
    const Tensor f = run_stable(d.v, d.z, causal, false, nullptr, rbk::cuda::InputType::Float32);
    // The scan backward explicitly: Auto resolves to the Window backward for these z (Im z >= 0.5),
    // which the loop below checks.
    FwdChoice scan_backward;
    scan_backward.backward = rbk::cuda::BkBackwardAlgorithm::Scan;
    const Tensor g = run_stable(d.v, d.z, causal, true, &d.gfeat, rbk::cuda::InputType::Float32, scan_backward);
    const bool f_written = torch::isfinite(f).all().item<bool>();
    const bool g_written = torch::isfinite(g).all().item<bool>();
    const Err ef = rel_error(f, fref);
    const Err eg = rel_error(g, reference_grad(d.v, d.z, d.gfeat, ctx));
    std::printf("B=%lld N=%lld %-13s z=(%.3f,%.3f) seed=%llu  fwd rel_l2=%.2e rel_max=%.2e  grad rel_l2=%.2e rel_max=%.2e\n",
                static_cast<long long>(B), static_cast<long long>(N), rbk::to_string(ctx).c_str(), d.z.real(), d.z.imag(),
                static_cast<unsigned long long>(d.seed), ef.rel_l2, ef.rel_max, eg.rel_l2, eg.rel_max);
    EXPECT_TRUE(f_written) << "forward left unwritten (NaN-poisoned) or non-finite outputs";
    EXPECT_TRUE(g_written) << "backward left unwritten (NaN-poisoned) or non-finite outputs";
    EXPECT_LE(ef.rel_l2, kStableRelTol);
    EXPECT_LE(ef.rel_max, kStableRelTol);
    EXPECT_LE(eg.rel_l2, kStableRelTol);
    EXPECT_LE(eg.rel_max, kStableRelTol);
    // Every other forward algorithm and shape computes the same function; warm-up 1 sends every
    // thread of the window kernel through its restarts (walks of 2, 4, 8, ... positions).
    for (const FwdChoice c : {FwdChoice{A::Scan, 256}, FwdChoice{A::Scan, 512}, FwdChoice{A::Window, 0, 4},
                              FwdChoice{A::Window, 0, 16}, FwdChoice{A::Window, 0, 32}, FwdChoice{A::Window, 0, 4, 1},
                              FwdChoice{A::Window, 0, 16, 3}, FwdChoice{A::Window, 0, 32, 2}}) {
      const Tensor fc = run_stable(d.v, d.z, causal, false, nullptr, rbk::cuda::InputType::Float32, c);
      const Err ec = rel_error(fc, fref);
      std::printf("   forward %-36s rel_l2=%.2e rel_max=%.2e\n", c.name().c_str(), ec.rel_l2, ec.rel_max);
      EXPECT_TRUE(torch::isfinite(fc).all().item<bool>()) << c.name();
      EXPECT_LE(ec.rel_l2, kStableRelTol) << c.name();
      EXPECT_LE(ec.rel_max, kStableRelTol) << c.name();
    }
    // The Window backward (issue 25) with its first window of 16 and of 1 (every run restarts),
    // and what Auto picks (warmup -1 below: the default, the model's).
    const Tensor gref = reference_grad(d.v, d.z, d.gfeat, ctx);
    for (const int warmup : {0, 1, -1}) {
      FwdChoice c;
      c.backward = warmup < 0 ? rbk::cuda::BkBackwardAlgorithm::Auto : rbk::cuda::BkBackwardAlgorithm::Window;
      c.window_warmup = std::max(warmup, 0);
      const Tensor gw = run_stable(d.v, d.z, causal, true, &d.gfeat, rbk::cuda::InputType::Float32, c);
      const Err ew = rel_error(gw, gref);
      const std::string what = "window backward, warmup " + std::to_string(warmup);
      std::printf("   %s rel_l2=%.2e rel_max=%.2e\n", what.c_str(), ew.rel_l2, ew.rel_max);
      EXPECT_TRUE(torch::isfinite(gw).all().item<bool>()) << what;
      EXPECT_LE(ew.rel_l2, kStableRelTol) << what;
      EXPECT_LE(ew.rel_max, kStableRelTol) << what;
    }
  }
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<int64_t, int64_t>>& info) {
  return "B" + std::to_string(std::get<0>(info.param)) + "_N" + std::to_string(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(BkCuda, StableKernel,
                         ::testing::Combine(::testing::Values<int64_t>(1, 3, 16, 64),
                                            ::testing::Values<int64_t>(1, 2, 3, 31, 32, 33, 1000, 4096, 65537, 1 << 20)),
                         case_name);

TEST(BkCudaBf16, ForwardAndGradientFromBf16Input) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  for (const int64_t N : {33, 4096, 10000}) {
    const Draw d = draw(5, N);
    const Tensor vb = d.v.to(torch::kBFloat16);
    const Tensor vr = vb.to(torch::kFloat);  // the values the kernel actually sees
    const Tensor f = run_stable(vb, d.z, false, false, nullptr, rbk::cuda::InputType::BFloat16);
    FwdChoice scan;
    scan.backward = rbk::cuda::BkBackwardAlgorithm::Scan;
    const Tensor g = run_stable(vb, d.z, false, true, &d.gfeat, rbk::cuda::InputType::BFloat16, scan);
    FwdChoice window;
    window.backward = rbk::cuda::BkBackwardAlgorithm::Window;
    const Tensor gw = run_stable(vb, d.z, false, true, &d.gfeat, rbk::cuda::InputType::BFloat16, window);
    const Err ef = rel_error(f, reference_features(vr, d.z, rbk::BkContext::Bidirectional));
    const Tensor gref = reference_grad(vr, d.z, d.gfeat, rbk::BkContext::Bidirectional);
    const Err eg = rel_error(g, gref), egw = rel_error(gw, gref);
    std::printf("bf16 N=%lld seed=%llu fwd rel_l2=%.2e grad rel_l2=%.2e (window backward %.2e)\n",
                static_cast<long long>(N), static_cast<unsigned long long>(d.seed), ef.rel_l2, eg.rel_l2, egw.rel_l2);
    EXPECT_TRUE(torch::isfinite(f).all().item<bool>());
    EXPECT_LE(ef.rel_l2, kBf16RelTol);
    EXPECT_LE(eg.rel_l2, kBf16RelTol);
    EXPECT_LE(egw.rel_l2, kBf16RelTol);
  }
}

// Long rows of strongly negative potential: the un-scaled continuants would pass 1e38 within a
// few dozen positions; the scan must stay finite and accurate at any N.
TEST(BkCudaOverflow, LargePotentialLongRowStaysFinite) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  const int64_t B = 2, N = 3 * rbk::cuda::kBkTileSize + 17;
  Draw d = draw(B, N);
  d.v = (d.v * 40.0 - 30.0).contiguous();
  const Tensor f = run_stable(d.v, d.z, false, false, nullptr, rbk::cuda::InputType::Float32);
  const Err ef = rel_error(f, reference_features(d.v, d.z, rbk::BkContext::Bidirectional));
  std::printf("large |v|: seed=%llu rel_l2=%.2e rel_max=%.2e\n", static_cast<unsigned long long>(d.seed), ef.rel_l2, ef.rel_max);
  EXPECT_TRUE(torch::isfinite(f).all().item<bool>());
  EXPECT_LE(ef.rel_l2, kStableRelTol);
}

// The window algorithm where its discs contract slowly: Im z at and below the Auto threshold, z
// inside the band of H0 ([-4, 0]) and a constant v = 2 + Re z (pivots near -i: the slowest case at
// z = i, where every thread needs more than the first 16-position walk). Explicitly requested, it
// stays exact (it only walks further back); Auto sends Im z < kBkWindowMinImZ to the scan.
TEST(BkCudaWindow, SlowContractionStaysAccurate) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  using A = rbk::cuda::BkForwardAlgorithm;
  struct Case {
    c10::complex<double> z;
    bool constant_v;
  };
  for (const Case c : {Case{{-3.0, 0.5}, false}, Case{{-2.0, 0.25}, false}, Case{{0.0, 0.1}, false}, Case{{0.0, 1.0}, true},
                       Case{{-1.0, 0.5}, true}}) {
    const int64_t B = 3, N = 5000;
    Draw d = draw(B, N);
    if (c.constant_v) d.v = torch::full({B, N}, 2.0 + c.z.real());
    for (const auto ctx : {rbk::BkContext::Bidirectional, rbk::BkContext::Causal}) {
      const bool causal = ctx == rbk::BkContext::Causal;
      const Tensor fref = reference_features(d.v, c.z, ctx);
      for (const FwdChoice ch : {FwdChoice{A::Window, 0, 4}, FwdChoice{A::Window, 0, 16}, FwdChoice{A::Window, 0, 32},
                                 FwdChoice{A::Auto}}) {
        const Tensor f = run_stable(d.v, c.z, causal, false, nullptr, rbk::cuda::InputType::Float32, ch);
        const Err e = rel_error(f, fref);
        std::printf("window z=(%.2f,%.2f) %s %-13s %-34s seed=%llu rel_l2=%.2e rel_max=%.2e\n", c.z.real(), c.z.imag(),
                    c.constant_v ? "v=2+Re z" : "random v", rbk::to_string(ctx).c_str(), ch.name().c_str(),
                    static_cast<unsigned long long>(d.seed), e.rel_l2, e.rel_max);
        EXPECT_TRUE(torch::isfinite(f).all().item<bool>());
        EXPECT_LE(e.rel_l2, kStableRelTol);
        EXPECT_LE(e.rel_max, kStableRelTol);
      }
      // The Window backward where its affine windows contract slowly too (its walks then reach
      // past the shared-memory halo into global memory).
      const Tensor gref = reference_grad(d.v, c.z, d.gfeat, ctx);
      FwdChoice window;
      window.backward = rbk::cuda::BkBackwardAlgorithm::Window;
      const Tensor gw = run_stable(d.v, c.z, causal, true, &d.gfeat, rbk::cuda::InputType::Float32, window);
      const Err eg = rel_error(gw, gref);
      std::printf("window backward z=(%.2f,%.2f) %s %-13s rel_l2=%.2e rel_max=%.2e\n", c.z.real(), c.z.imag(),
                  c.constant_v ? "v=2+Re z" : "random v", rbk::to_string(ctx).c_str(), eg.rel_l2, eg.rel_max);
      EXPECT_TRUE(torch::isfinite(gw).all().item<bool>()) << window.name();
      EXPECT_LE(eg.rel_l2, kStableRelTol) << window.name();
      EXPECT_LE(eg.rel_max, kStableRelTol) << window.name();
    }
  }
  // Auto's choices, forward and backward alike: the window in Laplacian mode at Im z >= 0.5, else the scan.
  using BA = rbk::cuda::BkBackwardAlgorithm;
  rbk::cuda::BkScanParams p;
  p.z_im = 0.49;
  EXPECT_EQ(rbk::cuda::bk_resolve_forward_algorithm(p), A::Scan);
  EXPECT_EQ(rbk::cuda::bk_resolve_backward_algorithm(p), BA::Scan);
  p.z_im = 0.5;
  EXPECT_EQ(rbk::cuda::bk_resolve_forward_algorithm(p), A::Window);
  EXPECT_EQ(rbk::cuda::bk_resolve_backward_algorithm(p), BA::Window);
  DevBuf buf(64);
  p.upper = buf.f();  // general mode: the scan
  p.lower = buf.f();
  EXPECT_EQ(rbk::cuda::bk_resolve_forward_algorithm(p), A::Scan);
  EXPECT_EQ(rbk::cuda::bk_resolve_backward_algorithm(p), BA::Scan);
}

TEST(BkCudaLaunch, RejectsBadParameters) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  rbk::cuda::BkScanParams p;  // null pointers, B = N = 0
  EXPECT_EQ(rbk::cuda::launch_bk_stable_forward(p, nullptr), cudaErrorInvalidValue);
  DevBuf buf(64);
  p.diag = buf.p;
  p.out = buf.f();
  p.batch = 1;
  p.n = 4;
  p.z_im = 0.0;  // on the real axis: G is not defined
  EXPECT_EQ(rbk::cuda::launch_bk_stable_forward(p, nullptr), cudaErrorInvalidValue);
  p.z_im = 1.0;
  EXPECT_EQ(rbk::cuda::launch_bk_stable_backward(p, nullptr), cudaErrorInvalidValue);  // no grad_features
  p.window_items = 8;  // only 4, 16 or 32
  EXPECT_EQ(rbk::cuda::launch_bk_stable_forward(p, nullptr), cudaErrorInvalidValue);
  p.window_items = 0;
  p.window_warmup = rbk::cuda::kBkWindowWarmup + 1;  // longer than the shared-memory halo
  EXPECT_EQ(rbk::cuda::launch_bk_stable_forward(p, nullptr), cudaErrorInvalidValue);
  p.window_warmup = 0;
  p.upper = buf.f();  // general mode has no window algorithm
  p.lower = buf.f();
  p.forward_algorithm = rbk::cuda::BkForwardAlgorithm::Window;
  EXPECT_EQ(rbk::cuda::launch_bk_stable_forward(p, nullptr), cudaErrorInvalidValue);
  p.grad_features = buf.f();  // the Window backward: Laplacian mode only, warm-up within its halo
  p.backward_algorithm = rbk::cuda::BkBackwardAlgorithm::Window;
  EXPECT_EQ(rbk::cuda::launch_bk_stable_backward(p, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(rbk::cuda::launch_bk_window_backward(p, nullptr), cudaErrorInvalidValue);
  p.upper = p.lower = nullptr;
  p.window_warmup = rbk::cuda::kBkWindowWarmup + 1;
  EXPECT_EQ(rbk::cuda::launch_bk_stable_backward(p, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(rbk::cuda::launch_bk_window_backward(p, nullptr), cudaErrorInvalidValue);
  p.window_warmup = 0;  // within its halo: accepted
  EXPECT_EQ(rbk::cuda::launch_bk_window_backward(p, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

// The compat kernel reproduces the CPU compat mode (fp32 theta/phi + sanitiser), overflow and all.
TEST(BkCudaCompat, TritonLikeKernelMatchesCpuCompatMode) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  struct Case {
    int64_t B, N;
    bool laplacian;
    c10::complex<double> z;
  };
  // Laplacian + v at z = i below and past the fp32 overflow (~64), and the 185x benchmark's shape
  // (random a, b, c ~ N(0, 1), z = 0.1 + 0.1i, B = 16, N = 4096).
  for (const Case c : {Case{4, 16, true, {0, 1}}, Case{4, 48, true, {0, 1}}, Case{4, 80, true, {0, 1}},
                       Case{3, 300, true, {0, 1}}, Case{16, 4096, false, {0.1, 0.1}}}) {
    const uint64_t seed = fresh_seed();
    torch::manual_seed(seed);
    rbk::Tridiagonal h;
    if (c.laplacian) {
      h = rbk::laplacian_with_potential(torch::rand({c.B, c.N}) * 2.0 - 1.0);
    } else {
      h = {torch::randn({c.B, c.N}), torch::randn({c.B, c.N - 1}), torch::randn({c.B, c.N - 1})};
    }
    const Tensor ref = torch::view_as_real(rbk::bk_core_diagonal(h, c.z, rbk::BkForwardMode::CompatPapertimeTriton,
                                                                   rbk::BkContext::Bidirectional,
                                                                   rbk::CompatExecution::ScalarLoop)).contiguous();
    auto da = to_device(h.diag), db = to_device(h.upper), dc = to_device(h.lower);
    DevBuf theta(c.B * (c.N + 1) * 2 * sizeof(float)), phi(c.B * (c.N + 1) * 2 * sizeof(float)), out(c.B * c.N * 2 * sizeof(float));
    RBK_CUDA_OK(cudaMemset(out.p, 0xff, out.bytes));
    RBK_CUDA_OK(rbk::cuda::launch_bk_compat_triton_like(da->f(), db->f(), dc->f(), c.B, c.N, c.z.real(), c.z.imag(),
                                                        theta.f(), phi.f(), out.f(), nullptr));
    RBK_CUDA_OK(cudaDeviceSynchronize());
    Tensor got = torch::empty({c.B, c.N, 2});
    RBK_CUDA_OK(cudaMemcpy(got.data_ptr(), out.p, out.bytes, cudaMemcpyDeviceToHost));
    const double zero_gpu = (got.abs().sum(-1) == 0).to(torch::kDouble).mean().item<double>();
    const double zero_cpu = (ref.abs().sum(-1) == 0).to(torch::kDouble).mean().item<double>();
    const double diff = (got - ref).abs().max().item<double>();
    const double scale = std::max(1.0, ref.abs().max().item<double>());
    std::printf("compat B=%lld N=%lld %s seed=%llu zeros gpu=%.4f cpu=%.4f max|diff|=%.2e\n", static_cast<long long>(c.B),
                static_cast<long long>(c.N), c.laplacian ? "laplacian" : "random-abc", static_cast<unsigned long long>(seed),
                zero_gpu, zero_cpu, diff);
    EXPECT_TRUE(torch::isfinite(got).all().item<bool>()) << "unwritten or non-finite compat output";
    EXPECT_EQ(zero_gpu, zero_cpu);
    EXPECT_LE(diff, kCompatRelTol * scale);
  }
}

#else  // no nvcc at configure time: nothing to run

TEST(BkCuda, KernelsNotBuilt) { GTEST_SKIP() << "built without nvcc: no CUDA BK-Core kernels"; }

#endif

#if defined(RBK_WITH_CUDA_KERNELS)

bool torch_cuda() { return torch::cuda::is_available(); }

// The LibTorch entry points and the autograd dispatch (foundation's bk_core_features) on CUDA.
TEST(BkCudaTorch, DispatchGeneralTridiagonalAndAutograd) {
  if (!torch_cuda()) GTEST_SKIP() << "no CUDA device";
  for (const int64_t N : {1, 37, 4096, 9000}) {
    const Draw d = draw(3, N);
    // General symmetric-positive couplings b, c in [0.5, 1.5] (not the Laplacian's ones).
    const Tensor b = torch::rand({3, N - 1}) + 0.5, c = torch::rand({3, N - 1}) + 0.5;
    const rbk::Tridiagonal h{d.v - 2.0, b, c};
    const rbk::Tridiagonal h64{h.diag.to(torch::kDouble), b.to(torch::kDouble), c.to(torch::kDouble)};
    const rbk::Tridiagonal hc{h.diag.cuda(), b.cuda(), c.cuda()};
    for (const auto ctx : {rbk::BkContext::Bidirectional, rbk::BkContext::Causal}) {
      const Tensor G = rbk::bk_core_diagonal(hc, d.z, rbk::BkForwardMode::Stable, ctx).cpu();
      const Tensor Gref = rbk::bk_core_diagonal(h64, d.z, rbk::BkForwardMode::Stable, ctx);
      const Tensor gg = torch::view_as_complex(d.gfeat.contiguous());
      const Tensor J = rbk::bk_core_diagonal_vjp_exact(hc, d.z, gg.cuda(), ctx).cpu();
      const Tensor Jref = rbk::bk_core_diagonal_vjp_exact(h64, d.z, gg.to(torch::kComplexDouble), ctx);
      const Err e1 = rel_error(torch::view_as_real(G), torch::view_as_real(Gref));
      const Err e2 = rel_error(J, Jref);
      std::printf("torch general N=%lld %s fwd %.2e grad %.2e\n", static_cast<long long>(N), rbk::to_string(ctx).c_str(),
                  e1.rel_l2, e2.rel_l2);
      EXPECT_EQ(G.scalar_type(), torch::kComplexFloat);
      EXPECT_LE(e1.rel_l2, kStableRelTol);
      EXPECT_LE(e2.rel_l2, kStableRelTol);
    }
    // Autograd through the foundation's wrapper (the v-only kernels on CUDA): CUDA forward + exact
    // CUDA backward, both contexts.
    for (const auto ctx : {rbk::BkContext::Bidirectional, rbk::BkContext::Causal}) {
      rbk::BkCoreOptions o;
      o.z = d.z;
      o.context = ctx;
      const Tensor vg = d.v.cuda().requires_grad_(true);
      const Tensor feats = rbk::bk_core_features(vg, o);
      feats.backward(d.gfeat.cuda());
      const Err ea = rel_error(feats.detach().cpu(), reference_features(d.v, d.z, ctx));
      const Err eb = rel_error(vg.grad().cpu(), reference_grad(d.v, d.z, d.gfeat, ctx));
      std::printf("autograd N=%lld %s fwd %.2e grad %.2e\n", static_cast<long long>(N), rbk::to_string(ctx).c_str(),
                  ea.rel_l2, eb.rel_l2);
      EXPECT_LE(ea.rel_l2, kStableRelTol);
      EXPECT_LE(eb.rel_l2, kStableRelTol);
    }
    // A hybrid (upstream) gradient on CUDA is the same element-wise formula as on the CPU, applied to
    // the kernel's G: it must agree with the CPU float32 run to the forward's tolerance.
    {
      rbk::BkCoreOptions o;
      o.z = d.z;
      o.gradient = rbk::BkGradientMode::PapertimeHybrid;
      const Tensor vg = d.v.cuda().requires_grad_(true), vc = d.v.clone().requires_grad_(true);
      rbk::bk_core_features(vg, o).backward(d.gfeat.cuda());
      rbk::bk_core_features(vc, o).backward(d.gfeat);
      const Err eh = rel_error(vg.grad().cpu(), vc.grad());
      std::printf("autograd hybrid N=%lld cuda vs cpu %.2e\n", static_cast<long long>(N), eh.rel_l2);
      EXPECT_LE(eh.rel_l2, kStableRelTol);
    }
    // The v-only fast path.
    const Tensor fv = rbk::cuda::bk_core_features_cuda(d.v.cuda(), d.z, rbk::BkContext::Bidirectional).cpu();
    const Tensor gv = rbk::cuda::bk_core_features_vjp_cuda(d.v.cuda(), d.z, d.gfeat.cuda(), rbk::BkContext::Bidirectional).cpu();
    EXPECT_LE(rel_error(fv, reference_features(d.v, d.z, rbk::BkContext::Bidirectional)).rel_l2, kStableRelTol);
    EXPECT_LE(rel_error(gv, reference_grad(d.v, d.z, d.gfeat, rbk::BkContext::Bidirectional)).rel_l2, kStableRelTol);
  }
}

TEST(BkCudaTorch, BadInputsGiveClearErrors) {
  if (!torch_cuda()) GTEST_SKIP() << "no CUDA device";
  const Tensor v = torch::randn({2, 8}).cuda();
  EXPECT_THROW(rbk::cuda::bk_core_features_cuda(v.cpu(), {0, 1}, rbk::BkContext::Bidirectional), c10::Error);
  EXPECT_THROW(rbk::cuda::bk_core_features_cuda(v, {0, -1}, rbk::BkContext::Bidirectional), c10::Error);
  EXPECT_THROW(rbk::cuda::bk_core_features_vjp_cuda(v, {0, 1}, torch::randn({2, 8}).cuda(), rbk::BkContext::Bidirectional),
               c10::Error);
}

#endif

}  // namespace
