// How busy the GPU is while a stretch of work runs (issue 25's third target: the GPU busy at least
// 90 % of a ResNet-BK training step). LibTorch's Kineto profiler records the device's activities
// (kernels, copies, memsets) while the work runs, and nothing on the host, so the measurement does
// not slow a host-bound step; the busy fraction is the length of the union of those activities over
// the span from the first one's start to the last one's end. A host that cannot issue work fast
// enough leaves gaps between kernels, which lower it; time before the first or after the last
// activity is not counted (the work's own first launch and final synchronisation).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace rbk {

struct GpuBusy {
  double busy_fraction = 0.0;  // busy_seconds / span_seconds
  double busy_seconds = 0.0;   // length of the union of the device activities
  double span_seconds = 0.0;   // first activity's start to last activity's end
  int64_t activities = 0;      // device activities recorded
  std::string error;           // non-empty: nothing was measured, and why (the numbers are then 0)
};

// Length of the union of [start, end) intervals (empty and reversed ones count 0).
double interval_union_length(std::vector<std::pair<double, double>> intervals);

// The busy fraction of intervals (start, end), in seconds; error set where there are none.
GpuBusy gpu_busy_of(const std::vector<std::pair<double, double>>& intervals);

// Runs work once under the profiler (CUDA activities), waits for the device, and returns how busy it
// was. Without a CUDA device, or where the profiler cannot record CUDA activities, work is not run
// and error says why.
GpuBusy measure_gpu_busy(const std::function<void()>& work);

}  // namespace rbk
