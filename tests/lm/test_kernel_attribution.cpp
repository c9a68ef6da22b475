// Kernels attributed to the operator stacks that launched them (kernel_attribution.h; issue 25):
// the linking and stacking on synthetic recordings, and, on this LibTorch's profiler, the host-side
// facts the attribution relies on (operators carry correlation ids, input shapes and threads, and
// an operator's enclosing operators contain it in time on its thread). The CUDA link itself (a
// kernel's linked correlation = its operator's) is tested on the GPU (tests/gpu).
#include "rbk/kernel_attribution.h"
#include "rbk/profiled_scope.h"
#include "rbk/torch_compat_profiler.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>

namespace {

const char* const kCopy = "void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda(...)>(...)";
const char* const kGemm = "nvjet_sm90_tst_128x256_64x4_2x1_v_bz_coopA_NNN";

// Thread 1: module_a [0, 10) > module_b [1, 9) > aten::copy_ [2, 5) with shapes, and before it a
// runtime call over the same stretch whose own correlation id (another numbering) equals the copy's;
// thread 2: a backward node [0, 20) > aten::mm [1, 2); thread 3: aten::add [1, 2) alone.
std::vector<rbk::HostOp> synthetic_ops() {
  return {{"cudaLaunchKernel", "", 2.0, 5.0, 3, 1},
          {"aten::copy_", "[4, 4], [4, 4]", 2.0, 5.0, 3, 1},
          {"module_b", "", 1.0, 9.0, 2, 1},
          {"module_a", "", 0.0, 10.0, 1, 1},
          {"autograd::engine::evaluate_function: MmBackward0", "", 0.0, 20.0, 4, 2},
          {"aten::mm", "[8, 8], [8, 8]", 1.0, 2.0, 5, 2},
          {"aten::add", "", 1.0, 2.0, 6, 3}};
}

}  // namespace

TEST(KernelAttribution, KernelsSummedPerOperatorStack) {
  const std::vector<rbk::LaunchedKernel> kernels{{kCopy, 3.0, 3.5, 3}, {kCopy, 4.0, 6.0, 3}, {kGemm, 1.0, 5.0, 5},
                                                 {kCopy, 6.0, 6.25, 0}, {kCopy, 7.0, 7.25, 99}, {kCopy, 8.0, 7.0, 6}};
  const auto r = rbk::attribute_kernels(synthetic_ops(), kernels);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_DOUBLE_EQ(r.total_seconds, 0.5 + 2.0 + 4.0 + 0.25 + 0.25);
  EXPECT_DOUBLE_EQ(r.unattributed_seconds, 0.5) << "no link, and a link to no recorded operator";
  ASSERT_EQ(r.top.size(), 4u);
  // Largest first: the GEMM under the backward node of thread 2 (thread 1's module_a, which also
  // contains it in time, is another thread's).
  EXPECT_EQ(r.top[0].op_stack, "autograd::engine::evaluate_function: MmBackward0 > aten::mm [[8, 8], [8, 8]]");
  EXPECT_EQ(r.top[0].category, "matmul");
  EXPECT_DOUBLE_EQ(r.top[0].seconds, 4.0);
  // Both copies of C, under B and A; the runtime call sharing A's correlation id is not an operator.
  EXPECT_EQ(r.top[1].op_stack, "module_a > module_b > aten::copy_ [[4, 4], [4, 4]]");
  EXPECT_EQ(r.top[1].category, "copy");
  EXPECT_EQ(r.top[1].calls, 2);
  EXPECT_DOUBLE_EQ(r.top[1].seconds, 2.5);
  EXPECT_EQ(r.top[1].example_kernel, kCopy);
  EXPECT_EQ(r.top[2].op_stack, rbk::kNoHostOperator);
  EXPECT_EQ(r.top[2].calls, 2);
  // A reversed activity counts 0 s but is still a call of its stack (thread 3's lone operator).
  EXPECT_EQ(r.top[3].op_stack, "aten::add");
  EXPECT_EQ(r.top[3].calls, 1);
  EXPECT_DOUBLE_EQ(r.top[3].seconds, 0.0);
  EXPECT_EQ(r.rest_rows, 0);
}

