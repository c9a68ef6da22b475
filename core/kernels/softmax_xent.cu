// Fused softmax cross-entropy: loss and gradient of each row in one kernel (contract and numerics:
// rbk/kernels/softmax_xent_launch.h). One block per row; each thread walks the row with a stride of
// the block, in vectors of 16 bytes where the row's length and alignment allow. A row that fits in
// shared memory is read from global memory once; a longer one twice.
#include "rbk/kernels/softmax_xent_launch.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>

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
// `vectorised`, else single elements, strided by the block. Vectors are loaded kBatch at a time
// before any is used, so that each thread keeps several loads in flight (the staged kernel runs
// only two blocks per SM). With kStage, each vector (or element) is also copied, as loaded, to the
// same place in `staged` (the row in shared memory).
template <bool kStage, class T, class F>
__device__ __forceinline__ void for_my_elements(const T* row, T* staged, int64_t cols, bool vectorised, F f) {
  if (vectorised) {
    constexpr int kBatch = 4;
    const auto* vrow = reinterpret_cast<const Vec<T>*>(row);
    auto* vstaged = reinterpret_cast<Vec<T>*>(staged);
    const int64_t n = cols / kVec<T>, stride = blockDim.x;
    const auto use = [&](int64_t i, const Vec<T>& chunk) {
      if constexpr (kStage) vstaged[i] = chunk;
#pragma unroll
      for (int k = 0; k < kVec<T>; ++k) f(i * kVec<T> + k, to_float(chunk.v[k]));
    };
    int64_t i = threadIdx.x;
    for (; i + (kBatch - 1) * stride < n; i += kBatch * stride) {
      Vec<T> chunk[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) chunk[b] = vrow[i + b * stride];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) use(i + b * stride, chunk[b]);
    }
    for (; i < n; i += stride) use(i, vrow[i]);
  } else {
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const T x = row[j];
      if constexpr (kStage) staged[j] = x;
      f(j, to_float(x));
    }
  }
}

// The staged kernel's threads per block: its shared memory allows two blocks per SM, so twice the
// unstaged kernel's: 1,024 threads an SM, each with kBatch 16-byte loads in flight (~64 KB an SM,
// above the ~30 KB that HBM's latency needs). Four times as many would need <= 32 registers a
// thread for two blocks.
constexpr int kStagedThreads = 2 * kSoftmaxXentThreads;
constexpr float kLog2e = 1.4426950408889634f;

// v reduced over the block by op (max or sum): within each warp by shuffles, then the warps'
// partials through `scratch` (kThreads / 32 floats). Every thread returns the result; the barriers
// also order the block's earlier shared-memory writes before what follows.
template <int kThreads, class Op>
__device__ float block_reduce(float v, Op op, float* scratch, float* result) {
  for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float a = scratch[0];
    for (int w = 1; w < kThreads / 32; ++w) a = op(a, scratch[w]);
    *result = a;
  }
  __syncthreads();
  return *result;
}

// grad[j] = write(j, src[j]) over the row, each thread on the elements for_my_elements gives it,
// 16-byte vectors where `vectorised`: the gradient pass of both kernels (src: the row in global
// memory, or its copy in shared memory).
template <class T, class W>
__device__ __forceinline__ void write_gradient_row(const T* src, T* grad, int64_t cols, bool vectorised, W write) {
  if (vectorised) {
    const auto* vsrc = reinterpret_cast<const Vec<T>*>(src);
    auto* vgrad = reinterpret_cast<Vec<T>*>(grad);
    for (int64_t i = threadIdx.x; i < cols / kVec<T>; i += blockDim.x) {
      const Vec<T> chunk = vsrc[i];
      Vec<T> out;
#pragma unroll
      for (int k = 0; k < kVec<T>; ++k) out.v[k] = write(i * kVec<T> + k, to_float(chunk.v[k]));
      vgrad[i] = out;
    }
  } else {
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) grad[j] = write(j, to_float(src[j]));
  }
}

// Two reads of the row from global memory (rows too long for shared memory): the first keeps a
// running maximum and sum (MaxSum), the second writes the gradient.
template <class T>
__global__ void __launch_bounds__(kSoftmaxXentThreads) softmax_xent_kernel(const SoftmaxXentParams p, bool vectorised) {
  const int64_t r = blockIdx.x;
  const T* row = static_cast<const T*>(p.logits) + r * p.cols;
  T* grad = static_cast<T*>(p.grad) + r * p.cols;

  MaxSum mine;
  for_my_elements<false>(row, static_cast<T*>(nullptr), p.cols, vectorised, [&](int64_t, float x) { mine.add(x); });
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
  auto write = [&](int64_t j, float x) {
    float g = expf(x - m) * inv_s;
    if (j == t) g -= 1.f;
    return from_float<T>(g * scale);
  };
  write_gradient_row(row, grad, p.cols, vectorised, write);
  if (threadIdx.x == 0) p.row_loss[r] = t >= 0 && t < p.cols ? (m - to_float(row[t])) + logf(row_s) : NAN;
}

// Calls f(column, value) for every element of the row's copy in shared memory, as for_my_elements
// walks the row (shared memory's latency needs no batching).
template <class T, class F>
__device__ __forceinline__ void for_my_staged(const T* staged, int64_t cols, bool vectorised, F f) {
  if (vectorised) {
    const auto* v = reinterpret_cast<const Vec<T>*>(staged);
    for (int64_t i = threadIdx.x; i < cols / kVec<T>; i += blockDim.x) {
      const Vec<T> chunk = v[i];
#pragma unroll
      for (int k = 0; k < kVec<T>; ++k) f(i * kVec<T> + k, to_float(chunk.v[k]));
    }
  } else {
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) f(j, to_float(staged[j]));
  }
}

