// The GPU busy fraction (gpu_busy.h; issue 25): the interval arithmetic, the version-guarded
// profiler call on this LibTorch (host activities, which every build records), and on a GPU a
// saturated stream against one left idle by the host.
#include "rbk/gpu_busy.h"
#include "rbk/torch_compat_profiler.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <thread>

TEST(GpuBusy, UnionOfIntervals) {
  EXPECT_DOUBLE_EQ(rbk::interval_union_length({{0.0, 1.0}, {0.5, 2.0}, {3.0, 4.0}, {5.0, 5.0}, {6.0, 5.5}}), 3.0);
  EXPECT_DOUBLE_EQ(rbk::interval_union_length({{3.0, 4.0}, {0.0, 1.0}, {1.0, 2.0}}), 3.0);  // touching ones merge
  EXPECT_DOUBLE_EQ(rbk::interval_union_length({}), 0.0);
  const rbk::GpuBusy b = rbk::gpu_busy_of({{0.0, 1.0}, {0.5, 2.0}, {3.0, 4.0}});
  EXPECT_TRUE(b.error.empty());
  EXPECT_EQ(b.activities, 3);
  EXPECT_DOUBLE_EQ(b.span_seconds, 4.0);
  EXPECT_DOUBLE_EQ(b.busy_seconds, 3.0);
  EXPECT_DOUBLE_EQ(b.busy_fraction, 0.75);
  EXPECT_FALSE(rbk::gpu_busy_of({}).error.empty());
}

TEST(GpuBusy, ProfilerRecordsHostOperators) {
  const auto a = torch::randn({64, 64});
  const auto intervals = rbk::profiled_activity_intervals_ns([&] { (void)torch::mm(a, a).sum(); }, false, nullptr);
  ASSERT_FALSE(intervals.empty());
  for (const auto& [s, e] : intervals) EXPECT_LE(s, e);
}

TEST(GpuBusy, SaturatedStreamIsBusyAndAnIdleHostIsNot) {
  if (!torch::cuda::is_available()) {
    bool ran = false;
    const rbk::GpuBusy b = rbk::measure_gpu_busy([&] { ran = true; });
    EXPECT_FALSE(b.error.empty());
    EXPECT_FALSE(ran) << "without a device the work is not run";
    GTEST_SKIP() << "no CUDA device";
  }
  const auto a = torch::randn({2048, 2048}, torch::kCUDA);
  const rbk::GpuBusy busy = rbk::measure_gpu_busy([&] {
    for (int i = 0; i < 20; ++i) (void)torch::mm(a, a);
  });
  ASSERT_TRUE(busy.error.empty()) << busy.error;
  EXPECT_GE(busy.activities, 20);
  EXPECT_GT(busy.busy_fraction, 0.9) << "back-to-back large matmuls";
  const auto small = torch::randn({16, 16}, torch::kCUDA);
  const rbk::GpuBusy idle = rbk::measure_gpu_busy([&] {
    for (int i = 0; i < 5; ++i) {
      (void)torch::mm(small, small);
      torch::cuda::synchronize();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  ASSERT_TRUE(idle.error.empty()) << idle.error;
  EXPECT_LT(idle.busy_fraction, 0.5) << "tiny kernels 2 ms apart";
}
