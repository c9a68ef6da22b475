// Internal to the runs variant of the selective scan (selective_scan_runs_fwd.cu,
// selective_scan_runs_bwd.cu): the one-channel-per-lane block shape both kernels use and their
// register-run load/store and decay helpers. Not a public header. Everything is in an anonymous
// namespace, as it was when both kernels shared one file: each .cu file gets its own copy.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "selective_scan_common.cuh"

namespace rbk::cuda::ss_detail {
namespace {

constexpr int kLanes = static_cast<int>(kSsChannelsPerBlock);     // 32 channels per block, one per lane
constexpr int kNS = static_cast<int>(kSsMaxState);                // 16
static_assert(kLanes == 32, "one channel per lane");

__device__ __forceinline__ float ex2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// R consecutive floats from src, 16-byte aligned, as float4 loads (global rows, and slices of
// shared-memory rows, such as a run's B or C, where all lanes read the same address: a broadcast).
template <int R>
__device__ __forceinline__ void load_run4(const float* src, float (&v)[R]) {
  static_assert(R % 4 == 0, "whole float4s");
#pragma unroll
  for (int q = 0; q < R / 4; ++q) {
    const float4 x = *reinterpret_cast<const float4*>(src + 4 * q);
    v[4 * q] = x.x;
    v[4 * q + 1] = x.y;
    v[4 * q + 2] = x.z;
    v[4 * q + 3] = x.w;
  }
}
// R consecutive floats of row `row` from step t (zeros at steps >= len); float4 loads when VEC.
template <int R>
__device__ __forceinline__ void load_run(const float* row, int64_t t, int64_t len, bool vec, float (&v)[R]) {
  if (vec && t + R <= len) {
    load_run4(row + t, v);
  } else {
#pragma unroll
    for (int i = 0; i < R; ++i) v[i] = t + i < len ? row[t + i] : 0.f;
  }
}
template <int R>
__device__ __forceinline__ void store_run(float* row, int64_t t, int64_t len, bool vec, const float (&v)[R]) {
  if (vec && t + R <= len) {
#pragma unroll
    for (int q = 0; q < R / 4; ++q)
      *reinterpret_cast<float4*>(row + t + 4 * q) = make_float4(v[4 * q], v[4 * q + 1], v[4 * q + 2], v[4 * q + 3]);
  } else {
#pragma unroll
    for (int i = 0; i < R; ++i)
      if (t + i < len) row[t + i] = v[i];
  }
}

}  // namespace
}  // namespace rbk::cuda::ss_detail
