// How busy the GPU is while a stretch of work runs (issue 25's third target: the GPU busy at least
// 90 % of a ResNet-BK training step). LibTorch's Kineto profiler records the device's activities
// (kernels, copies, memsets) while the work runs, and nothing on the host, so the measurement does
// not slow a host-bound step; the busy fraction is the length of the union of those activities over
// the span from the first one's start to the last one's end. A host that cannot issue work fast
// enough leaves gaps between kernels, which lower it; time before the first or after the last
// activity is not counted (the work's own first launch and final synchronisation).
//
// From the same recording, where the busy time goes (issue 25: which kernels to speed up): the
// activities' durations summed per kernel name and per category (kernel_category). These are sums,
// not unions: activities that overlap (several streams, or copies beside kernels) each count their
// whole duration, so KernelBreakdown::total_seconds may exceed GpuBusy::busy_seconds.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace rbk {

// How many kernel names KernelBreakdown::top lists by default: a training step runs a few hundred
// distinct kernels, of which a handful hold most of the time; the rest are summed.
constexpr std::size_t kTopKernels = 20;

// One device activity: the profiler's name for it and its [start, end) in seconds from any common
// origin.
struct DeviceActivity {
  std::string name;
  double start = 0.0, end = 0.0;
};

// One kernel name's share of the recording.
struct KernelTime {
  std::string name;      // as the profiler names it
  std::string category;  // kernel_category(name)
  int64_t count = 0;     // activities of this name
  double seconds = 0.0;  // the sum of their durations
};

struct KernelBreakdown {
  std::vector<KernelTime> top;  // the names with the largest seconds, largest first (equal seconds: by name)
  int64_t rest_names = 0;       // distinct names not in top
  int64_t rest_count = 0;       // their activities
  double rest_seconds = 0.0;    // the sum of their durations
  // Every category of kernel_categories(), 0 where none ran; sums to total_seconds.
  std::map<std::string, double> seconds_by_category;
  double total_seconds = 0.0;  // the sum of all activities' durations (reversed ones count 0)
};

struct GpuBusy {
  double busy_fraction = 0.0;  // busy_seconds / span_seconds
  double busy_seconds = 0.0;   // length of the union of the device activities
  double span_seconds = 0.0;   // first activity's start to last activity's end
  int64_t activities = 0;      // device activities recorded
  // The longest stretch inside the span with no activity, and where it starts (seconds after the
  // span's start): says whether idle time is spread between launches or sits in one place (for
  // example a first profiled replay that starts late).
  double largest_gap_seconds = 0.0;
  double largest_gap_start_seconds = 0.0;
  KernelBreakdown kernels;     // where the activities' time went; empty where error is set
  std::string error;           // non-empty: nothing was measured, and why (the numbers are then 0)
};

// The fixed set kernel_category returns, in the order its rules are tried ("other" last).
const std::vector<std::string>& kernel_categories();

// The category of a device activity's name, by the first rule that matches the lower-cased name
// (substrings, so that demangled "void ns::kernel<...>(...)" and mangled "_ZN...kernel..." names
// both match; the rules and why they come in this order are in gpu_busy.cpp).
std::string kernel_category(const std::string& name);

// Per name and per category sums of the activities' durations (end - start, 0 where end <= start),
// with the top_k names by seconds listed and the others summed.
KernelBreakdown kernel_breakdown_of(const std::vector<DeviceActivity>& activities, std::size_t top_k = kTopKernels);

// Length of the union of [start, end) intervals (empty and reversed ones count 0).
double interval_union_length(std::vector<std::pair<double, double>> intervals);

// The busy fraction of intervals (start, end), in seconds; error set where there are none.
GpuBusy gpu_busy_of(const std::vector<std::pair<double, double>>& intervals);

// The busy fraction of named activities and their breakdown (kernel_breakdown_of); error set where
// there are none.
GpuBusy gpu_busy_with_kernels_of(const std::vector<DeviceActivity>& activities, std::size_t top_k = kTopKernels);

// Runs work once under the profiler (CUDA activities), waits for the device, and returns how busy it
// was and where the time went (top_k names listed). Without a CUDA device, or where the profiler
// cannot record CUDA activities, work is not run and error says why.
GpuBusy measure_gpu_busy(const std::function<void()>& work, std::size_t top_k = kTopKernels);

}  // namespace rbk
