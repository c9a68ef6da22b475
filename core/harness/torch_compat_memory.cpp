// CUDA memory controls for the memory search (torch_compat_memory.h). The calls exist with the
// same signatures in LibTorch 1.13 and 2.x (c10::cuda::CUDACachingAllocator::setMemoryFraction).
#include "rbk/torch_compat_memory.h"

#if defined(RBK_WITH_CUDA_KERNELS)
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

namespace rbk {

int64_t cuda_total_memory_bytes(const torch::Device& device) {
#if defined(RBK_WITH_CUDA_KERNELS)
  if (!device.is_cuda()) return -1;
  size_t free_bytes = 0, total_bytes = 0;
  const int index = device.has_index() ? device.index() : 0;
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess) return -1;
  if (cudaSetDevice(index) != cudaSuccess) return -1;
  const bool ok = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
  cudaSetDevice(previous);
  return ok ? static_cast<int64_t>(total_bytes) : -1;
#else
  (void)device;
  return -1;
#endif
}

bool cuda_set_memory_fraction(double fraction, const torch::Device& device) {
#if defined(RBK_WITH_CUDA_KERNELS)
  if (!device.is_cuda() || !(fraction > 0.0 && fraction <= 1.0)) return false;
  c10::cuda::CUDACachingAllocator::setMemoryFraction(fraction, device.has_index() ? device.index() : 0);
  return true;
#else
  (void)fraction;
  (void)device;
  return false;
#endif
}

}  // namespace rbk
