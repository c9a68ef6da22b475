// Mamba-1 selective-scan CUDA kernel (issue 7, baselines) against the fp64 LibTorch reference
// (rbk::selective_scan_reference, itself held against a scalar loop and finite differences in
// tests/baselines/test_mamba.cpp): the forward and every gradient (u, delta, A, B, C, D, z,
// delta_bias) with one upstream gradient, over shapes with L not a multiple of the tile or chunk,
// L = 1, Dm not a multiple of the block's 32 channels, Bt in {1, 3}, N in {4, 5, 8, 16}, with and
// without z / D, delta_bias and softplus. Every kernel variant (SelectiveScanParams::variant) is
// held to the same rule: the default through the entry point (glue + autograd Function), and the
// sequential and runs variants through the raw launchers. Outputs of the raw launchers are
// poisoned with NaN and checked fully written. Fresh inputs every run (seed printed); diffs are
// printed, then asserted.
// Skips where no CUDA device is visible (and where this build has no CUDA kernels).
#include "rbk/mamba_lm.h"
#include "rbk/selective_scan.h"
#include "rbk/tensor_metrics.h"
#include "rbk/torch_compat.h"

#if defined(RBK_WITH_CUDA_KERNELS)
#include "rbk/cuda_glue/selective_scan_rig.h"
#include "rbk/kernels/selective_scan_launch.h"
#include <ATen/cuda/CUDAContext.h>
#include <cuda_runtime_api.h>
#endif

#include <gtest/gtest.h>

#include "gpu_test_support.h"

#include <cstdio>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace {

using torch::Tensor;
using rbk::gpu_test::fresh_seed;

// Tolerance rule (house style, after flash-attention): the kernel's relative L2 error against the
// fp64 reference may be at most kErrFactor times the error of the plain fp32 reference (same
// inputs, LibTorch fp32 on the CPU) plus a floor. The factor allows a different but equally stable
// summation order (sequential over L in registers, a shuffle tree over states and channels); the
// floor covers cases where the fp32 reference happens to be unusually exact: fp32 rounding of one
// step is ~6e-8 and sums run over up to Bt L ~ 3000 terms, sqrt(3000) * 6e-8 ~ 3e-6.
constexpr double kErrFactor = 4.0;
constexpr double kOutFloor = 2e-6;
constexpr double kGradFloor = 1e-5;
// bf16 inputs: the reference sees the same bf16-rounded values, so only fp32 arithmetic and the
// bf16 rounding of the output (8-bit mantissa, 2^-9 ~ 2e-3 relative) differ.
constexpr double kBf16OutTol = 4e-3;

bool have_device() { return rbk::cuda_available(); }

struct Case {
  int64_t Bt, Dm, L, N;
  bool with_z;  // z and D together (the model uses both)
  bool with_bias;
  bool softplus;
};

std::string case_name(const Case& c) {
  return "Bt" + std::to_string(c.Bt) + "_Dm" + std::to_string(c.Dm) + "_L" + std::to_string(c.L) + "_N" +
         std::to_string(c.N) + (c.with_z ? "_z" : "_noz") + (c.with_bias ? "_bias" : "_nobias") +
         (c.softplus ? "_softplus" : "_raw");
}

// GoogleTest prints parameters in test listings: the name, not the struct's bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << case_name(c); }

// Inputs in fp64 on the CPU, in the regime the model produces.
std::vector<Tensor> draw(const Case& c) {
  const auto o = torch::TensorOptions().dtype(torch::kDouble);
  std::vector<Tensor> t(8);
  t[0] = torch::randn({c.Bt, c.Dm, c.L}, o);                            // u
  t[1] = c.softplus ? torch::randn({c.Bt, c.Dm, c.L}, o) * 0.5 - 1.0     // delta (pre-softplus)
                    : torch::rand({c.Bt, c.Dm, c.L}, o) * 0.1;          // delta (already a step)
  t[2] = -(torch::rand({c.Dm, c.N}, o) * 3.0 + 0.5);                    // A
  t[3] = torch::randn({c.Bt, c.N, c.L}, o);                             // B
  t[4] = torch::randn({c.Bt, c.N, c.L}, o);                             // C
  if (c.with_z) {
    t[5] = torch::randn({c.Dm}, o);                                     // D
    t[6] = torch::randn({c.Bt, c.Dm, c.L}, o);                          // z
  }
  if (c.with_bias) t[7] = c.softplus ? torch::randn({c.Dm}, o) * 0.5 - 2.0 : torch::rand({c.Dm}, o) * 0.01;
  return t;
}

