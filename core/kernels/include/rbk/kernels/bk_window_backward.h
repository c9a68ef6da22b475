// The windowed exact backward of BK-Core (issue 25), written once for the CUDA kernel
// (core/kernels/bk_window_backward.cu) and for the host, where tests/bk_core/test_bk_window.cpp
// checks it against the fp64 oracle on machines without a GPU. Laplacian mode (couplings k = 1).
// No LibTorch here: nvcc compiles it.
//
// Maths (bk_stable_scan.cu, bk_core.h): with gc_j = conj(g_j), u / w the left / right states,
//   bidirectional  F_j = gc_j + u_{j-1}^2 F_{j-1},  T_j = gc_j + w_{j+1}^2 T_{j+1},
//                  dL/da_j = -Re(G_jj^2 (F_j + T_j - gc_j)),
//   causal         S_j = u_j^2 (gc_j + S_{j+1}),  dL/da_j = -Re S_j.
// The scan backward composes these affine maps over the whole row. Their multipliers are the
// derivatives of the state maps (u^2 is d/du' of u = 1/(d - u')), so they contract exactly as the
// forward's states do: for states in the disc C0, two consecutive multipliers have modulus at most
// 1 / (4 eta^2) (eta <= 1) or 1 / (eta^2 + 1)^2 (eta >= 1), eta = Im z. So, like the window
// forward, each run of positions starts its affine state a window W before the run, from 0, with
// the states u (or w) of the window certified by bk_window::walk_into. The error this makes is the
// true affine state at the window's start times the product P of the window's multipliers; the walk
// tracks |P| and restarts twice as far back while |P| > kBkWindowAffineTol (at the row end the
// boundary makes it exact). Since |F|, |T|, |S| <= C(eta) max|g| with C(1) = 8/3, each position's
// gradient moves by at most 2 |G_jj|^2 kBkWindowAffineTol C(eta) max|g|, i.e. (16/3) 2^-26 max|g|
// (~2^-23.6) at eta = 1, under fp32 rounding. The causal S runs the other way (right to left over
// left states): its walk extends the left states past the run, composing the affine maps as it
// goes, until the product is small enough or the row ends (no restart needed).
#pragma once
#include "rbk/kernels/bk_window.h"

// Full unrolling of the per-run loops on the device, so the per-position arrays stay in registers.
#if defined(__CUDACC__)
#define RBK_BKW_UNROLL _Pragma("unroll")
#else
#define RBK_BKW_UNROLL
#endif

namespace rbk::cuda {
constexpr double kBkWindowAffineTol = 1.0 / (1 << 26);  // bound on |P|, the window's product of multipliers
}  // namespace rbk::cuda

