// The GPU busy fraction (gpu_busy.h). Compiled like flop_count.cpp (NDEBUG, no precompiled header):
// the profiler's headers are LibTorch's, built with NDEBUG.
#include "rbk/gpu_busy.h"

#include "rbk/torch_compat_profiler.h"

#include <algorithm>
#include <exception>

namespace rbk {

double interval_union_length(std::vector<std::pair<double, double>> intervals) {
  std::sort(intervals.begin(), intervals.end());
  double total = 0.0, start = 0.0, end = 0.0;
  bool open = false;
  for (const auto& [s, e] : intervals) {
    if (!(e > s)) continue;
    if (open && s <= end) {
      end = std::max(end, e);
      continue;
    }
    if (open) total += end - start;
    start = s;
    end = e;
    open = true;
  }
  return open ? total + (end - start) : total;
}

GpuBusy gpu_busy_of(const std::vector<std::pair<double, double>>& intervals) {
  GpuBusy r;
  r.activities = static_cast<int64_t>(intervals.size());
  if (intervals.empty()) {
    r.error = "no device activity was recorded";
    return r;
  }
  double first = intervals.front().first, last = intervals.front().second;
  for (const auto& [s, e] : intervals) {
    first = std::min(first, s);
    last = std::max(last, e);
  }
  r.span_seconds = last - first;
  r.busy_seconds = interval_union_length(intervals);
  r.busy_fraction = r.span_seconds > 0 ? r.busy_seconds / r.span_seconds : 1.0;
  return r;
}

GpuBusy measure_gpu_busy(const std::function<void()>& work) {
  GpuBusy r;
  if (!torch::cuda::is_available()) {
    r.error = "no CUDA device";
    return r;
  }
  try {
    const auto ns = profiled_activity_intervals_ns(work, true, [] { torch::cuda::synchronize(); });
    // Relative to the first start before converting: absolute clock values (~1e18 ns) would keep
    // only ~0.4 us of resolution in a double.
    const int64_t origin = ns.empty() ? 0 : std::min_element(ns.begin(), ns.end())->first;
    std::vector<std::pair<double, double>> seconds;
    seconds.reserve(ns.size());
    for (const auto& [s, e] : ns) seconds.emplace_back(1e-9 * static_cast<double>(s - origin), 1e-9 * static_cast<double>(e - origin));
    return gpu_busy_of(seconds);
  } catch (const std::exception& e) {
    r.error = std::string("the profiler could not record CUDA activities: ") + e.what();
    return r;
  }
}

}  // namespace rbk
