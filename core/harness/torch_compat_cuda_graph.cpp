// CUDA graph capture and replay (torch_compat_cuda_graph.h) through LibTorch's at::cuda::CUDAGraph,
// whose capture_begin() / capture_end() / replay() are the same in LibTorch 1.13 and 2.x.
#include "rbk/torch_compat_cuda_graph.h"

#include <stdexcept>

#if defined(RBK_WITH_CUDA_KERNELS)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace rbk {

#if defined(RBK_WITH_CUDA_KERNELS)

struct CudaGraph::Impl {
  at::cuda::CUDAGraph graph;
};

bool cuda_graphs_available() { return torch::cuda::is_available(); }

void release_cached_cuda_memory() {
  if (torch::cuda::is_available()) c10::cuda::CUDACachingAllocator::emptyCache();
}

CudaGraph::CudaGraph(const std::function<void()>& work, const torch::Device& device, int warmup_calls)
    : impl_(std::make_unique<Impl>()) {
  if (!device.is_cuda()) throw std::runtime_error("CUDA graph: device " + device.str() + " is not a CUDA device");
  if (!torch::cuda::is_available()) throw std::runtime_error("CUDA graph: no CUDA device is visible");
  const c10::cuda::CUDAGuard device_guard(device);
  const int index = device.has_index() ? device.index() : -1;
  torch::cuda::synchronize(index);  // the side stream must not overtake work queued before
  {
    const c10::cuda::CUDAStreamGuard on_side_stream(c10::cuda::getStreamFromPool(false, device_guard.current_device().index()));
    for (int i = 0; i < warmup_calls; ++i) work();
    torch::cuda::synchronize(index);
    // The capture allocates from the graph's own pool, which cannot reuse the blocks the warm-up
    // freed into the ordinary cache: hand those back first, or a captured step needs about twice
    // its memory (the long steps of exp_lm_throughput's length curve then run out of it).
    c10::cuda::CUDACachingAllocator::emptyCache();
    impl_->graph.capture_begin();
    try {
      work();
    } catch (...) {
      // End the capture so that the stream and the allocator leave capture mode; its own error (the
      // capture was invalidated by what threw) is not the one to report.
      try {
        impl_->graph.capture_end();
      } catch (...) {
      }
      throw;
    }
    impl_->graph.capture_end();
  }
  torch::cuda::synchronize(index);
}

void CudaGraph::replay() { impl_->graph.replay(); }

#else

struct CudaGraph::Impl {};

bool cuda_graphs_available() { return false; }

void release_cached_cuda_memory() {}

CudaGraph::CudaGraph(const std::function<void()>&, const torch::Device& device, int) {
  throw std::runtime_error("CUDA graph: this build's LibTorch has no CUDA (device " + device.str() + ")");
}

void CudaGraph::replay() { throw std::logic_error("CUDA graph: replay() in a build without CUDA"); }

#endif

CudaGraph::~CudaGraph() = default;

}  // namespace rbk