namespace rbk::bk_window {

// fp32 complex value (the kernels' arithmetic; std::complex is not usable in device code).
struct Cf {
  float x, y;
};
RBK_BKW_HD Cf cmul(Cf a, Cf b) { return {fmaf(a.x, b.x, -a.y * b.y), fmaf(a.x, b.y, a.y * b.x)}; }
RBK_BKW_HD Cf cadd(Cf a, Cf b) { return {a.x + b.x, a.y + b.y}; }
RBK_BKW_HD Cf csub(Cf a, Cf b) { return {a.x - b.x, a.y - b.y}; }
RBK_BKW_HD float cnorm(Cf a) { return fmaf(a.x, a.x, a.y * a.y); }
// 1/a as the scan kernels take it: conj(a) / |a|^2 with the reciprocal of bk_window.h.
RBK_BKW_HD Cf crecip(Cf a) {
  const float r = reciprocal(cnorm(a));
  return {a.x * r, -a.y * r};
}

// One state step s -> 1/(d - s), d = x + i dy.
RBK_BKW_HD Cf state_step(Cf s, float x, float dy) { return crecip({x - s.x, dy - s.y}); }

// Left affine state entering position `edge`: F_{edge-1} (gradient sum of positions < edge) and
// the left state u_{edge-1}. x_at(pos) = Re d at pos; gc_at(pos) = conj(g_pos). The window starts
// w positions back; the states of the window come from walk_into (certified to tol); restarts from
// 2w, 4w, ... while the product of multipliers exceeds affine_tol.
struct LeftEntry {
  Cf f;  // F_{edge-1}
  Cf u;  // u_{edge-1}
};
template <class XAt, class GcAt>
RBK_BKW_HD LeftEntry left_entry(const XAt& x_at, const GcAt& gc_at, int64_t edge, int64_t n, int64_t w,
                                     float eta, float tol, float affine_tol) {
  for (;;) {
    const int64_t start = edge > w ? edge - w : 0;
    const Disc s = start == 0 ? disc_boundary() : walk_into<false>(x_at, start, n, w, eta, tol);
    Cf u{s.mx, s.my};  // u_{start-1}
    Cf f{0.f, 0.f};    // F_{start-1}, truncated to 0
    float p = 1.f;     // |product of the multipliers applied to the truncated state|
    for (int64_t l = start; l < edge; ++l) {
      const Cf u2 = cmul(u, u);
      f = cadd(gc_at(l), cmul(u2, f));
      p *= cnorm(u);  // |u^2|
      u = state_step(u, x_at(l), -eta);
    }
    if (start == 0 || p <= affine_tol) return {f, u};
    w *= 2;
  }
}

// Right affine state entering position `edge` from the right: T_edge (gradient sum of positions
// >= edge) and w_edge. Mirror of left_entry.
struct RightEntry {
  Cf t;  // T_edge
  Cf w;  // w_edge
};
template <class XAt, class GcAt>
RBK_BKW_HD RightEntry right_entry(const XAt& x_at, const GcAt& gc_at, int64_t edge, int64_t n, int64_t w,
                                       float eta, float tol, float affine_tol) {
  for (;;) {
    const int64_t end = n - edge > w ? edge + w : n;  // window [edge, end)
    const Disc s = end == n ? disc_boundary() : walk_into<true>(x_at, end, n, w, eta, tol);
    Cf ws{s.mx, s.my};  // w_end
    Cf t{0.f, 0.f};     // T_end, truncated to 0
    float p = 1.f;
    for (int64_t l = end - 1; l >= edge; --l) {
      const Cf w2 = cmul(ws, ws);
      t = cadd(gc_at(l), cmul(w2, t));
      p *= cnorm(ws);
      ws = state_step(ws, x_at(l), -eta);
    }
    if (end == n || p <= affine_tol) return {t, ws};
    w *= 2;
  }
}

// Causal: S_edge = sum_{m >= edge} gc_m prod_{l=edge..m} u_l^2, given u_{edge-1}. The left states
// continue past edge and the affine maps compose left to right (S_edge = A S_{l+1} + B), until |A|
// <= affine_tol (the rest is dropped) or the row ends.
template <class XAt, class GcAt>
RBK_BKW_HD Cf causal_entry(const XAt& x_at, const GcAt& gc_at, int64_t edge, int64_t n, Cf u, float eta,
                                float affine_tol) {
  Cf a{1.f, 0.f}, b{0.f, 0.f};
  float p = 1.f;  // |A|, tracked apart so that it can underflow to 0 harmlessly
  for (int64_t l = edge; l < n; ++l) {
    u = state_step(u, x_at(l), -eta);
    a = cmul(a, cmul(u, u));
    b = cadd(b, cmul(a, gc_at(l)));
    p *= cnorm(u);
    if (p <= affine_tol) break;
  }
  return b;
}

// dL/da of the run [s0, s0 + min(ITEMS, n - s0)) of one row: the entries from the left and the
// right, then the replays over the run (the left one keeps u_{j-1} and F_j, or u_j when causal,
// per position). out(pos, value) stores dL/da_pos. warmup: the first window length.
template <int ITEMS, class XAt, class GcAt, class Out>
RBK_BKW_HD void backward_run(const XAt& x_at, const GcAt& gc_at, const Out& out, int64_t s0, int64_t n, bool causal,
                             int64_t warmup, float eta, float tol, float affine_tol) {
  const int cnt = static_cast<int>(n - s0 < ITEMS ? n - s0 : ITEMS);
  const float dy = -eta;
  Cf ku[ITEMS], fj[ITEMS];
  // Loops run over all ITEMS with a guard (not to cnt), so that they unroll with constant indices.
  if (causal) {
    const Disc s = walk_into<false>(x_at, s0, n, warmup, eta, tol);
    Cf u{s.mx, s.my};
    RBK_BKW_UNROLL
    for (int j = 0; j < ITEMS; ++j)
      if (j < cnt) ku[j] = u = state_step(u, x_at(s0 + j), dy);  // u_j
    Cf sj = causal_entry(x_at, gc_at, s0 + cnt, n, u, eta, affine_tol);
    RBK_BKW_UNROLL
    for (int j = ITEMS - 1; j >= 0; --j) {
      if (j >= cnt) continue;
      sj = cmul(cmul(ku[j], ku[j]), cadd(gc_at(s0 + j), sj));
      out(s0 + j, -sj.x);
    }
    return;
  }
  const LeftEntry le = left_entry(x_at, gc_at, s0, n, warmup, eta, tol, affine_tol);
  Cf u = le.u, f = le.f;
  RBK_BKW_UNROLL
  for (int j = 0; j < ITEMS; ++j) {
    if (j >= cnt) break;
    ku[j] = u;  // u_{j-1}
    f = cadd(gc_at(s0 + j), cmul(cmul(u, u), f));
    fj[j] = f;
    u = state_step(u, x_at(s0 + j), dy);
  }
  const RightEntry re = right_entry(x_at, gc_at, s0 + cnt, n, warmup, eta, tol, affine_tol);
  Cf w = re.w, t = re.t;
  RBK_BKW_UNROLL
  for (int j = ITEMS - 1; j >= 0; --j) {
    if (j >= cnt) continue;
    const Cf gc = gc_at(s0 + j);
    t = cadd(gc, cmul(cmul(w, w), t));          // T_j (w = w_{j+1})
    const Cf dw{x_at(s0 + j) - w.x, dy - w.y};  // d_j - w_{j+1}
    const Cf g = crecip(csub(dw, ku[j]));       // G_jj
    out(s0 + j, -cmul(cmul(g, g), csub(cadd(fj[j], t), gc)).x);
    w = crecip(dw);  // w_j
  }
}

}  // namespace rbk::bk_window
