// Complex arithmetic written out on real parts, generic over the real type R (float, double, or
// torch::Tensor). Two reasons to spell it out instead of using std::complex / torch complex ops:
//  * compat modes must reproduce upstream's arithmetic bit for bit on every LibTorch: torch <= 1.13
//    divides complex numbers by the textbook formula (a+bi)/(c+di) = ((ac+bd) + (bc-ad)i)/(c^2+d^2),
//    whose c^2+d^2 overflows once |theta_N| > ~1e154 (complex128) / ~1e19 (complex64) — that is
//    where upstream's N ~ 488 / 64 thresholds come from (audit §1.5); torch >= 2.1 scales instead,
//    so calling torch's own division would move the thresholds with the LibTorch version;
//  * the same template runs per element in plain loops and per step as batched tensor ops
//    (CompatExecution::TensorOps, upstream's vmap execution model): one formula, two executions.
#pragma once
#include <cmath>

namespace rbk::detail {

template <class R>
struct Cx {
  R re;
  R im;
};

template <class R>
inline Cx<R> cx_add(const Cx<R>& x, const Cx<R>& y) { return {x.re + y.re, x.im + y.im}; }
template <class R>
inline Cx<R> cx_sub(const Cx<R>& x, const Cx<R>& y) { return {x.re - y.re, x.im - y.im}; }
// Four-multiplication product, as torch's vectorised complex multiply (no FMA contraction: the
// project builds ISO C++, where GCC keeps -ffp-contract=off).
template <class R>
inline Cx<R> cx_mul(const Cx<R>& x, const Cx<R>& y) {
  return {x.re * y.re - x.im * y.im, x.re * y.im + x.im * y.re};
}
// torch <= 1.13 complex division (see the file comment).
template <class R>
inline Cx<R> cx_div_textbook(const Cx<R>& x, const Cx<R>& y) {
  R den = y.re * y.re + y.im * y.im;
  return {(x.re * y.re + x.im * y.im) / den, (x.im * y.re - x.re * y.im) / den};
}
template <class R>
inline Cx<R> cx_conj(const Cx<R>& x) { return {x.re, -x.im}; }

// Scaled reciprocal (Smith's algorithm) for the stable path: exact to rounding for any finite
// nonzero y, never overflows in an intermediate. |y| >= Im z > 0 there, so y is never zero.
template <class T>
inline Cx<T> cx_recip(const Cx<T>& y) {
  if (std::abs(y.re) >= std::abs(y.im)) {
    const T r = y.im / y.re;
    const T d = y.re + y.im * r;
    return {T(1) / d, -r / d};
  }
  const T r = y.re / y.im;
  const T d = y.re * r + y.im;
  return {r / d, T(-1) / d};
}

}  // namespace rbk::detail
