// Version-guarded calls of LibTorch's Kineto profiler, for the GPU busy fraction (gpu_busy.h).
// Part of the torch_compat family: only these headers know which LibTorch the build uses.
#pragma once
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/torch.h>
#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

#include <cstdint>
#include <functional>
#include <set>
#include <utility>
#include <vector>

namespace rbk {

// Runs fn under the Kineto profiler recording one kind of activity (CUDA: kernels, copies and
// memsets on the device, and nothing on the host, so that the host is not slowed by operator
// recording; CPU: the host's operators) and returns the [start, end) of each recorded event of that
// device type, in nanoseconds on the profiler's clock. Where the device may still run fn's work
// when fn returns, pass sync to wait for it inside the profiled stretch. Throws what the profiler
// throws (for example where the build has no Kineto).
inline std::vector<std::pair<int64_t, int64_t>> profiled_activity_intervals_ns(const std::function<void()>& fn, bool cuda,
                                                                               const std::function<void()>& sync) {
  namespace impl = torch::profiler::impl;
  namespace ap = torch::autograd::profiler;
  const impl::ProfilerConfig config(impl::ProfilerState::KINETO);
  const std::set<impl::ActivityType> activities{cuda ? impl::ActivityType::CUDA : impl::ActivityType::CPU};
  ap::prepareProfiler(config, activities);
  ap::enableProfiler(config, activities);
  try {
    fn();
    if (sync) sync();
  } catch (...) {
    (void)ap::disableProfiler();
    throw;
  }
  const auto result = ap::disableProfiler();
  const c10::DeviceType wanted = cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const auto& e : result->events()) {
    if (e.deviceType() != wanted) continue;
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
    out.emplace_back(static_cast<int64_t>(e.startNs()), static_cast<int64_t>(e.endNs()));
#else
    const auto start = static_cast<int64_t>(e.startUs());
    out.emplace_back(start * 1000, (start + static_cast<int64_t>(e.durationUs())) * 1000);
#endif
  }
  return out;
}

}  // namespace rbk