TEST(KernelAttribution, DepthAndTopLimitTheRows) {
  const std::vector<rbk::LaunchedKernel> kernels{{kCopy, 3.0, 4.0, 3}, {kGemm, 1.0, 3.0, 5}, {kCopy, 6.0, 6.5, 6}};
  const auto shallow = rbk::attribute_kernels(synthetic_ops(), kernels, 2, 1);
  ASSERT_EQ(shallow.top.size(), 1u);
  EXPECT_EQ(shallow.top[0].op_stack, "autograd::engine::evaluate_function: MmBackward0 > aten::mm [[8, 8], [8, 8]]");
  EXPECT_EQ(shallow.rest_rows, 2);
  EXPECT_EQ(shallow.rest_calls, 2);
  EXPECT_DOUBLE_EQ(shallow.rest_seconds, 1.5);
  const auto one = rbk::attribute_kernels(synthetic_ops(), kernels, 1);
  EXPECT_EQ(one.top[1].op_stack, "aten::copy_ [[4, 4], [4, 4]]") << "depth 1: the launching operator only";
  const auto two = rbk::attribute_kernels(synthetic_ops(), kernels, 2);
  EXPECT_EQ(two.top[1].op_stack, "module_b > aten::copy_ [[4, 4], [4, 4]]") << "the innermost enclosing one kept";
  EXPECT_THROW((void)rbk::attribute_kernels(synthetic_ops(), kernels, 0), std::invalid_argument);
  EXPECT_FALSE(rbk::attribute_kernels(synthetic_ops(), {}).error.empty()) << "no kernels: an error, not an empty table";
}

// What the attribution assumes of the host side of this LibTorch's profiler: each operator has a
// correlation id of its own, its thread, and (shapes recorded) its input shapes, and aten::matmul
// contains the aten::mm it calls in time on the same thread.
TEST(KernelAttribution, HostOperatorsCarryCorrelationShapesAndNesting) {
  const auto a = torch::randn({32, 16}), b = torch::randn({16, 8});
  const auto result = rbk::detail::profile_run([&] { (void)torch::matmul(a, b); }, nullptr,
                                               {torch::profiler::impl::ActivityType::CPU}, true);
  std::vector<rbk::ProfiledActivity> ops;
  for (const auto& e : result->events()) ops.push_back(rbk::detail::profiled_activity_of(e));
  const auto find = [&](const std::string& name) {
    return std::find_if(ops.begin(), ops.end(), [&](const rbk::ProfiledActivity& o) { return o.name == name; });
  };
  const auto mm = find("aten::mm"), matmul = find("aten::matmul");
  ASSERT_NE(mm, ops.end());
  ASSERT_NE(matmul, ops.end());
  EXPECT_FALSE(mm->on_device);
  EXPECT_NE(mm->correlation, 0u);
  EXPECT_NE(mm->correlation, matmul->correlation);
  EXPECT_EQ(mm->shapes, "[32, 16], [16, 8]");
  EXPECT_EQ(mm->thread, matmul->thread);
  EXPECT_LE(matmul->start_ns, mm->start_ns);
  EXPECT_GE(matmul->end_ns, mm->end_ns);
}

// A ProfiledScope is an operator to the profiler, with a correlation id of its own, enclosing the
// work inside it: what lets kernels launched by rbk's glue (no ATen operator) be attributed on a GPU.
// Its scope must be an operator's (FUNCTION), not USER_SCOPE: kernels do not link to user ranges
// (the GPU test OwnKernelsLandUnderTheirGlueScope failed on an H100 with a USER_SCOPE range, which
// this CPU test, without the scope check, had passed).
TEST(KernelAttribution, ProfiledScopeIsAHostOperatorAroundItsWork) {
  const auto a = torch::randn({32, 16}), b = torch::randn({16, 8});
  const auto result = rbk::detail::profile_run(
      [&] {
        const rbk::ProfiledScope scope("rbk::test_scope");
        (void)torch::mm(a, b);
      },
      nullptr, {torch::profiler::impl::ActivityType::CPU}, true);
  std::vector<rbk::ProfiledActivity> ops;
  for (const auto& e : result->events()) ops.push_back(rbk::detail::profiled_activity_of(e));
  const auto find = [&](const std::string& name) {
    return std::find_if(ops.begin(), ops.end(), [&](const rbk::ProfiledActivity& o) { return o.name == name; });
  };
  const auto scope = find("rbk::test_scope"), mm = find("aten::mm");
  ASSERT_NE(scope, ops.end()) << "the scope is not recorded";
  ASSERT_NE(mm, ops.end());
  EXPECT_NE(scope->correlation, 0u);
  EXPECT_NE(scope->correlation, mm->correlation);
  EXPECT_EQ(scope->scope, static_cast<uint8_t>(at::RecordScope::FUNCTION)) << "kernels link to operator scopes only";
  EXPECT_EQ(scope->thread, mm->thread);
  EXPECT_LE(scope->start_ns, mm->start_ns);
  EXPECT_GE(scope->end_ns, mm->end_ns);
}

TEST(KernelAttribution, WithoutCudaNothingRuns) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is visible: tests/gpu covers it";
  bool ran = false;
  const auto r = rbk::measure_kernel_attribution([&] { ran = true; });
  EXPECT_FALSE(r.error.empty());
  EXPECT_FALSE(ran);
  EXPECT_TRUE(r.top.empty());
}