const char* kNames[8] = {"u", "delta", "A", "B", "C", "D", "z", "delta_bias"};

// Which kernels a case runs: the default through rbk::selective_scan, or one variant's raw launchers.
// The raw paths' values are those of rbk::cuda::SsVariant (rbk/kernels/selective_scan_launch.h).
enum Path : int {
  kEntryPointDefault = 0,
  kRawSequential = 1,
  kRawRuns = 5
};
const char* path_name(int path) {
  switch (path) {
    case kEntryPointDefault: return "entry_default";
    case kRawSequential: return "variant_sequential";
    default: return "variant_runs";
  }
}

// out and the 8 gradients (undefined where the input is undefined) of sum(out * w).
std::vector<Tensor> run(const std::vector<Tensor>& in, const Tensor& w, const Case& c, torch::Dtype dt,
                        torch::Device dev, rbk::SelectiveScanImpl impl) {
  std::vector<Tensor> x(8);
  for (int i = 0; i < 8; ++i)
    if (in[i].defined()) x[i] = in[i].to(dev, dt).detach().requires_grad_(true);
  const Tensor out = rbk::selective_scan(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], c.softplus, impl);
  (out * w.to(dev, out.scalar_type())).sum().backward();
  std::vector<Tensor> r{out.detach().cpu()};
  for (int i = 0; i < 8; ++i) r.push_back(x[i].defined() ? x[i].grad().cpu() : Tensor());
  return r;
}

#if defined(RBK_WITH_CUDA_KERNELS)
// out and the 8 gradients of sum(out * w) (undefined where the input is undefined) from one
// variant's raw launchers with dout = w; the per-batch-row partials of dA, dD, ddelta_bias are
// summed over Bt as the glue does. Every output (and the workspace) is NaN-poisoned first, so an
// element the kernels miss shows up as non-finite.
std::vector<Tensor> run_launchers(const std::vector<Tensor>& in, const Tensor& w, const Case& c,
                                  rbk::cuda::SsVariant variant) {
  rbk::cuda::SelectiveScanTensors t = rbk::cuda::selective_scan_rig_tensors(in, w, torch::kCUDA, NAN);
  const rbk::cuda::SelectiveScanParams p = rbk::cuda::selective_scan_params(t, c.softplus, variant);
  const cudaStream_t s = at::cuda::getCurrentCUDAStream();
  const char* name = rbk::cuda::selective_scan_variant_name(variant);
  EXPECT_EQ(rbk::cuda::launch_selective_scan_forward(p, s), cudaSuccess) << name;
  EXPECT_EQ(rbk::cuda::launch_selective_scan_backward(p, s), cudaSuccess) << name;
  EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess) << name;
  const int64_t bad_states = (~torch::isfinite(t.chunk_states)).sum().item<int64_t>();
  EXPECT_EQ(bad_states, 0) << "chunk_states not fully written";
  return {t.out.cpu(),
          t.du.cpu(),
          t.ddelta.cpu(),
          t.dA_part.sum(0).cpu(),
          t.dB.cpu(),
          t.dC.cpu(),
          t.dD_part.defined() ? t.dD_part.sum(0).cpu() : Tensor(),
          t.dz.defined() ? t.dz.cpu() : Tensor(),
          t.ddelta_bias_part.defined() ? t.ddelta_bias_part.sum(0).cpu() : Tensor()};
}
#endif

class SelectiveScanKernel : public ::testing::TestWithParam<std::tuple<Case, int>> {};

TEST_P(SelectiveScanKernel, ForwardAndEveryGradientMatchFp64) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  const Case c = std::get<0>(GetParam());
  const int path = std::get<1>(GetParam());
#if !defined(RBK_WITH_CUDA_KERNELS)
  if (path != kEntryPointDefault) GTEST_SKIP() << "raw launchers need a build with CUDA kernels";
