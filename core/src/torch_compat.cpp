// Version-dependent LibTorch calls live here and in torch_compat.h only.
#include "rbk/torch_compat.h"

#include <cstdlib>
#include <string>
#include <thread>

#if defined(RBK_WITH_CUDA_KERNELS)
#include <ATen/cuda/CUDAContext.h>
#include <cuda_runtime_api.h>
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
