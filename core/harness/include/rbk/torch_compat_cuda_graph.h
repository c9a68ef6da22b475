// A piece of GPU work recorded once as a CUDA graph and then replayed with one launch (issue 25: a
// training step whose host issues nothing per kernel). Part of the torch_compat family: LibTorch's
// at::cuda::CUDAGraph exists only in builds whose LibTorch has CUDA; elsewhere the constructor
// throws and cuda_graphs_available() says false.
//
// What a replay does: exactly the kernels, copies and memsets the captured call queued, on the
// same memory, with the same scalar arguments. So the work must read everything that changes
// between replays from device tensors it was captured with (the next batch copied into a fixed
// input tensor; an optimizer whose step count lives on the device, rbk::DeviceStepAdamW), must not
// synchronise with the host (a size read back, .item()), and must allocate the same tensors every
// time (they come from the graph's private memory pool, reused by every replay).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>

namespace rbk {

// Whether this build can capture CUDA graphs (its LibTorch has CUDA) and a CUDA device is visible.
bool cuda_graphs_available();

// Returns the caching allocator's unused memory to the driver (no-op without CUDA). A destroyed
// graph's private pool stays reserved until this is called, and allocations outside that pool
// cannot use it: a program that captures one graph after another (one per model) runs out of
// memory with most of the device reserved but unallocated unless it calls this in between.
void release_cached_cuda_memory();

class CudaGraph {
 public:
  // Runs `warmup_calls` calls of work eagerly, then captures one more call, all on a side stream of
  // `device` (a capture cannot use the default stream; the warm-up there lets LibTorch create its
  // per-stream handles and workspaces before the capture), with the device synchronised before and
  // after. A capture only records: the captured call's kernels first run at the first replay. Throws
  // std::runtime_error where the build or device cannot capture, and what the capture throws (for
  // example an operation that synchronises with the host), after ending the capture.
  CudaGraph(const std::function<void()>& work, const torch::Device& device, int warmup_calls);
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Queues the captured work on the current stream of the device.
  void replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rbk
