// A CUDA kernel shaped like upstream's paper-time Triton BK-Core (`src/kernels/bk_scan.py@efaa555`,
// upstream-audit §1.10, §10.1): the "fused kernel" side of claim C17's 185x. One serial program per
// batch row runs the un-scaled theta recursion in fp32, a second the phi recursion, then an
// element-wise pass assembles G = theta_i phi_i / (theta_N + 1e-18) and applies upstream's
// sanitiser (non-finite -> 0, |G| <= 50). It overflows exactly as upstream does (fp32 theta
// passes ~1e19 near N = 64 for the Laplacian) and then returns zeros: the experiment reports its
// time together with its error and its fraction of zeros.
//
// Arithmetic follows rbk's CPU compat mode (CompatPapertimeTriton, core/src/bk_core.cpp): four-
// multiplication complex products and the textbook complex division, every operation rounded on
// its own (__fmul_rn / __fadd_rn never contract into FMAs), so the two agree to the last bit where
// the libm functions (hypot) do.
#include "rbk/kernels/bk_scan_launch.h"

#include <cuda_runtime.h>

namespace rbk::cuda {
namespace {

struct Cw {
  float re, im;
};
__device__ __forceinline__ Cw w_sub(Cw x, Cw y) { return {__fsub_rn(x.re, y.re), __fsub_rn(x.im, y.im)}; }
__device__ __forceinline__ Cw w_mul(Cw x, Cw y) {
  return {__fsub_rn(__fmul_rn(x.re, y.re), __fmul_rn(x.im, y.im)), __fadd_rn(__fmul_rn(x.re, y.im), __fmul_rn(x.im, y.re))};
}
__device__ __forceinline__ Cw w_div_textbook(Cw x, Cw y) {
  const float den = __fadd_rn(__fmul_rn(y.re, y.re), __fmul_rn(y.im, y.im));
  return {__fdiv_rn(__fadd_rn(__fmul_rn(x.re, y.re), __fmul_rn(x.im, y.im)), den),
          __fdiv_rn(__fsub_rn(__fmul_rn(x.im, y.re), __fmul_rn(x.re, y.im)), den)};
}

constexpr float kUpstreamDetEps = 1e-18f;  // upstream's "+ 1e-18" on theta_N (as float32)
constexpr float kUpstreamMaxAbsG = 50.f;   // upstream's |G| clip
constexpr float kUpstreamAbsEps = 1e-9f;   // upstream's 50 / (|G| + 1e-9)

struct Row {
  const float* a;
  const float* b;
  const float* c;
  Cw z;
  __device__ Cw alpha(int64_t i) const { return w_sub(Cw{a[i], 0.f}, z); }
  __device__ Cw k(int64_t i) const { return w_mul(Cw{c[i], 0.f}, Cw{b[i], 0.f}); }
};

__device__ Row make_row(const float* a, const float* b, const float* c, int64_t n, float zr, float zi) {
  const int64_t row = blockIdx.x;
  return Row{a + row * n, b + row * (n - 1), c + row * (n - 1), Cw{zr, zi}};
}

// theta_0 = 1, theta_1 = alpha_0, theta_{i+1} = alpha_i theta_i - k_{i-1} theta_{i-1}; (n + 1) values.
__global__ void compat_theta_kernel(const float* a, const float* b, const float* c, int64_t n, float zr, float zi,
                                    float2* theta) {
  if (threadIdx.x != 0) return;
  const Row r = make_row(a, b, c, n, zr, zi);
  float2* th = theta + blockIdx.x * (n + 1);
  Cw prev{1.f, 0.f}, cur = r.alpha(0);
  th[0] = make_float2(prev.re, prev.im);
  th[1] = make_float2(cur.re, cur.im);
  for (int64_t i = 1; i < n; ++i) {
    const Cw next = w_sub(w_mul(r.alpha(i), cur), w_mul(r.k(i - 1), prev));
    prev = cur;
    cur = next;
    th[i + 1] = make_float2(cur.re, cur.im);
  }
}

// phi_{n-1} = 1, phi_{n-2} = alpha_{n-1}, phi_i = alpha_{i+1} phi_{i+1} - k_i phi_{i+2}.
__global__ void compat_phi_kernel(const float* a, const float* b, const float* c, int64_t n, float zr, float zi,
                                  float2* phi) {
  if (threadIdx.x != 0) return;
  const Row r = make_row(a, b, c, n, zr, zi);
  float2* ph = phi + blockIdx.x * (n + 1);
  Cw far{1.f, 0.f};
  ph[n - 1] = make_float2(1.f, 0.f);
  if (n < 2) return;
  Cw near = r.alpha(n - 1);
  ph[n - 2] = make_float2(near.re, near.im);
  for (int64_t i = n - 3; i >= 0; --i) {
    const Cw next = w_sub(w_mul(r.alpha(i + 1), near), w_mul(r.k(i), far));
    far = near;
    near = next;
    ph[i] = make_float2(near.re, near.im);
  }
}

__global__ void compat_assemble_kernel(const float2* theta, const float2* phi, int64_t batch, int64_t n, float2* out) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= batch * n) return;
  const int64_t row = idx / n, i = idx % n;
  const float2 t = theta[row * (n + 1) + i], f = phi[row * (n + 1) + i], tn = theta[row * (n + 1) + n];
  const Cw det{__fadd_rn(tn.x, kUpstreamDetEps), tn.y};
  Cw G = w_div_textbook(w_mul(Cw{t.x, t.y}, Cw{f.x, f.y}), det);
  if (!isfinite(G.re) || !isfinite(G.im)) G = Cw{0.f, 0.f};
  const float mag = hypotf(G.re, G.im);
  if (mag > kUpstreamMaxAbsG) {
    const float s = __fdiv_rn(kUpstreamMaxAbsG, __fadd_rn(mag, kUpstreamAbsEps));
    G = Cw{__fmul_rn(G.re, s), __fmul_rn(G.im, s)};
  }
  out[idx] = make_float2(G.re, G.im);
}

}  // namespace

cudaError_t launch_bk_compat_triton_like(const float* a, const float* b, const float* c, int64_t batch, int64_t n,
                                         double z_re, double z_im, float* theta, float* phi, float* out,
                                         cudaStream_t stream) {
  if (batch < 1 || n < 1 || batch > 0x7fffffffLL || a == nullptr || theta == nullptr || phi == nullptr ||
      out == nullptr || (n > 1 && (b == nullptr || c == nullptr)))
    return cudaErrorInvalidValue;
  const float zr = static_cast<float>(z_re), zi = static_cast<float>(z_im);
  // One 32-thread block per row with one active thread: like a Triton program per row, the loop
  // over N is serial and each row sits on its own multiprocessor.
  compat_theta_kernel<<<static_cast<unsigned>(batch), 32, 0, stream>>>(a, b, c, n, zr, zi, reinterpret_cast<float2*>(theta));
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  compat_phi_kernel<<<static_cast<unsigned>(batch), 32, 0, stream>>>(a, b, c, n, zr, zi, reinterpret_cast<float2*>(phi));
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  const int64_t total = batch * n;
  constexpr int kThreads = 256;
  compat_assemble_kernel<<<static_cast<unsigned>((total + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      reinterpret_cast<const float2*>(theta), reinterpret_cast<const float2*>(phi), batch, n,
      reinterpret_cast<float2*>(out));
  return cudaGetLastError();
}

}  // namespace rbk::cuda
