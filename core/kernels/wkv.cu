// RWKV-4 WKV on CUDA: forward and backward, one thread per (batch, channel) column, sequential over
// T (launcher contract and design: rbk/kernels/wkv_launch.h; the recurrence and its derivation:
// rbk/kernels/wkv_column.h). Issue 7 (RWKV baseline). No LibTorch headers in this file.
#include "rbk/kernels/wkv_launch.h"

#include "rbk/kernels/wkv_column.h"

namespace rbk::cuda {
namespace {

using wkv_detail::wkv_backward_column;
using wkv_detail::wkv_exp;
using wkv_detail::wkv_forward_column;

__global__ void __launch_bounds__(kWkvThreads) wkv_forward_kernel(const WkvParams p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= p.batch * p.channels) return;
  const int64_t b = idx / p.channels, c = idx % p.channels;
  const int64_t off = b * p.steps * p.channels + c;  // element (b, 0, c)
  const float w = -wkv_exp(p.time_decay[c]);
  wkv_forward_column<float>(p.steps, p.channels, w, p.time_first[c], p.k + off, p.v + off, p.out + off);
}

__global__ void __launch_bounds__(kWkvThreads) wkv_backward_kernel(const WkvParams p) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= p.batch * p.channels) return;
  const int64_t b = idx / p.channels, c = idx % p.channels;
  const int64_t off = b * p.steps * p.channels + c;
  const float w = -wkv_exp(p.time_decay[c]);
  float gw = 0.f, gu = 0.f;
  wkv_backward_column<float>(p.steps, p.channels, w, p.time_first[c], p.k + off, p.v + off, p.forward_out + off,
                             p.grad_out + off, p.grad_k + off, p.grad_v + off, &gw, &gu);
  // dw/dtime_decay = -exp(time_decay) = w.
  p.grad_time_decay_rows[idx] = gw * w;
  p.grad_time_first_rows[idx] = gu;
}

unsigned blocks_for(int64_t columns) { return static_cast<unsigned>((columns + kWkvThreads - 1) / kWkvThreads); }

bool valid_sizes(const WkvParams& p) {
  return p.batch >= 0 && p.steps >= 0 && p.channels >= 0 && p.time_decay && p.time_first;
}

}  // namespace

cudaError_t launch_wkv_forward(const WkvParams& p, cudaStream_t stream) {
  if (!valid_sizes(p)) return cudaErrorInvalidValue;
  const int64_t columns = p.batch * p.channels;
  if (columns == 0 || p.steps == 0) return cudaSuccess;  // nothing to write
  if (!p.k || !p.v || !p.out) return cudaErrorInvalidValue;
  wkv_forward_kernel<<<blocks_for(columns), kWkvThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_wkv_backward(const WkvParams& p, cudaStream_t stream) {
  if (!valid_sizes(p)) return cudaErrorInvalidValue;
  const int64_t columns = p.batch * p.channels;
  if (columns == 0) return cudaSuccess;
  // T == 0 still launches: the per-row parameter gradients must be written (as zeros).
  if (!p.grad_time_decay_rows || !p.grad_time_first_rows) return cudaErrorInvalidValue;
  if (p.steps > 0 && (!p.k || !p.v || !p.forward_out || !p.grad_out || !p.grad_k || !p.grad_v))
    return cudaErrorInvalidValue;
  wkv_backward_kernel<<<blocks_for(columns), kWkvThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace rbk::cuda
