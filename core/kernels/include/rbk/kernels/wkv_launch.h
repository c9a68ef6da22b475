// Raw-pointer launchers of the CUDA RWKV-4 WKV kernel (core/kernels/wkv.cu). No LibTorch here, so
// the kernel compiles with nvcc on machines whose Torch has no CUDA; the torch glue
// (rbk/cuda_glue/wkv_cuda.h) and the gpu test call these. Issue 7 (RWKV baseline).
//
// Design: one thread per (batch, channel) column, sequential over T with the running
// (numerator, denominator, max-exponent) state in registers (rbk/kernels/wkv_column.h holds the
// recurrence, shared with the host execution). k, v are (B, T, C) contiguous, so a warp of
// consecutive channels reads 32 consecutive floats per step (coalesced). fp32 only, IEEE expf.
// Backward: a forward-in-time pass then a reverse pass; the only per-step data carried between
// them (the shift m_t and z_t of 1/D_t) live in the grad_k / grad_v output slots until the reverse
// pass overwrites them, so no workspace is needed. dL/dtime_decay and dL/dtime_first are reduced
// over T per (b, c) here and over B by the caller.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace rbk::cuda {

// Threads per block (two warps: a small block spreads the B*C columns over more SMs).
constexpr int kWkvThreads = 64;

struct WkvParams {
  const float* time_decay = nullptr;  // (C,)  w = -exp(time_decay)
  const float* time_first = nullptr;  // (C,)  u
  const float* k = nullptr;           // (B, T, C) contiguous
  const float* v = nullptr;           // (B, T, C) contiguous
  // Forward only.
  float* out = nullptr;               // (B, T, C) y
  // Backward only.
  const float* forward_out = nullptr;       // (B, T, C) y from the forward (saved)
  const float* grad_out = nullptr;          // (B, T, C) dL/dy
  float* grad_k = nullptr;                  // (B, T, C)
  float* grad_v = nullptr;                  // (B, T, C)
  float* grad_time_decay_rows = nullptr;    // (B, C) dL/dtime_decay of each batch row
  float* grad_time_first_rows = nullptr;    // (B, C) dL/dtime_first of each batch row
  int64_t batch = 0;
  int64_t steps = 0;     // T
  int64_t channels = 0;  // C
};

// Return the launch error (cudaSuccess when the launch was accepted, or when there is nothing to
// do); cudaErrorInvalidValue for missing pointers or negative sizes. They do not synchronise.
cudaError_t launch_wkv_forward(const WkvParams& p, cudaStream_t stream);
cudaError_t launch_wkv_backward(const WkvParams& p, cudaStream_t stream);

}  // namespace rbk::cuda
