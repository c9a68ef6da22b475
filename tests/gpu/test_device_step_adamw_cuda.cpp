// rbk::DeviceStepAdamW on CUDA (issue 25): both kernels against torch::optim::AdamW within float32
// rounding over 8 steps with weight decay and a changing learning rate, where a 1 % different
// learning rate is far outside the bound (tests/lm/adamw_test_support.h); Auto picks the fused kernel
// where the build has it. The captured step that uses it is tested in test_cuda_graph_step.cpp.
// Skipped without a CUDA device.
#include "rbk/device_step_adamw.h"
#include "rbk/torch_compat_fused_adamw.h"

#include <gtest/gtest.h>

#include "../lm/adamw_test_support.h"

namespace {

using Kernel = rbk::DeviceStepAdamW::Kernel;

const torch::Device kCuda(torch::kCUDA, 0);

TEST(DeviceStepAdamWCuda, FusedKernelEqualsTorchAdamWWithinFloat32Rounding) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!rbk::kFusedAdamWAvailable) GTEST_SKIP() << "this LibTorch has no fused AdamW with a device learning rate";
  rbk::adamw_test::expect_equals_torch_adamw(kCuda, Kernel::Fused, /*expect_fused=*/true);
}

TEST(DeviceStepAdamWCuda, MultiTensorKernelEqualsTorchAdamWWithinFloat32Rounding) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  rbk::adamw_test::expect_equals_torch_adamw(kCuda, Kernel::MultiTensor, /*expect_fused=*/false);
}

TEST(DeviceStepAdamWCuda, AutoIsTheFusedKernelWhereTheBuildHasIt) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto ps = rbk::adamw_test::make_params(5, kCuda);
  rbk::DeviceStepAdamW opt(ps, rbk::adamw_test::options(1e-3));
  EXPECT_EQ(opt.fused(), rbk::kFusedAdamWAvailable);
}

}  // namespace
