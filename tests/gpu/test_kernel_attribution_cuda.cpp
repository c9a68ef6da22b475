// Kernels attributed to their host operators on a GPU (kernel_attribution.h; issue 25): what the
// CPU tests cannot show, that this LibTorch's profiler links each CUDA kernel to the operator that
// launched it (its linked correlation id), so that a matmul and a copy land under aten::mm and
// aten::copy_ with their shapes, and almost nothing is left without an operator.
#include "rbk/kernel_attribution.h"
#if defined(RBK_WITH_CUDA_KERNELS)
#include "rbk/cuda_glue/softmax_xent_cuda.h"
#endif

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

TEST(KernelAttributionCuda, KernelsLandUnderTheOperatorsThatLaunchedThem) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto a = torch::randn({1024, 1024}, torch::kCUDA);
  torch::cuda::synchronize();
  const auto r = rbk::measure_kernel_attribution([&] {
    const auto c = torch::mm(a, a);
    (void)c.t().contiguous();
  });
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_GT(r.total_seconds, 0.0);
  EXPECT_LT(r.unattributed_seconds, 0.1 * r.total_seconds) << "kernels without a linked operator";
  bool mm = false, copy = false;
  for (const auto& row : r.top) {
    std::fprintf(stderr, "%-10s %8.1f us x%lld  %s\n", row.category.c_str(), 1e6 * row.seconds, (long long)row.calls,
                 row.op_stack.c_str());
    mm = mm || (row.category == "matmul" && ends_with(row.op_stack, "aten::mm [[1024, 1024], [1024, 1024]]"));
    copy = copy || (row.category == "copy" && row.op_stack.find("aten::copy_") != std::string::npos &&
                    row.op_stack.find("aten::contiguous") != std::string::npos);
  }
  EXPECT_TRUE(mm) << "the GEMM under aten::mm with its shapes";
  EXPECT_TRUE(copy) << "the transpose's copy under aten::contiguous > ... > aten::copy_";
}

// rbk's own kernels launch through their glue, not an ATen operator: the glue's ProfiledScope is
// the operator they land under (without it, session 32's 32k step left the loss kernel, 2.5 ms,
// without an operator).
TEST(KernelAttributionCuda, OwnKernelsLandUnderTheirGlueScope) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
#if !defined(RBK_WITH_CUDA_KERNELS)
  GTEST_SKIP() << "this build has no CUDA kernels";
#else
  const auto logits = torch::randn({4096, 5000}, torch::kCUDA).to(torch::kBFloat16);
  const auto targets = torch::randint(0, 5000, {4096}, torch::TensorOptions().dtype(torch::kInt64).device(torch::kCUDA));
  torch::cuda::synchronize();
  const auto r = rbk::measure_kernel_attribution([&] { (void)rbk::cuda::softmax_xent_cuda(logits, targets, 1.0, true); });
  ASSERT_TRUE(r.error.empty()) << r.error;
  ASSERT_GT(r.total_seconds, 0.0);
  EXPECT_LT(r.unattributed_seconds, 0.1 * r.total_seconds) << "kernels without a linked operator";
  bool loss = false;
  int64_t loss_launches = 0;
  for (const auto& row : r.top) {
    std::fprintf(stderr, "%-12s %8.1f us x%lld  %s\n", row.category.c_str(), 1e6 * row.seconds, (long long)row.calls,
                 row.op_stack.c_str());
    loss = loss || (row.category == "softmax_loss" && row.op_stack.find("rbk::softmax_xent") != std::string::npos);
    if (row.category == "softmax_loss") loss_launches += row.calls;
  }
  EXPECT_TRUE(loss) << "the loss kernel under rbk::softmax_xent";
  // One launch, counted once: a USER_SCOPE range also gave the device a "gpu_user_annotation"
  // activity of the kernel's span, named like the range (so "softmax" in its category), which
  // doubled the loss's time in lengths_grouped at 1080b84 (2 calls a step).
  EXPECT_EQ(loss_launches, 1) << "the loss kernel once, and no device-side annotation of its range";
#endif
}
