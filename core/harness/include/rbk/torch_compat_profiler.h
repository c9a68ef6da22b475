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
#include <string>
#include <utility>
#include <vector>

namespace rbk {

// One recorded event: its [start, end) in nanoseconds on the profiler's clock and its name as the
// profiler gives it (a device kernel's demangled name, "Memcpy DtoD (Device -> Device)", "Memset
// (Device)"; on the host the operator's, "aten::mm").
struct ProfiledActivity {
  int64_t start_ns = 0, end_ns = 0;
  std::string name;
};

// Runs fn under the Kineto profiler recording one kind of activity (CUDA: kernels, copies and
// memsets on the device, and nothing on the host, so that the host is not slowed by operator
// recording; CPU: the host's operators) and returns each recorded event of that device type. Where
// the device may still run fn's work when fn returns, pass sync to wait for it inside the profiled
// stretch. Throws what the profiler throws (for example where the build has no Kineto).
inline std::vector<ProfiledActivity> profiled_activities(const std::function<void()>& fn, bool cuda,
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
  std::vector<ProfiledActivity> out;
  for (const auto& e : result->events()) {
    if (e.deviceType() != wanted) continue;
    ProfiledActivity a;
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
    a.start_ns = static_cast<int64_t>(e.startNs());
    a.end_ns = static_cast<int64_t>(e.endNs());
#else
    // LibTorch 1.13 keeps microseconds only.
    a.start_ns = static_cast<int64_t>(e.startUs()) * 1000;
    a.end_ns = a.start_ns + static_cast<int64_t>(e.durationUs()) * 1000;
#endif
    a.name = std::string(e.name());
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace rbk
