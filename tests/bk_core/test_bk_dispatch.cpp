// BK-Core's routing (bk_core.cpp) and the CUDA glue's stand-ins where the kernels are not built
// (core/cuda_glue/no_cuda_kernels.cpp): a CPU tensor never takes a kernel path, and a build without
// the kernels refuses a kernel call with a message that says so, not a crash. Issue 18.
#include "rbk/bk_core.h"
#include "rbk/cuda_glue/bk_core_cuda.h"
#include "rbk/cuda_glue/kernels_linked.h"
#include "rbk/cuda_glue/selective_scan_cuda.h"
#include "rbk/cuda_glue/wkv_cuda.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>

namespace rbk {
namespace {

using torch::Tensor;

TEST(BkDispatch, CpuPotentialsNeverTakeTheVOnlyKernels) {
  for (const auto dtype : {torch::kFloat, torch::kBFloat16, torch::kDouble})
    for (const auto mode : {BkForwardMode::Stable, BkForwardMode::CompatPapertime})
      EXPECT_FALSE(bk_core_v_only_kernel_applies(torch::zeros({2, 8}, dtype), mode));
}

TEST(BkDispatch, CpuTensorsRunTheCpuPathAtTheirPrecision) {
  const Tensor v = torch::randn({2, 9}, torch::kDouble);
  const Tensor g64 = bk_core_diagonal(laplacian_with_potential(v), {0.0, 1.0});
  const Tensor g32 = bk_core_diagonal(laplacian_with_potential(v.to(torch::kFloat)), {0.0, 1.0});
  EXPECT_EQ(g64.scalar_type(), torch::kComplexDouble);
  EXPECT_EQ(g32.scalar_type(), torch::kComplexFloat);
  EXPECT_LT((g32.to(torch::kComplexDouble) - g64).abs().max().item<double>(), 1e-5);
}

// Each stub refuses with a c10::Error naming what it was asked for and what the build lacks.
TEST(BkDispatch, WithoutTheKernelsEveryGlueCallRefusesClearly) {
  if (cuda::cuda_kernels_linked()) GTEST_SKIP() << "this build has the CUDA kernels: the stubs are not linked";
  const Tensor v = torch::zeros({2, 8});
  const Tridiagonal h = laplacian_with_potential(v);
  const Tensor t = torch::zeros({1, 2, 3});
  const std::vector<std::pair<std::string, std::function<void()>>> calls = {
      {"BK-Core CUDA forward", [&] { cuda::bk_core_diagonal_stable_cuda(h, {0, 1}, BkContext::Bidirectional); }},
      {"BK-Core CUDA exact backward", [&] { cuda::bk_core_diagonal_vjp_exact_cuda(h, {0, 1}, v, BkContext::Causal); }},
      {"BK-Core CUDA forward (Laplacian + v)", [&] { cuda::bk_core_features_cuda(v, {0, 1}, BkContext::Bidirectional); }},
      {"BK-Core CUDA exact backward (Laplacian + v)", [&] { cuda::bk_core_features_vjp_cuda(v, {0, 1}, t, BkContext::Causal); }},
      {"selective scan CUDA forward", [&] { cuda::selective_scan_fwd_cuda(t, t, v, t, t, {}, {}, {}, false); }},
      {"selective scan CUDA backward", [&] { cuda::selective_scan_bwd_cuda(t, t, v, t, t, {}, {}, {}, false, t, t); }},
      {"WKV CUDA forward", [&] { cuda::wkv_forward_cuda(v, v, t, t); }},
      {"WKV CUDA backward", [&] { cuda::wkv_backward_cuda(v, v, t, t, t, t); }}};
  for (const auto& [what, call] : calls) {
    try {
      call();
      ADD_FAILURE() << what << ": returned instead of refusing";
    } catch (const c10::Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(what + ": this build has no CUDA kernels"), std::string::npos) << msg;
    }
  }
}

}  // namespace
}  // namespace rbk
