// Version-guarded calls of LibTorch's Kineto profiler, for the GPU busy fraction (gpu_busy.h).
// Part of the torch_compat family: only these headers know which LibTorch the build uses.
#pragma once
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/torch.h>
#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
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
  // Used by profiled_ops_and_kernels (kernel_attribution.h). A device activity's linked_correlation is the
  // correlation of the host operator that launched it (0: none, e.g. a CUDA graph's replay); a host
  // operator's thread and input shapes ("[32768, 256], [256]") let its enclosing operators be found.
  bool on_device = false;
  uint64_t correlation = 0, linked_correlation = 0, thread = 0;
  std::string shapes;
  // A host event's at::RecordScope. The profiler makes only non-USER_SCOPE events the operator
  // that kernels launched inside them link to (user scopes get a separate "user" correlation): a
  // kernel launched inside a USER_SCOPE range alone has no linked operator (session 33, H100).
  uint8_t scope = 0;
};

namespace detail {

inline ProfiledActivity profiled_activity_of(const torch::autograd::profiler::KinetoEvent& e) {
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
  a.on_device = e.deviceType() != c10::DeviceType::CPU;
  a.correlation = e.correlationId();
  a.linked_correlation = e.linkedCorrelationId();
  a.thread = e.startThreadId();
  a.scope = e.scope();
  if (e.hasShapes()) {
    for (const auto& shape : e.shapes()) {
      if (!a.shapes.empty()) a.shapes += ", ";
      a.shapes += "[";
      for (size_t i = 0; i < shape.size(); ++i) a.shapes += (i ? ", " : "") + std::to_string(shape[i]);
      a.shapes += "]";
    }
  }
  return a;
}

// Runs fn (then sync) between the profiler's enable and disable; disables it if fn throws.
inline std::unique_ptr<torch::autograd::profiler::ProfilerResult> profile_run(
    const std::function<void()>& fn, const std::function<void()>& sync,
    const std::set<torch::profiler::impl::ActivityType>& activities, bool record_shapes) {
  namespace impl = torch::profiler::impl;
  namespace ap = torch::autograd::profiler;
  const impl::ProfilerConfig config(impl::ProfilerState::KINETO, record_shapes);
  ap::prepareProfiler(config, activities);
  ap::enableProfiler(config, activities);
  try {
    fn();
    if (sync) sync();
  } catch (...) {
    (void)ap::disableProfiler();
    throw;
  }
  return ap::disableProfiler();
}

}  // namespace detail

// Runs fn under the Kineto profiler recording one kind of activity (CUDA: kernels, copies and
// memsets on the device, and nothing on the host, so that the host is not slowed by operator
// recording; CPU: the host's operators) and returns each recorded event of that device type. Where
// the device may still run fn's work when fn returns, pass sync to wait for it inside the profiled
// stretch. Throws what the profiler throws (for example where the build has no Kineto).
inline std::vector<ProfiledActivity> profiled_activities(const std::function<void()>& fn, bool cuda,
                                                         const std::function<void()>& sync) {
  using impl_activity = torch::profiler::impl::ActivityType;
  const auto result = detail::profile_run(fn, sync, {cuda ? impl_activity::CUDA : impl_activity::CPU}, false);
  const c10::DeviceType wanted = cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  std::vector<ProfiledActivity> out;
  for (const auto& e : result->events())
    if (e.deviceType() == wanted) out.push_back(detail::profiled_activity_of(e));
  return out;
}

// Runs fn under the profiler recording both the host's operators (with their input shapes) and the
// device's activities, and returns every event with its correlations (ProfiledActivity), for naming
// the operator that launched each kernel (kernel_attribution.h). Slows the host: not for timing.
inline std::vector<ProfiledActivity> profiled_ops_and_kernels(const std::function<void()>& fn,
                                                              const std::function<void()>& sync) {
  using impl_activity = torch::profiler::impl::ActivityType;
  const auto result = detail::profile_run(fn, sync, {impl_activity::CPU, impl_activity::CUDA}, true);
  std::vector<ProfiledActivity> out;
  for (const auto& e : result->events()) out.push_back(detail::profiled_activity_of(e));
  return out;
}

// The earliest start among recorded events (0 for none): the origin to subtract before converting
// to seconds, since absolute clock values (~1e18 ns) would keep only ~0.4 us of resolution in a double.
inline int64_t earliest_start_ns(const std::vector<ProfiledActivity>& recorded) {
  int64_t origin = recorded.empty() ? 0 : recorded.front().start_ns;
  for (const auto& a : recorded) origin = std::min(origin, a.start_ns);
  return origin;
}

}  // namespace rbk
