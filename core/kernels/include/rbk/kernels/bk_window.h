// The certified walk of the BK-Core window forward (BkForwardAlgorithm::Window; the maths is in
// bk_scan_launch.h), written once for the CUDA kernel (core/kernels/bk_stable_scan.cu) and for the
// host, where tests/bk_core/test_bk_window.cpp checks on machines without a GPU that the exact
// state always lies in the walked disc and that the whole algorithm matches the fp64 oracle.
// Laplacian mode (couplings k = 1). No LibTorch here: nvcc compiles it. Claims C01, C17; issue 3.
#pragma once
#include <math.h>

#include <cstdint>

#if defined(__CUDACC__)
#define RBK_BKW_HD __host__ __device__ __forceinline__
#define RBK_BKW_HD_RARE __host__ __device__ __noinline__  // the restart path: kept out of the hot loop's registers
#else
#define RBK_BKW_HD inline
#define RBK_BKW_HD_RARE inline
#endif

namespace rbk::cuda {
constexpr double kBkWindowMinImZ = 0.5;  // Auto's threshold: below it the two-step contraction bound gives no guarantee
constexpr double kBkWindowTol = 1.0 / (1 << 26);  // disc radius bound, in units of Im z (bk_scan_launch.h)
constexpr int kBkWindowWarmup = 16;  // first walk length, and the shared-memory halo of each tile
}  // namespace rbk::cuda

namespace rbk::bk_window {

// Disc D(m, r) of the values a left state u (or a right state w) can take; r = 0: a known state.
struct Disc {
  float mx, my;  // centre m = mx + i my
  float r;       // radius
};

// 1/x for x = |c|^2 - r^2 >= Im(z)^2 > 0: the hardware reciprocal on the device (max 1 ulp, as the
// scan kernels' pivots), IEEE division on the host.
RBK_BKW_HD float reciprocal(float x) {
#if defined(__CUDA_ARCH__)
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
#else
  return 1.0f / x;
#endif
}

// The disc C0 = D(i / (2 eta), 1 / (2 eta)) that holds every state whatever came before, and the
// known boundary state 0 (u_{-1} = w_N = 0).
RBK_BKW_HD Disc disc_c0(float eta) { return {0.f, 0.5f / eta, 0.5f / eta}; }
RBK_BKW_HD Disc disc_boundary() { return {0.f, 0.f, 0.f}; }

// One pivot step u -> 1/(d - u), d = x + i dy (dy = -Im z), applied to the disc: d - D(m, r) is the
// disc D(c, r), c = d - m, and inversion sends it to D(conj(c) / (|c|^2 - r^2), r / (|c|^2 - r^2)).
// With r = 0 it is the plain step of a known state.
RBK_BKW_HD void disc_step(Disc& s, float x, float dy) {
  const float cx = x - s.mx, cy = dy - s.my;
  const float inv = reciprocal(fmaf(cx, cx, fmaf(cy, cy, -s.r * s.r)));
  s.mx = cx * inv;
  s.my = -cy * inv;
  s.r *= inv;
}

// The state entering position `edge` from the left (u_{edge-1}, from positions < edge) or from the
// right (w_edge, from positions edge .. n-1), certified to radius <= tol: walks of w, 2w, 4w, ...
// positions from C0, each from scratch, until the radius is small enough or the walk reaches the
// row end, where the boundary state makes it exact. x_at(pos) = Re d at row position pos.
template <bool RIGHT, class XAt>
RBK_BKW_HD_RARE Disc walk_into(const XAt& x_at, int64_t edge, int64_t n, int64_t w, float eta, float tol) {
  for (;;) {
    const int64_t avail = RIGHT ? n - edge : edge;
    const int64_t len = w < avail ? w : avail;
    const bool exact = len == avail;
    Disc s = exact ? disc_boundary() : disc_c0(eta);
    for (int64_t i = 0; i < len; ++i) disc_step(s, x_at(RIGHT ? edge + len - 1 - i : edge - len + i), -eta);
    if (exact || s.r <= tol) return s;
    w *= 2;
  }
}

}  // namespace rbk::bk_window
