// Fused softmax cross-entropy: loss and gradient of each row in one kernel (contract and numerics:
// rbk/kernels/softmax_xent_launch.h). One block per row; each thread walks the row with a stride of
// the block, in vectors of 16 bytes where the row's length and alignment allow.
#include "rbk/kernels/softmax_xent_launch.h"

#include <cuda_bf16.h>

#include <cmath>

namespace rbk::cuda {
namespace {

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16(x); }

// A running maximum and the sum of exp(x - max) over the elements seen.
struct MaxSum {
  float m = -INFINITY, s = 0.f;
  __device__ void add(float x) {
    if (x > m) {
      s = s * expf(m - x) + 1.f;  // m = -inf at first: expf(-inf) = 0
      m = x;
    } else {
      s += expf(x - m);
    }
  }
  __device__ void merge(float om, float os) {
    if (om == -INFINITY) return;
    if (m == -INFINITY) {
      m = om;
      s = os;
      return;
    }
    const float nm = fmaxf(m, om);
    s = s * expf(m - nm) + os * expf(om - nm);
    m = nm;
  }
};

// Elements per 16-byte vector.
template <class T>
constexpr int kVec = 16 / static_cast<int>(sizeof(T));

template <class T>
struct alignas(16) Vec {
  T v[kVec<T>];
};

// Calls f(column, value) for every element of the row this thread owns: whole 16-byte vectors when
// `vectorised`, else single elements, strided by the block.
template <class T, class F>
__device__ __forceinline__ void for_my_elements(const T* row, int64_t cols, bool vectorised, F f) {
  if (vectorised) {
    const auto* vrow = reinterpret_cast<const Vec<T>*>(row);
    for (int64_t i = threadIdx.x; i < cols / kVec<T>; i += blockDim.x) {
      const Vec<T> chunk = vrow[i];
#pragma unroll
      for (int k = 0; k < kVec<T>; ++k) f(i * kVec<T> + k, to_float(chunk.v[k]));
    }
  } else {
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) f(j, to_float(row[j]));
  }
}

template <class T>
__global__ void __launch_bounds__(kSoftmaxXentThreads) softmax_xent_kernel(const SoftmaxXentParams p, bool vectorised) {
  const int64_t r = blockIdx.x;
  const T* row = static_cast<const T*>(p.logits) + r * p.cols;
  T* grad = static_cast<T*>(p.grad) + r * p.cols;

  MaxSum mine;
  for_my_elements(row, p.cols, vectorised, [&](int64_t, float x) { mine.add(x); });
  // Block reduction: within each warp by shuffles, then the warps' partials through shared memory.
  for (int off = 16; off > 0; off >>= 1) {
    const float om = __shfl_xor_sync(0xffffffffu, mine.m, off), os = __shfl_xor_sync(0xffffffffu, mine.s, off);
    mine.merge(om, os);
  }
  __shared__ float warp_m[kSoftmaxXentThreads / 32], warp_s[kSoftmaxXentThreads / 32];
  __shared__ float row_m, row_s;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    warp_m[warp] = mine.m;
    warp_s[warp] = mine.s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    MaxSum all;
    for (int w = 0; w < kSoftmaxXentThreads / 32; ++w) all.merge(warp_m[w], warp_s[w]);
    row_m = all.m;
    row_s = all.s;
  }
  __syncthreads();
  const float m = row_m, inv_s = 1.f / row_s, scale = p.grad_scale;
  const int64_t t = p.targets[r];
  const bool target_ok = t >= 0 && t < p.cols;

  auto write = [&](int64_t j, float x) {
    float g = expf(x - m) * inv_s;
    if (j == t) g -= 1.f;
    return from_float<T>(g * scale);
  };
  if (vectorised) {
    const auto* vrow = reinterpret_cast<const Vec<T>*>(row);
    auto* vgrad = reinterpret_cast<Vec<T>*>(grad);
    for (int64_t i = threadIdx.x; i < p.cols / kVec<T>; i += blockDim.x) {
      const Vec<T> chunk = vrow[i];
      Vec<T> out;
#pragma unroll
      for (int k = 0; k < kVec<T>; ++k) out.v[k] = write(i * kVec<T> + k, to_float(chunk.v[k]));
      vgrad[i] = out;
    }
  } else {
    for (int64_t j = threadIdx.x; j < p.cols; j += blockDim.x) grad[j] = write(j, to_float(row[j]));
  }
  if (threadIdx.x == 0) p.row_loss[r] = target_ok ? (m - to_float(row[t])) + logf(row_s) : NAN;
}

template <class T>
bool can_vectorise(const SoftmaxXentParams& p) {
  const auto aligned = [](const void* q) { return reinterpret_cast<uintptr_t>(q) % 16 == 0; };
  return p.cols % kVec<T> == 0 && aligned(p.logits) && aligned(p.grad);
}

}  // namespace

cudaError_t launch_softmax_xent(const SoftmaxXentParams& p, cudaStream_t stream) {
  if (p.rows < 0 || p.cols < 1) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  if (!p.logits || !p.targets || !p.row_loss || !p.grad || p.rows > 0x7fffffff) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(p.rows)), block(kSoftmaxXentThreads);
  if (p.bf16) softmax_xent_kernel<__nv_bfloat16><<<grid, block, 0, stream>>>(p, can_vectorise<__nv_bfloat16>(p));
  else softmax_xent_kernel<float><<<grid, block, 0, stream>>>(p, can_vectorise<float>(p));
  return cudaGetLastError();
}

}  // namespace rbk::cuda
