// Extended-precision continuant reference for the BK-Core diagonal (see bk_core_continuant.h).
#include "reference/bk_core_continuant.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace rbk::reference {

using torch::Tensor;

namespace {

#if defined(__SIZEOF_FLOAT128__)
using Real = __float128;
constexpr int kPrecisionBits = 113;
#else
using Real = long double;
constexpr int kPrecisionBits = std::numeric_limits<long double>::digits;
#endif

struct Cq {
  Real re, im;
};
inline Cq mul(const Cq& x, const Cq& y) { return {x.re * y.re - x.im * y.im, x.re * y.im + x.im * y.re}; }
inline Real absq(Real x) { return x < 0 ? -x : x; }
// Textbook reciprocal: the operand is a normalised mantissa (|.| within 2^+-kRescaleBits), so
// c^2 + d^2 stays far inside binary128's range (2^+-16382) and no scaling is needed.
inline Cq recip(const Cq& y) {
  const Real den = y.re * y.re + y.im * y.im;
  return {y.re / den, -y.im / den};
}

// A minor is held as mantissa * 2^exponent. The mantissas of the two minors a recursion step reads
// share one exponent; when the newest one leaves [2^-kRescaleBits, 2^kRescaleBits] both are
// rescaled by an exact power of two. 256 keeps the product of three mantissas (the G formula)
// below 2^800, so it converts through double's exponent range (2^+-1022) in one step.
constexpr int kRescaleBits = 256;

// 2^e as Real, exactly, for any e (chunks of 2^+-1000 are exact doubles).
Real pow2(int64_t e) {
  Real r = 1;
  while (e > 1000) {
    r *= Real(std::ldexp(1.0, 1000));
    e -= 1000;
  }
  while (e < -1000) {
    r *= Real(std::ldexp(1.0, -1000));
    e += 1000;
  }
  return r * Real(std::ldexp(1.0, static_cast<int>(e)));
}

// Brings `cur` back to magnitude ~1 (and `prev` by the same factor) when it left the window.
inline void rescale(Cq& cur, Cq& prev, int64_t& exponent) {
  static const Real hi = pow2(kRescaleBits), lo = pow2(-kRescaleBits);
  const Real mx = std::max(absq(cur.re), absq(cur.im));
  if (!(mx > hi || (mx < lo && mx > 0))) return;
  int ex = 0;
  std::frexp(static_cast<double>(mx), &ex);  // mx is within 2^+-(kRescaleBits + ~64): a finite double
  const Real f = pow2(-ex);
  cur = {cur.re * f, cur.im * f};
  prev = {prev.re * f, prev.im * f};
  exponent += ex;
}

// One row: a (N), kk (N-1) = b_i c_i, exactly in Real.
void continuant_row(const double* a, const double* b, const double* c, int64_t N, c10::complex<double> z,
                    std::vector<Cq>& theta, std::vector<int64_t>& theta_exp, c10::complex<double>* out,
                    double* mismatch) {
  const Real zr = Real(z.real()), zi = Real(z.imag());
  auto kk = [&](int64_t i) { return Real(b[i]) * Real(c[i]); };  // 53 x 53 bits: exact in 113
  // Forward: theta_k = (a_k - z) theta_{k-1} - kk_{k-1} theta_{k-2}; theta_{-1} = 1, theta_{-2} = 0.
  // theta[k + 1] holds theta_k.
  Cq prev{0, 0}, cur{1, 0};
  int64_t e = 0;
  theta[0] = cur;
  theta_exp[0] = 0;
  for (int64_t k = 0; k < N; ++k) {
    const Cq d{Real(a[k]) - zr, -zi};
    Cq next = mul(d, cur);
    if (k > 0) {
      const Real kv = kk(k - 1);
      next.re -= kv * prev.re;
      next.im -= kv * prev.im;
    }
    prev = cur;
    cur = next;
    rescale(cur, prev, e);
    theta[k + 1] = cur;
    theta_exp[k + 1] = e;
  }
  const Cq inv_det = recip(theta[N]);
  const int64_t det_exp = theta_exp[N];
  // Backward: phi_i = (a_i - z) phi_{i+1} - kk_i phi_{i+2}; phi_N = 1, phi_{N+1} = 0. Before phi_i is
  // formed, cur = phi_{i+1} and G_i = theta_{i-1} phi_{i+1} / theta_{N-1}.
  prev = {0, 0};
  cur = {1, 0};
  e = 0;
  for (int64_t i = N - 1; i >= 0; --i) {
    const Cq g = mul(mul(theta[i], cur), inv_det);
    const Real s = pow2(theta_exp[i] + e - det_exp);
    out[i] = {static_cast<double>(g.re * s), static_cast<double>(g.im * s)};
    const Cq d{Real(a[i]) - zr, -zi};
    Cq next = mul(d, cur);
    if (i < N - 1) {
      const Real kv = kk(i);
      next.re -= kv * prev.re;
      next.im -= kv * prev.im;
    }
    prev = cur;
    cur = next;
    rescale(cur, prev, e);
  }
  // cur = phi_0 = det(H - zI) = theta_{N-1}, computed the other way round.
  const Cq ratio = mul(cur, inv_det);
  const Real s = pow2(e - det_exp);
  const Real dre = ratio.re * s - 1, dim = ratio.im * s;
  *mismatch = std::sqrt(static_cast<double>(dre * dre + dim * dim));
}

}  // namespace

int continuant_precision_bits() { return kPrecisionBits; }

ContinuantDiagonal bk_core_diagonal_continuant(const Tridiagonal& h, c10::complex<double> z) {
  check_bk_inputs(h, z, BkForwardMode::Stable, BkContext::Bidirectional);
  const Tensor a = h.diag.to(torch::kCPU).to(torch::kDouble).contiguous();
  const Tensor b = h.upper.to(torch::kCPU).to(torch::kDouble).contiguous();
  const Tensor c = h.lower.to(torch::kCPU).to(torch::kDouble).contiguous();
  const int64_t B = a.size(0), N = a.size(1);
  Tensor out = torch::empty({B, N}, torch::TensorOptions().dtype(torch::kComplexDouble));
  Tensor mismatch = torch::empty({B}, torch::TensorOptions().dtype(torch::kDouble));
  const double* pa = a.data_ptr<double>();
  const double* pb = b.data_ptr<double>();
  const double* pc = c.data_ptr<double>();
  auto* po = out.data_ptr<c10::complex<double>>();
  double* pm = mismatch.data_ptr<double>();
  std::vector<Cq> theta(N + 1);
  std::vector<int64_t> theta_exp(N + 1);
  for (int64_t row = 0; row < B; ++row)
    continuant_row(pa + row * N, pb + row * (N - 1), pc + row * (N - 1), N, z, theta, theta_exp, po + row * N, pm + row);
  return {out, mismatch};
}

}  // namespace rbk::reference
