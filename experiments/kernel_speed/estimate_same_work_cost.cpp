// CPU check of exp_kernel_speed's time budget (main.cpp's top comment): per-call host time and
// LibTorch op counts of the native-complex vmap baselines (vmap_native_baseline.h) at the paper point,
// and the cost of the same-work section's fp64 oracles. Not a test: it prints numbers that the gpu
// preset's estimate is checked against. CPU dispatch of a tiny op (~1-3 us) is cheaper than a CUDA
// launch through LibTorch (~5-15 us), so the GPU per-call time is larger by roughly that ratio per op.
//
// usage: estimate_same_work_cost [B=16] [N=4096] [calls=3] [dense_n=1024]
#include "accuracy.h"
#include "reference/bk_core_oracle.h"
#include "vmap_native_baseline.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>

using namespace rbk::kernel_speed;

namespace {

double seconds_per_call(const std::function<void()>& fn, int calls) {
  fn();  // warm-up (allocator, first-use setup)
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t B = argc > 1 ? std::atoll(argv[1]) : 16;
  const int64_t N = argc > 2 ? std::atoll(argv[2]) : 4096;
  const int calls = argc > 3 ? std::atoi(argv[3]) : 3;
  const int64_t dense_n = argc > 4 ? std::atoll(argv[4]) : 1024;
  if (B < 1 || N < 2 || calls < 1 || dense_n < 2) {
    std::fprintf(stderr, "usage: estimate_same_work_cost [B>=1] [N>=2] [calls>=1] [dense_n>=2]\n");
    return 2;
  }
  torch::manual_seed(17);
  std::printf("torch threads %d\n", at::get_num_threads());
  const rbk::Tridiagonal hb = draw_benchmark_inputs(B, N);
  const rbk::Tridiagonal hl = rbk::laplacian_with_potential(torch::randn({B, N}));
  for (const auto rec : {VmapRecurrence::StableRatios, VmapRecurrence::UpstreamContinuants}) {
    const AtenOpCount ops = count_aten_ops([&] { (void)vmap_native_features(hb, kBenchmarkZ, rec); });
    const double s = seconds_per_call([&] { (void)vmap_native_features(hb, kBenchmarkZ, rec); }, calls);
    std::printf("vmap %-22s B=%lld N=%lld: %.3f s per call (CPU), %lld aten calls (%lld arithmetic), %.2f us per op\n",
                to_string(rec).c_str(), (long long)B, (long long)N, s, (long long)ops.top_level, (long long)ops.arithmetic,
                s / static_cast<double>(ops.top_level) * 1e6);
  }
  const double s_lap = seconds_per_call([&] { (void)vmap_native_features(hl, kModelZ, VmapRecurrence::StableRatios); }, calls);
  std::printf("vmap stable_ratios laplacian: %.3f s per call (CPU)\n", s_lap);
  const double s_count = seconds_per_call(
      [&] { (void)count_aten_ops([&] { (void)vmap_native_features(hb, kBenchmarkZ, VmapRecurrence::StableRatios); }); }, 1);
  std::printf("count_aten_ops(stable ratios): %.3f s\n", s_count);
  const double s_oracle = seconds_per_call([&] { (void)oracle_features(hb, kBenchmarkZ); }, 1);
  std::printf("fp64 continued-fraction oracle B=%lld N=%lld: %.3f s\n", (long long)B, (long long)N, s_oracle);
  const rbk::Tridiagonal hd = draw_benchmark_inputs(1, dense_n);
  const rbk::Tridiagonal hd64{hd.diag.to(torch::kDouble), hd.upper.to(torch::kDouble), hd.lower.to(torch::kDouble)};
  const double s_dense =
      seconds_per_call([&] { (void)rbk::reference::bk_core_diagonal_dense(hd64, kBenchmarkZ, rbk::BkContext::Bidirectional); }, 1);
  const double scale = static_cast<double>(N) / static_cast<double>(dense_n);
  std::printf("dense complex128 LU oracle, 1 row, N=%lld: %.3f s (x (N/%lld)^3 = %.0f s per row at N=%lld on this CPU)\n",
              (long long)dense_n, s_dense, (long long)dense_n, s_dense * scale * scale * scale, (long long)N);
  return 0;
}
