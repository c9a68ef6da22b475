// The RWKV-4 WKV recurrence of one (batch, channel) column, forward and backward, written once for
// the CUDA kernel (core/kernels/wkv.cu, one thread per column) and for the host execution of the
// same arithmetic (rbk::wkv with WkvPath::Kernel on the CPU), so the kernel's maths is tested on
// machines without a GPU. Issue 7 (RWKV baseline). No LibTorch here: nvcc compiles it.
//
// Maths. Per channel: w = -exp(time_decay) < 0, u = time_first; k_t, v_t scalars of the column.
//   a_t = sum_{i<=t} e^{(t-i) w + k_i} v_i,   b_t = sum_{i<=t} e^{(t-i) w + k_i}   (a_{-1} = b_{-1} = 0)
//   y_t = (a_{t-1} + e^{u+k_t} v_t) / D_t,    D_t = b_{t-1} + e^{u+k_t}
// Stable form (the running-max trick): a = p e^o, b = q e^o, and every exp gets its argument minus
// the larger of the two exponents being added, so each sum has one term equal to 1: nothing
// overflows for any k, and q >= 1 after the first step.
//
// Backward of L = sum_t g_t y_t (derivation in notes/baseline_kernels.md, "RWKV WKV kernel"):
//   dL/du   = sum_t g_t beta_t (v_t - y_t),              beta_t = e^{u+k_t} / D_t  (in (0, 1])
//   dL/dw   = sum_t g_t (a'_{t-1} - y_t b'_{t-1}) / D_t,  a'_t = e^w (a_{t-1} + a'_{t-1}) (= da_t/dw)
//   dL/dv_i = g_i beta_i + e^{k_i} P_i,                   P_i = sum_{t>i} g_t e^{(t-1-i) w} / D_t
//   dL/dk_i = g_i beta_i (v_i - y_i) + e^{k_i} (v_i P_i - Q_i),  Q_i = sum_{t>i} g_t y_t e^{(t-1-i) w} / D_t
// A forward-in-time pass accumulates dL/du, dL/dw and records 1/D_t = z_t e^{-m_t} (z_t in (0, 1],
// m_t the shift) in the grad_k / grad_v slots of step t; the reverse pass reads them back and
// overwrites them with the gradients, carrying (P, Q) scaled by e^s with s their running maximal
// exponent. Since b_{t-1} >= e^{(t-1-i) w + k_i} and q <= T, e^{k_i + s} <= T: no overflow either.
#pragma once
#include <math.h>

#include <cstdint>

#if defined(__CUDACC__)
#define RBK_WKV_HD __host__ __device__ inline
#else
#define RBK_WKV_HD inline
#endif

namespace rbk::wkv_detail {

// Exponent of an empty sum: exp(kEmpty - finite) == 0 in fp32 and fp64, and kEmpty + w stays
// finite (|w| << 1e38), so the first step needs no special case.
#define RBK_WKV_EMPTY_EXPONENT (-1e38)

// IEEE expf / exp (never __expf): these numbers reach tables.
RBK_WKV_HD float wkv_exp(float x) { return expf(x); }
RBK_WKV_HD double wkv_exp(double x) { return exp(x); }
template <class F>
RBK_WKV_HD F wkv_max(F a, F b) {
  return a > b ? a : b;
}

// y_t for t = 0..T-1. Pointers address step 0 of the column; consecutive steps are `stride`
// elements apart (stride = C for (B, T, C) contiguous tensors).
template <class F>
RBK_WKV_HD void wkv_forward_column(int64_t T, int64_t stride, F w, F u, const F* k, const F* v, F* y) {
  F p = 0, q = 0, o = static_cast<F>(RBK_WKV_EMPTY_EXPONENT);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t i = t * stride;
    const F kt = k[i], vt = v[i];
    const F uk = u + kt;
    F m = wkv_max(o, uk);
    F ea = wkv_exp(o - m), eb = wkv_exp(uk - m);
    y[i] = (ea * p + eb * vt) / (ea * q + eb);
    m = wkv_max(w + o, kt);
    ea = wkv_exp(w + o - m);
    eb = wkv_exp(kt - m);
    p = ea * p + eb * vt;
    q = ea * q + eb;
    o = m;
  }
}

// Gradients of one column. y: this column's forward output; gy: dL/dy. Writes gk, gv (used as
// scratch between the two passes, see above) and returns dL/dw and dL/du of the column through
// grad_w / grad_u (the caller multiplies dL/dw by w = dw/d time_decay).
template <class F>
RBK_WKV_HD void wkv_backward_column(int64_t T, int64_t stride, F w, F u, const F* k, const F* v, const F* y,
                                    const F* gy, F* gk, F* gv, F* grad_w, F* grad_u) {
  F p = 0, q = 0, o = static_cast<F>(RBK_WKV_EMPTY_EXPONENT);
  F dp = 0, dq = 0;  // a'_{t-1} / e^o, b'_{t-1} / e^o
  F gw = 0, gu = 0;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t i = t * stride;
    const F kt = k[i], vt = v[i], yt = y[i], gt = gy[i];
    const F uk = u + kt;
    const F m = wkv_max(o, uk);
    const F ea = wkv_exp(o - m), eb = wkv_exp(uk - m);
    const F z = F(1) / (ea * q + eb);  // 1/D_t = z e^{-m}
    gw += gt * (dp - yt * dq) * ea * z;
    gu += gt * (vt - yt) * eb * z;
    gk[i] = m;
    gv[i] = z;
    const F m2 = wkv_max(w + o, kt);
    const F ea2 = wkv_exp(w + o - m2), eb2 = wkv_exp(kt - m2);
    dp = ea2 * (p + dp);
    dq = ea2 * (q + dq);
    p = ea2 * p + eb2 * vt;
    q = ea2 * q + eb2;
    o = m2;
  }
  F gp = 0, gq = 0, s = static_cast<F>(RBK_WKV_EMPTY_EXPONENT);  // P_i = gp e^s, Q_i = gq e^s
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t i = t * stride;
    const F kt = k[i], vt = v[i], yt = y[i], gt = gy[i];
    const F m = gk[i], z = gv[i];
    const F own = gt * z * wkv_exp(u + kt - m);  // g_t beta_t, u + k_t - m <= 0
    const F carry = wkv_exp(kt + s);             // e^{k_t + s} <= T
    gv[i] = own + carry * gp;
    gk[i] = own * (vt - yt) + carry * (gp * vt - gq);
    // Fold step t into the carried sums: P_{t-1} = e^w P_t + g_t z_t e^{-m_t}, Q likewise with y_t.
    const F ns = wkv_max(w + s, -m);
    const F ea = wkv_exp(w + s - ns), eb = wkv_exp(-m - ns) * gt * z;
    gp = ea * gp + eb;
    gq = ea * gq + eb * yt;
    s = ns;
  }
  *grad_w = gw;
  *grad_u = gu;
}

}  // namespace rbk::wkv_detail