#endif
  const uint64_t seed = fresh_seed();
  torch::manual_seed(seed);
  const auto in = draw(c);
  const Tensor w = torch::randn({c.Bt, c.Dm, c.L}, torch::kDouble);
  const auto ref = run(in, w, c, torch::kDouble, torch::kCPU, rbk::SelectiveScanImpl::Reference);
  const auto f32 = run(in, w, c, torch::kFloat, torch::kCPU, rbk::SelectiveScanImpl::Reference);
  std::vector<Tensor> ker;
  if (path == kEntryPointDefault) {
    ker = run(in, w, c, torch::kFloat, torch::kCUDA, rbk::SelectiveScanImpl::Kernel);
  } else {
#if defined(RBK_WITH_CUDA_KERNELS)
    using rbk::cuda::SsVariant;
    static_assert(kRawSequential == static_cast<int>(SsVariant::Sequential) &&
                      kRawRuns == static_cast<int>(SsVariant::Runs),
                  "raw paths are variant ids");
    ker = run_launchers(in, w, c, static_cast<SsVariant>(path));
#endif
  }
  std::printf("%s %s seed %llu\n", case_name(c).c_str(), path_name(path), (unsigned long long)seed);
  for (int i = 0; i < 9; ++i) {
    if (!ref[i].defined()) {
      EXPECT_FALSE(ker[i].defined()) << (i ? kNames[i - 1] : "out");
      continue;
    }
    ASSERT_TRUE(ker[i].defined()) << (i ? kNames[i - 1] : "out");
    ASSERT_EQ(ker[i].sizes(), ref[i].sizes());
    const double ek = rbk::relative_l2_error(ker[i], ref[i]), e32 = rbk::relative_l2_error(f32[i], ref[i]);
    const double tol = rbk::error_bound_from_fp32_reference(e32, kErrFactor, i == 0 ? kOutFloor : kGradFloor);
    std::printf("  %-10s kernel rel err %.3e   fp32 reference %.3e   tol %.3e\n", i ? kNames[i - 1] : "out", ek, e32, tol);
    EXPECT_TRUE(torch::isfinite(ker[i]).all().item<bool>()) << (i ? kNames[i - 1] : "out");
    EXPECT_LE(ek, tol) << (i ? kNames[i - 1] : "out");
  }
}

INSTANTIATE_TEST_SUITE_P(
    SelectiveScanCuda, SelectiveScanKernel,
    ::testing::Combine(::testing::Values(Case{1, 32, 128, 16, true, true, true},      // whole chunks exactly
                      Case{3, 45, 300, 16, true, true, true},      // Dm % 32 != 0, L % 16 != 0, 3 chunks
                      Case{1, 7, 1, 16, true, true, true},         // L = 1
                      Case{3, 64, 1000, 8, false, true, true},     // no z / D
                      Case{2, 33, 257, 4, true, false, true},      // no bias
                      Case{2, 40, 129, 5, true, true, false},      // N not a power of 2, raw delta
                      Case{1, 96, 2048, 16, true, true, true},     // 16 chunks, a long adjoint
                      Case{3, 20, 17, 16, false, false, false}),   // nothing optional
                       ::testing::Values(kEntryPointDefault, kRawSequential, kRawRuns)),
    [](const ::testing::TestParamInfo<std::tuple<Case, int>>& i) {
      return case_name(std::get<0>(i.param)) + "_" + path_name(std::get<1>(i.param));
    });

TEST(SelectiveScanCudaBf16, Bf16InputsComputeInFp32) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  const Case c{2, 48, 200, 16, true, true, true};
  torch::manual_seed(fresh_seed());
  auto in = draw(c);
  // bf16 activations (as autocast produces), fp32 parameters (A, D, delta_bias), like the model.
  for (int i : {0, 1, 3, 4, 6}) in[i] = in[i].to(torch::kBFloat16);
  std::vector<Tensor> x(8), x64(8);
  for (int i = 0; i < 8; ++i) {
    x[i] = (i == 0 || i == 1 || i == 3 || i == 4 || i == 6) ? in[i].cuda() : in[i].to(torch::kCUDA, torch::kFloat);
    x64[i] = in[i].to(torch::kDouble);
  }
  const Tensor out = rbk::selective_scan(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], true, rbk::SelectiveScanImpl::Kernel);
  const Tensor ref = rbk::selective_scan_reference(x64[0], x64[1], x64[2], x64[3], x64[4], x64[5], x64[6], x64[7], true);
  const double e = rbk::relative_l2_error(out, ref);
  std::printf("bf16 inputs: out dtype %s, rel err vs fp64 on the same inputs %.3e (tol %.1e)\n",
              std::string(c10::toString(out.scalar_type())).c_str(), e, kBf16OutTol);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  EXPECT_LE(e, kBf16OutTol);
}

