// Device time of GPU work, measured with a pair of CUDA events on one stream: the one timing
// primitive of every CUDA benchmark, experiment and test in the project (claims C17 and the
// baseline kernels). Header-only and LibTorch-free, so torch-free benchmarks can use it too.
//
// Event timing includes the launch gap of the first kernel after the start event (6-8 µs on the
// lent H100, see notes/kernel_speed.md), so callers that report small times also time an empty
// kernel as the floor, and time small kernels from a CUDA graph as well (time_cuda_graph).
#pragma once
#include "rbk/timing.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace rbk::cuda {

inline void throw_on_cuda_error(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}

class CudaEventTimer {
 public:
  explicit CudaEventTimer(cudaStream_t stream = nullptr) : stream_(stream) {
    throw_on_cuda_error(cudaEventCreate(&start_), "cudaEventCreate");
    throw_on_cuda_error(cudaEventCreate(&stop_), "cudaEventCreate");
  }
  ~CudaEventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  CudaEventTimer(const CudaEventTimer&) = delete;
  CudaEventTimer& operator=(const CudaEventTimer&) = delete;

  void start() { throw_on_cuda_error(cudaEventRecord(start_, stream_), "cudaEventRecord(start)"); }
  // Waits for the stop event; returns the device time between the two events in seconds.
  double stop_seconds() {
    throw_on_cuda_error(cudaEventRecord(stop_, stream_), "cudaEventRecord(stop)");
    throw_on_cuda_error(cudaEventSynchronize(stop_), "cudaEventSynchronize");
    float ms = 0.f;
    throw_on_cuda_error(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
    return 1e-3 * static_cast<double>(ms);
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// fn() enqueues work on `stream`; returns median / min / max over `repeats` event-timed calls
// after `warmup` untimed ones.
template <class F>
TimingStats time_cuda_events(F&& fn, int warmup, int repeats, cudaStream_t stream = nullptr) {
  if (repeats < 1) throw std::invalid_argument("time_cuda_events: repeats must be >= 1");
  for (int i = 0; i < warmup; ++i) fn();
  throw_on_cuda_error(cudaStreamSynchronize(stream), "warm-up");
  CudaEventTimer timer(stream);
  std::vector<double> t;
  t.reserve(static_cast<size_t>(repeats));
  for (int i = 0; i < repeats; ++i) {
    timer.start();
    fn();
    t.push_back(timer.stop_seconds());
  }
  std::sort(t.begin(), t.end());
  TimingStats st;
  st.repeats = repeats;
  st.min_s = t.front();
  st.max_s = t.back();
  const size_t m = t.size() / 2;
  st.median_s = t.size() % 2 ? t[m] : 0.5 * (t[m - 1] + t[m]);
  return st;
}

// Per-call device time of fn(stream) replayed from a CUDA graph: `calls` calls are captured into
// one graph on a private stream, and the graph is replayed between two events; median / min / max
// over `repeats` replays (after `warmup`), divided by `calls`. Inside a graph consecutive kernels
// start with the device's own gap instead of the host's launch latency (the device tool's METHOD.md:
// "for many small launches, capture a graph and time its replays"), so this is what a kernel costs
// inside a model step, where time_cuda_events also counts the launch of the first kernel. fn must
// only enqueue work (no allocation, no synchronisation), as stream capture requires.
template <class F>
TimingStats time_cuda_graph(F&& fn, int calls, int warmup, int repeats) {
  if (calls < 1) throw std::invalid_argument("time_cuda_graph: calls must be >= 1");
  cudaStream_t stream = nullptr;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  auto release = [&] {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (stream) cudaStreamDestroy(stream);
  };
  try {
    throw_on_cuda_error(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
    fn(stream);  // outside the capture: module load and any lazy initialisation
    throw_on_cuda_error(cudaStreamSynchronize(stream), "graph warm-up call");
    throw_on_cuda_error(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    for (int i = 0; i < calls; ++i) fn(stream);
    throw_on_cuda_error(cudaStreamEndCapture(stream, &graph), "cudaStreamEndCapture");
    throw_on_cuda_error(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
    TimingStats t = time_cuda_events([&] { throw_on_cuda_error(cudaGraphLaunch(exec, stream), "cudaGraphLaunch"); }, warmup,
                                     repeats, stream);
    t.median_s /= calls;
    t.min_s /= calls;
    t.max_s /= calls;
    release();
    return t;
  } catch (...) {
    release();
    throw;
  }
}

// Device-to-device copy bandwidth in GB/s, counted as bytes read + written (the ceiling every
// memory-bound kernel's effective bandwidth is compared with, measured in the same run).
inline double measure_copy_bandwidth_gbps(int64_t bytes, int warmup, int repeats, cudaStream_t stream = nullptr) {
  void* src = nullptr;
  void* dst = nullptr;
  throw_on_cuda_error(cudaMalloc(&src, static_cast<size_t>(bytes)), "cudaMalloc(copy source)");
  throw_on_cuda_error(cudaMalloc(&dst, static_cast<size_t>(bytes)), "cudaMalloc(copy destination)");
  // Non-zero content, so no copy engine or compression can shortcut the traffic.
  throw_on_cuda_error(cudaMemsetAsync(src, 0x5a, static_cast<size_t>(bytes), stream), "cudaMemset");
  TimingStats t;
  try {
    t = time_cuda_events([&] {
      throw_on_cuda_error(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, stream),
                          "cudaMemcpyAsync(D2D)");
    }, warmup, repeats, stream);
  } catch (...) {
    cudaFree(src);
    cudaFree(dst);
    throw;
  }
  cudaFree(src);
  cudaFree(dst);
  return 2.0 * static_cast<double>(bytes) / t.median_s / 1e9;
}

}  // namespace rbk::cuda
