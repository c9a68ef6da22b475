// Helpers shared by the gpu tests (tests/gpu/): fresh random seeds, the device check, and a device
// buffer for the raw, LibTorch-free kernel launchers. Raw-launcher helpers exist only where the
// test links the kernel library (RBK_HAVE_CUDA_KERNEL_LIB).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <random>

#if defined(RBK_HAVE_CUDA_KERNEL_LIB)
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#endif

namespace rbk::gpu_test {

// A new seed per run (house style: fresh random inputs); tests print it so a failure can be replayed.
inline uint64_t fresh_seed() {
  static std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

#if defined(RBK_HAVE_CUDA_KERNEL_LIB)

inline bool have_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

// Owning device allocation; p stays null when cudaMalloc fails (callers assert on it).
struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  explicit DevBuf(size_t n) : bytes(n) {
    if (n > 0 && cudaMalloc(&p, n) != cudaSuccess) p = nullptr;
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  float* f() const { return static_cast<float*>(p); }
};

// Copies a CPU tensor (contiguous, in its own dtype) into a fresh device buffer.
inline std::unique_ptr<DevBuf> to_device(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous();
  auto b = std::make_unique<DevBuf>(static_cast<size_t>(c.numel()) * c.element_size());
  if (b->p) {
    EXPECT_EQ(cudaMemcpy(b->p, c.data_ptr(), b->bytes, cudaMemcpyHostToDevice), cudaSuccess);
  }
  return b;
}

#endif

}  // namespace rbk::gpu_test
