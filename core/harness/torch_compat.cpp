// Version-dependent LibTorch calls live here and in torch_compat.h only.
#include "rbk/torch_compat.h"

#include <cstdlib>
#include <string>
#include <thread>

#include <ATen/autocast_mode.h>

#if defined(RBK_WITH_CUDA_KERNELS)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

// LibTorch 2.4 replaced the CUDA-specific autocast calls (is_enabled, set_enabled,
// get/set_autocast_gpu_dtype: deprecated, then removed) with per-device-type ones.
#if defined(TORCH_VERSION_MAJOR) && defined(TORCH_VERSION_MINOR) && \
    (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))
#define RBK_AUTOCAST_PER_DEVICE_API 1
#endif

namespace rbk {

std::string torch_version_string() {
#if defined(TORCH_VERSION)
  return TORCH_VERSION;
#elif defined(TORCH_VERSION_MAJOR)
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
#else
  return "unknown";
#endif
}

bool torch_uses_textbook_complex_division() {
#if defined(TORCH_VERSION_MAJOR) && defined(TORCH_VERSION_MINOR)
  return TORCH_VERSION_MAJOR < 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR == 0);
#else
  return false;
#endif
}

bool cuda_available() { return torch::cuda::is_available(); }

std::string device_name() {
#if defined(RBK_WITH_CUDA_KERNELS)
  if (cuda_available()) return at::cuda::getDeviceProperties(0)->name;
#endif
  if (cuda_available()) return "cuda (name unavailable: built without the CUDA glue)";
  return "cpu";
}

std::string cuda_version_string() {
#if defined(RBK_WITH_CUDA_KERNELS)
  int v = 0;
  if (cudaRuntimeGetVersion(&v) == cudaSuccess) return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
#endif
  return "none";
}

bool cuda_autocast_enabled() {
#if defined(RBK_AUTOCAST_PER_DEVICE_API)
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled();
#endif
}

torch::ScalarType cuda_autocast_dtype() {
#if defined(RBK_AUTOCAST_PER_DEVICE_API)
  return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  return at::autocast::get_autocast_gpu_dtype();
#endif
}

namespace {
void set_cuda_autocast(bool enabled, torch::ScalarType dtype) {
#if defined(RBK_AUTOCAST_PER_DEVICE_API)
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
#else
  at::autocast::set_autocast_gpu_dtype(dtype);
  at::autocast::set_enabled(enabled);
#endif
}
}  // namespace

AutocastGuard::AutocastGuard(bool enabled, torch::ScalarType dtype) : active_(enabled) {
  if (!active_) return;
  TORCH_CHECK(dtype == torch::kBFloat16 || dtype == torch::kHalf, "AutocastGuard: dtype must be bfloat16 or float16, got ",
              dtype);
  prev_enabled_ = cuda_autocast_enabled();
  prev_dtype_ = cuda_autocast_dtype();
  set_cuda_autocast(true, dtype);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // The cache holds the low-precision copies of the weights made inside this scope; they are
  // stale after the next optimizer step, so the outermost guard drops them.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_cuda_autocast(prev_enabled_, prev_dtype_);
}

void synchronize_device(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
}

int64_t cuda_peak_allocated_bytes(const torch::Device& device) {
#if defined(RBK_WITH_CUDA_KERNELS)
  if (!device.is_cuda()) return -1;
  const auto index = static_cast<c10::DeviceIndex>(device.has_index() ? device.index() : 0);
  // Index 0 of every StatArray is StatType::AGGREGATE (all pools) in LibTorch 1.13 and 2.x; the
  // enum moved namespaces between them, the order did not.
  return c10::cuda::CUDACachingAllocator::getDeviceStats(index).allocated_bytes[0].peak;
#else
  (void)device;
  return -1;
#endif
}

void cuda_reset_peak_memory(const torch::Device& device) {
#if defined(RBK_WITH_CUDA_KERNELS)
  if (!device.is_cuda()) return;
  c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device.has_index() ? device.index() : 0));
#else
  (void)device;
#endif
}

int configure_cpu_threads() {
  // Default to every core: the Debian build starts with 1 OpenMP thread. RBK_THREADS pins it
  // (the CPU tests and timings of record state the thread count in their provenance).
  int n = static_cast<int>(std::thread::hardware_concurrency());
  if (const char* env = std::getenv("RBK_THREADS")) {
    const int parsed = std::atoi(env);
    if (parsed > 0) n = parsed;
  }
  if (n < 1) n = 1;
  at::set_num_threads(n);
  return at::get_num_threads();
}

}  // namespace rbk