// One read of the row from global memory: it is copied to shared memory as it is loaded, and three
// passes run over the copy: the maximum m (with the load), the sum s of exp(x - m), the gradient.
// The exponentials are exp2((x - m) log2 e) with the product in one FMA: a maximum then a sum costs
// ~5 instructions an element where the online update (MaxSum) costs a branch and a full expf, and
// session 30's bench showed the kernel bound by instructions, not by HBM (NOTES.md). Rounding m log2 e
// shifts every exponent of the row by the same amount, which cancels in exp(x - m) / s and moves the
// loss by under 1e-5 for |m| < 1e3.
template <class T>
__global__ void __launch_bounds__(kStagedThreads) softmax_xent_staged_kernel(const SoftmaxXentParams p, bool vectorised) {
  extern __shared__ __align__(16) unsigned char staged_bytes[];
  T* staged = reinterpret_cast<T*>(staged_bytes);
  __shared__ float scratch[kStagedThreads / 32], result;
  const int64_t r = blockIdx.x;
  const T* row = static_cast<const T*>(p.logits) + r * p.cols;
  T* grad = static_cast<T*>(p.grad) + r * p.cols;

  float mine = -INFINITY;
  for_my_elements<true>(row, staged, p.cols, vectorised, [&](int64_t, float x) { mine = fmaxf(mine, x); });
  const float m = block_reduce<kStagedThreads>(mine, [](float a, float b) { return fmaxf(a, b); }, scratch, &result);
  const float m2 = m * kLog2e;
  float part = 0.f;
  for_my_staged(staged, p.cols, vectorised, [&](int64_t, float x) { part += exp2f(fmaf(x, kLog2e, -m2)); });
  const float s = block_reduce<kStagedThreads>(part, [](float a, float b) { return a + b; }, scratch, &result);
  const float inv_s = 1.f / s, scale = p.grad_scale;
  const int64_t t = p.targets[r];
  auto write = [&](int64_t j, float x) {
    float g = exp2f(fmaf(x, kLog2e, -m2)) * inv_s;
    if (j == t) g -= 1.f;
    return from_float<T>(g * scale);
  };
  write_gradient_row(staged, grad, p.cols, vectorised, write);
  if (threadIdx.x == 0) p.row_loss[r] = t >= 0 && t < p.cols ? (m - to_float(row[t])) + logf(s) : NAN;
}

template <class T>
bool can_vectorise(const SoftmaxXentParams& p) {
  const auto aligned = [](const void* q) { return reinterpret_cast<uintptr_t>(q) % 16 == 0; };
  return p.cols % kVec<T> == 0 && aligned(p.logits) && aligned(p.grad);
}

// Whether this row length can be staged on the current device, raising the staged kernel's
// dynamic shared memory limit once per device (above 48 KB a kernel must opt in; the first launch
// comes before any CUDA graph capture: a captured step is warmed up eagerly first).
template <class T>
bool stage_in_shared_memory(const SoftmaxXentParams& p) {
  const int64_t bytes = p.cols * static_cast<int64_t>(sizeof(T));
  if (!p.allow_staging || bytes > kSoftmaxXentMaxStagedBytes) return false;
  int device = 0, optin = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return false;
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) return false;
  // Leave room for the kernel's static shared memory (the reductions' partials: 80 bytes).
  const int64_t limit = std::min<int64_t>(kSoftmaxXentMaxStagedBytes, int64_t{optin} - 1024);
  if (bytes > limit) return false;
  static std::atomic<uint64_t> raised{0};
  const uint64_t bit = uint64_t{1} << device;
  if (!(raised.load() & bit)) {
    if (cudaFuncSetAttribute(softmax_xent_staged_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(limit)) != cudaSuccess) {
      (void)cudaGetLastError();  // clear it: the unstaged kernel runs instead
      return false;
    }
    raised.fetch_or(bit);
  }
  return true;
}

template <class T>
void launch_typed(const SoftmaxXentParams& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(p.rows));
  const bool vectorised = can_vectorise<T>(p);
  if (stage_in_shared_memory<T>(p)) {
    const size_t bytes = static_cast<size_t>(p.cols) * sizeof(T);
    softmax_xent_staged_kernel<T><<<grid, kStagedThreads, bytes, stream>>>(p, vectorised);
  } else {
    softmax_xent_kernel<T><<<grid, kSoftmaxXentThreads, 0, stream>>>(p, vectorised);
  }
}

}  // namespace

cudaError_t launch_softmax_xent(const SoftmaxXentParams& p, cudaStream_t stream) {
  if (p.rows < 0 || p.cols < 1) return cudaErrorInvalidValue;
  if (p.rows == 0) return cudaSuccess;
  if (!p.logits || !p.targets || !p.row_loss || !p.grad || p.rows > 0x7fffffff) return cudaErrorInvalidValue;
  if (p.bf16) launch_typed<__nv_bfloat16>(p, stream);
  else launch_typed<float>(p, stream);
  return cudaGetLastError();
}

bool softmax_xent_stages_rows(const SoftmaxXentParams& p) {
  return p.cols >= 1 && (p.bf16 ? stage_in_shared_memory<__nv_bfloat16>(p) : stage_in_shared_memory<float>(p));
}

}  // namespace rbk::cuda