#if defined(RBK_WITH_CUDA_KERNELS)
// The raw launchers of every variant write every element of every output (NaN poison before the
// launch), including the per-batch-row partials the glue sums.
TEST(SelectiveScanCudaLaunch, EveryOutputFullyWritten) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  using rbk::cuda::SsVariant;
  for (const SsVariant variant : {SsVariant::Auto, SsVariant::Sequential, SsVariant::Runs})
  for (const Case& c : {Case{3, 45, 300, 16, true, true, true}, Case{1, 7, 1, 5, true, true, false},
                        Case{2, 33, 1000, 8, true, true, true}}) {
    torch::manual_seed(fresh_seed());
    auto in = draw(c);
    const Tensor dout = torch::randn({c.Bt, c.Dm, c.L});
    const rbk::cuda::SelectiveScanTensors t = rbk::cuda::selective_scan_rig_tensors(in, dout, torch::kCUDA, NAN);
    const rbk::cuda::SelectiveScanParams p = rbk::cuda::selective_scan_params(t, c.softplus, variant);
    const cudaStream_t s = at::cuda::getCurrentCUDAStream();
    // Explicit variants run as asked; the default is the runs variant.
    const SsVariant resolved = rbk::cuda::selective_scan_resolve_variant(p);
    if (variant == SsVariant::Auto)
      EXPECT_EQ(resolved, SsVariant::Runs);
    else
      EXPECT_EQ(resolved, variant);
    ASSERT_EQ(rbk::cuda::launch_selective_scan_forward(p, s), cudaSuccess);
    ASSERT_EQ(rbk::cuda::launch_selective_scan_backward(p, s), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<std::pair<const char*, Tensor>> outs = {
        {"out", t.out},         {"chunk_states", t.chunk_states}, {"du", t.du},
        {"ddelta", t.ddelta},   {"dz", t.dz},                     {"dA_part", t.dA_part},
        {"dD_part", t.dD_part}, {"ddelta_bias_part", t.ddelta_bias_part},
        {"dB", t.dB},           {"dC", t.dC}};
    for (const auto& [name, written] : outs) {
      // Count, not mean: a mean of ones on the GPU can round to 1 - 2^-53.
      const int64_t bad_count = (~torch::isfinite(written)).sum().item<int64_t>();
      std::printf("variant %s %s %-16s non-finite elements %lld of %lld\n",
                  rbk::cuda::selective_scan_variant_name(variant), case_name(c).c_str(), name,
                  (long long)bad_count, (long long)written.numel());
      EXPECT_EQ(bad_count, 0) << name << " not fully written (variant "
                              << rbk::cuda::selective_scan_variant_name(variant) << ")";
    }
    // Invalid launches are refused, not run.
    rbk::cuda::SelectiveScanParams bad = p;
    bad.dstate = rbk::cuda::kSsMaxState + 1;
    EXPECT_NE(rbk::cuda::launch_selective_scan_forward(bad, s), cudaSuccess);
    bad = p;
    bad.variant = static_cast<SsVariant>(7);  // no such variant
    EXPECT_NE(rbk::cuda::launch_selective_scan_forward(bad, s), cudaSuccess);
    EXPECT_NE(rbk::cuda::launch_selective_scan_backward(bad, s), cudaSuccess);
  }
}
#endif

TEST(SelectiveScanCudaModel, MambaBlockKernelMatchesReferenceOnGpu) {
  if (!have_device()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(fresh_seed());
  rbk::MambaBlockOptions o;
  o.d_model = 48;
  o.d_state = 16;
  o.scan = rbk::SelectiveScanImpl::Kernel;
  rbk::MambaBlock ker(o);
  ker->to(torch::kCUDA);
  o.scan = rbk::SelectiveScanImpl::Reference;
  rbk::MambaBlock ref(o);
  ref->to(torch::kCUDA);
  {
    torch::NoGradGuard ng;
    auto pk = ker->parameters(), pr = ref->parameters();
    for (size_t i = 0; i < pk.size(); ++i) pr[i].copy_(pk[i]);
  }
  const Tensor x = torch::randn({2, 77, 48}, torch::TensorOptions().device(torch::kCUDA));
  const Tensor yk = ker->forward(x), yr = ref->forward(x);
  (yk * yk).sum().backward();
  (yr * yr).sum().backward();
  const double ey = rbk::relative_l2_error(yk, yr);
  std::printf("MambaBlock on GPU, kernel vs reference scan: out %.3e\n", ey);
  EXPECT_LE(ey, 1e-5);  // both fp32: only the scan's summation order differs
  auto pk = ker->named_parameters(), pr = ref->named_parameters();
  for (size_t i = 0; i < pk.size(); ++i) {
    const double e = rbk::relative_l2_error(pk[i].value().grad(), pr[i].value().grad());
    std::printf("  grad %-16s %.3e\n", pk[i].key().c_str(), e);
    EXPECT_LE(e, 1e-4) << pk[i].key();  // fp32 vs fp32 through several layers of matmuls
  }
}

}  // namespace
