// Device-side complex numbers and 2x2 complex matrices for the BK-Core scans (bk_stable_scan.cu),
// the typed loads and the shared-memory layout every BK kernel uses.
// Claim C01/C17; upstream-audit §1.11 ("a parallel version is possible with normalised 2x2 products").
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "rbk/kernels/bk_window.h"  // bk_window::reciprocal: the one rcp.approx of the BK kernels

namespace rbk::cuda::detail {

struct Cf {
  float x;  // real part
  float y;  // imaginary part
};

__device__ __forceinline__ Cf cf(float x, float y) { return Cf{x, y}; }
__device__ __forceinline__ Cf operator+(Cf a, Cf b) { return {a.x + b.x, a.y + b.y}; }
__device__ __forceinline__ Cf operator-(Cf a, Cf b) { return {a.x - b.x, a.y - b.y}; }
__device__ __forceinline__ Cf operator*(Cf a, Cf b) { return {a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x}; }
__device__ __forceinline__ Cf operator*(float s, Cf a) { return {s * a.x, s * a.y}; }
__device__ __forceinline__ Cf conj(Cf a) { return {a.x, -a.y}; }

// 1/a through 1/|a|^2 with the hardware reciprocal (max 1 ulp). On the stable path every divisor
// is a pivot with |a| >= Im z > 0, so |a|^2 neither vanishes nor (for |a| < 1e19) overflows;
// the correctly rounded IEEE division would cost a slow-path branch per element for no accuracy
// that the 1e-5 tolerance could see.
__device__ __forceinline__ float rcp_approx(float x) { return bk_window::reciprocal(x); }
__device__ __forceinline__ Cf recip(Cf a) {
  const float r = rcp_approx(a.x * a.x + a.y * a.y);
  return {a.x * r, -a.y * r};
}
__device__ __forceinline__ Cf cdiv(Cf num, Cf den) { return num * recip(den); }

// [[a, b], [c, d]] acting on column vectors (p, q).
struct M2 {
  Cf a, b, c, d;
};
struct V2 {
  Cf p, q;
};

__device__ __forceinline__ M2 identity_m2() { return {{1.f, 0.f}, {0.f, 0.f}, {0.f, 0.f}, {1.f, 0.f}}; }

__device__ __forceinline__ M2 operator*(const M2& l, const M2& r) {
  return {l.a * r.a + l.b * r.c, l.a * r.b + l.b * r.d, l.c * r.a + l.d * r.c, l.c * r.b + l.d * r.d};
}
__device__ __forceinline__ V2 operator*(const M2& m, const V2& v) { return {m.a * v.p + m.b * v.q, m.c * v.p + m.d * v.q}; }

// Scale by the power of two that brings the largest |component| into [1, 2): exact (no rounding),
// and a Moebius map does not change under scaling, so products of any length stay finite.
__device__ __forceinline__ void normalise(M2& m) {
  float s = fmaxf(fmaxf(fmaxf(fabsf(m.a.x), fabsf(m.a.y)), fmaxf(fabsf(m.b.x), fabsf(m.b.y))),
                  fmaxf(fmaxf(fabsf(m.c.x), fabsf(m.c.y)), fmaxf(fabsf(m.d.x), fabsf(m.d.y))));
  int e = (__float_as_int(s) >> 23) & 0xff;
  e = min(max(e, 1), 253);
  const float k = __int_as_float((254 - e) << 23);
  m.a = k * m.a;
  m.b = k * m.b;
  m.c = k * m.c;
  m.d = k * m.d;
}

// Left-multiplies P by the pivot map [[d, -k], [1, 0]]: (p, q) -> (d p - k q, p).
__device__ __forceinline__ void pivot_step(M2& P, Cf d, float k) {
  const Cf na = d * P.a - k * P.c;
  const Cf nb = d * P.b - k * P.d;
  P.c = P.a;
  P.d = P.b;
  P.a = na;
  P.b = nb;
}
// Right-multiplies P by the pivot map [[d, -k], [1, 0]] (used to build A_first ... A_last in one
// ascending pass): [[a d + b, -k a], [c d + d', -k c]].
__device__ __forceinline__ void pivot_step_right(M2& P, Cf d, float k) {
  const Cf na = P.a * d + P.b;
  const Cf nc = P.c * d + P.d;
  P.b = -k * P.a;
  P.d = -k * P.c;
  P.a = na;
  P.c = nc;
}
// Left-multiplies P by the affine map x -> alpha x + c, written [[alpha, c], [0, 1]].
__device__ __forceinline__ void affine_step(M2& P, Cf alpha, Cf c) {
  P.a = alpha * P.a + c * P.c;
  P.b = alpha * P.b + c * P.d;
}

// Affine map x -> a x + c (the backward's first-order recurrences): composing costs two complex
// products and shuffles 4 floats, a quarter of the general 2x2 matrix.
struct Af {
  Cf a, c;
};
__device__ __forceinline__ Af identity_af() { return {{1.f, 0.f}, {0.f, 0.f}}; }
// (later * earlier): apply earlier first.
__device__ __forceinline__ Af operator*(const Af& l, const Af& r) { return {l.a * r.a, l.a * r.c + l.c}; }
__device__ __forceinline__ Cf operator*(const Af& l, Cf x) { return l.a * x + l.c; }

template <class E>
__device__ __forceinline__ E identity_of();
template <>
__device__ __forceinline__ M2 identity_of<M2>() { return identity_m2(); }
template <>
__device__ __forceinline__ Af identity_of<Af>() { return identity_af(); }

__device__ __forceinline__ Cf shfl_up(Cf v, int off) {
  return {__shfl_up_sync(0xffffffffu, v.x, off), __shfl_up_sync(0xffffffffu, v.y, off)};
}
__device__ __forceinline__ Cf shfl_down(Cf v, int off) {
  return {__shfl_down_sync(0xffffffffu, v.x, off), __shfl_down_sync(0xffffffffu, v.y, off)};
}
__device__ __forceinline__ M2 shfl_up(const M2& m, int off) {
  return {shfl_up(m.a, off), shfl_up(m.b, off), shfl_up(m.c, off), shfl_up(m.d, off)};
}
__device__ __forceinline__ Cf shfl_idx(Cf v, int src) {
  return {__shfl_sync(0xffffffffu, v.x, src), __shfl_sync(0xffffffffu, v.y, src)};
}
__device__ __forceinline__ M2 shfl_idx(const M2& m, int src) {
  return {shfl_idx(m.a, src), shfl_idx(m.b, src), shfl_idx(m.c, src), shfl_idx(m.d, src)};
}
__device__ __forceinline__ Af shfl_up(const Af& m, int off) { return {shfl_up(m.a, off), shfl_up(m.c, off)}; }
__device__ __forceinline__ Af shfl_down(const Af& m, int off) { return {shfl_down(m.a, off), shfl_down(m.c, off)}; }
__device__ __forceinline__ Af shfl_idx(const Af& m, int src) { return {shfl_idx(m.a, src), shfl_idx(m.c, src)}; }
__device__ __forceinline__ M2 shfl_down(const M2& m, int off) {
  return {shfl_down(m.a, off), shfl_down(m.b, off), shfl_down(m.c, off), shfl_down(m.d, off)};
}

// Shared-memory layout of the window kernels' staged rows (bk_window_forward.cu,
// bk_window_backward.cu): one pad word per 16 elements. Every run of 4, 16 or 32 positions that
// starts at a multiple of its length (and every 16-position walk of a run of 16 or 32) then lies
// inside whole 16-element groups, so its addresses are a base plus compile-time offsets (no
// per-access index arithmetic), while a warp's runs of 16 start 17 words apart and hit 32
// different banks.
__device__ __forceinline__ int pad16(int i) { return i + (i >> 4); }

// Element i of a float32 or bfloat16 array, as float (the v-only kernels read either).
template <class Tin>
__device__ __forceinline__ float load_as_float(const void* p, int64_t i) {
  if constexpr (std::is_same<Tin, float>::value) {
    return static_cast<const float*>(p)[i];
  } else {
    return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  }
}

}  // namespace rbk::cuda::detail
