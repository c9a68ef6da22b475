// BK-Core forward modes (stable continued fractions, causal variant, upstream compat recursions),
// the exact O(N) gradient and upstream's hybrid gradients. Claim C01; upstream-audit §1.
#include "rbk/bk_core.h"

#include "complex_arith.h"

#include <ATen/Parallel.h>

#include <stdexcept>
#include <vector>

#include "rbk/cuda_glue/bk_core_cuda.h"
#include "rbk/cuda_glue/kernels_linked.h"

namespace rbk {

using detail::Cx;
using detail::cx_add;
using detail::cx_conj;
using detail::cx_div_textbook;
using detail::cx_mul;
using detail::cx_recip;
using detail::cx_sub;
using torch::Tensor;

std::string to_string(BkForwardMode m) {
  switch (m) {
    case BkForwardMode::Stable: return "stable";
    case BkForwardMode::CompatPoc: return "compat_poc";
    case BkForwardMode::CompatPapertime: return "compat_papertime";
    case BkForwardMode::CompatPapertimeTriton: return "compat_papertime_triton";
  }
  return "?";
}
std::string to_string(BkContext c) { return c == BkContext::Causal ? "causal" : "bidirectional"; }
std::string to_string(BkGradientMode g) {
  switch (g) {
    case BkGradientMode::Exact: return "exact";
    case BkGradientMode::PapertimeHybrid: return "papertime_hybrid";
    case BkGradientMode::HeadHybrid: return "head_hybrid";
    case BkGradientMode::Autograd: return "autograd";
  }
  return "?";
}
BkForwardMode parse_forward_mode(const std::string& s) {
  for (auto m : {BkForwardMode::Stable, BkForwardMode::CompatPoc, BkForwardMode::CompatPapertime,
                 BkForwardMode::CompatPapertimeTriton})
    if (to_string(m) == s) return m;
  throw std::invalid_argument("unknown BK-Core forward mode '" + s +
                              "' (expected stable, compat_poc, compat_papertime, compat_papertime_triton)");
}
BkContext parse_context(const std::string& s) {
  if (s == "bidirectional") return BkContext::Bidirectional;
  if (s == "causal") return BkContext::Causal;
  throw std::invalid_argument("unknown BK-Core context '" + s + "' (expected bidirectional, causal)");
}
BkGradientMode parse_gradient_mode(const std::string& s) {
  for (auto g : {BkGradientMode::Exact, BkGradientMode::PapertimeHybrid, BkGradientMode::HeadHybrid, BkGradientMode::Autograd})
    if (to_string(g) == s) return g;
  throw std::invalid_argument("unknown BK-Core gradient mode '" + s +
                              "' (expected exact, papertime_hybrid, head_hybrid, autograd)");
}

Tridiagonal laplacian_with_potential(const Tensor& v) {
  TORCH_CHECK(v.dim() == 2, "BK-Core: potential v must be (B, N), got ", v.sizes());
  TORCH_CHECK(v.scalar_type() == torch::kFloat || v.scalar_type() == torch::kDouble ||
                  v.scalar_type() == torch::kBFloat16 || v.scalar_type() == torch::kHalf,
              "BK-Core: potential v must be a floating tensor, got ", v.scalar_type());
  const int64_t B = v.size(0), N = v.size(1);
  auto opts = v.options();
  return {v - 2.0, torch::ones({B, std::max<int64_t>(N - 1, 0)}, opts), torch::ones({B, std::max<int64_t>(N - 1, 0)}, opts)};
}

void check_bk_inputs(const Tridiagonal& h, c10::complex<double> z, BkForwardMode mode, BkContext context) {
  TORCH_CHECK(h.diag.defined() && h.upper.defined() && h.lower.defined(), "BK-Core: diag, upper and lower must all be given");
  TORCH_CHECK(h.diag.dim() == 2, "BK-Core: diag must be (B, N), got ", h.diag.sizes());
  const int64_t B = h.diag.size(0), N = h.diag.size(1);
  TORCH_CHECK(N >= 1 && B >= 1, "BK-Core: need B >= 1 and N >= 1, got diag ", h.diag.sizes());
  const std::vector<int64_t> off{B, N - 1};
  TORCH_CHECK(h.upper.sizes() == c10::IntArrayRef(off), "BK-Core: upper must be (B, N-1) = ", c10::IntArrayRef(off),
              ", got ", h.upper.sizes());
  TORCH_CHECK(h.lower.sizes() == c10::IntArrayRef(off), "BK-Core: lower must be (B, N-1) = ", c10::IntArrayRef(off),
              ", got ", h.lower.sizes());
  for (const Tensor* t : {&h.diag, &h.upper, &h.lower}) {
    TORCH_CHECK(t->scalar_type() == torch::kFloat || t->scalar_type() == torch::kDouble,
                "BK-Core: H entries must be float32 or float64, got ", t->scalar_type());
    TORCH_CHECK(t->scalar_type() == h.diag.scalar_type(), "BK-Core: diag, upper, lower must share a dtype");
    TORCH_CHECK(t->device() == h.diag.device(), "BK-Core: diag, upper, lower must be on one device");
  }
  TORCH_CHECK(z.imag() > 0.0, "BK-Core: Im z must be > 0 (the resolvent is taken off the real axis), got z = ",
              z.real(), " + ", z.imag(), "i");
  TORCH_CHECK(std::isfinite(z.real()), "BK-Core: Re z must be finite");
  TORCH_CHECK(torch::isfinite(h.diag).all().item<bool>(), "BK-Core: diag (-2 + v) has NaN or Inf entries");
  if (N > 1)
    TORCH_CHECK(torch::isfinite(h.upper).all().item<bool>() && torch::isfinite(h.lower).all().item<bool>(),
                "BK-Core: off-diagonals have NaN or Inf entries");
  TORCH_CHECK(!(mode != BkForwardMode::Stable && context == BkContext::Causal),
              "BK-Core: compat mode '", to_string(mode), "' has no causal variant (upstream is bidirectional only)");
}

namespace {

// ---------------------------------------------------------------------------------------------
// Stable path: continued fractions. dl_i = a_i - z - L_i are the left pivots (theta_{i+1}/theta_i),
// dr_i = a_i - z - R_i the right ones; both have |.| >= Im z for symmetric H, so nothing overflows.

template <class T>
struct RowView {
  const T* a;
  const T* b;
  const T* c;
  int64_t n;
  T kk(int64_t i) const { return b[i] * c[i]; }
};

template <class T>
void left_pivots(const RowView<T>& r, Cx<T> z, Cx<T>* dl) {
  dl[0] = {r.a[0] - z.re, -z.im};
  for (int64_t i = 1; i < r.n; ++i) {
    const Cx<T> L = cx_mul(Cx<T>{r.kk(i - 1), T(0)}, cx_recip(dl[i - 1]));
    dl[i] = {r.a[i] - z.re - L.re, -z.im - L.im};
  }
}

template <class T>
void right_pivots(const RowView<T>& r, Cx<T> z, Cx<T>* dr) {
  dr[r.n - 1] = {r.a[r.n - 1] - z.re, -z.im};
  for (int64_t i = r.n - 2; i >= 0; --i) {
    const Cx<T> R = cx_mul(Cx<T>{r.kk(i), T(0)}, cx_recip(dr[i + 1]));
    dr[i] = {r.a[i] - z.re - R.re, -z.im - R.im};
  }
}

template <class T>
void stable_forward_cpu(const Tridiagonal& h, c10::complex<double> zc, BkContext context, Tensor& out) {
  const int64_t B = h.diag.size(0), N = h.diag.size(1);
  const Tensor a = h.diag.contiguous(), b = h.upper.contiguous(), c = h.lower.contiguous();
  const T* pa = a.data_ptr<T>();
  const T* pb = b.data_ptr<T>();
  const T* pc = c.data_ptr<T>();
  auto* po = reinterpret_cast<Cx<T>*>(out.data_ptr());
  const Cx<T> z{T(zc.real()), T(zc.imag())};
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<Cx<T>> dl(N);
    for (int64_t row = b0; row < b1; ++row) {
      const RowView<T> r{pa + row * N, pb + row * (N - 1), pc + row * (N - 1), N};
      Cx<T>* G = po + row * N;
      left_pivots(r, z, dl.data());
      if (context == BkContext::Causal) {
        for (int64_t i = 0; i < N; ++i) G[i] = cx_recip(dl[i]);
        continue;
      }
      // Right sweep without storing dr: G_i = 1/(dl_i - R_i), dr_i = a_i - z - R_i, R_{i-1} = k_{i-1}/dr_i.
      Cx<T> R{T(0), T(0)};
      for (int64_t i = N - 1; i >= 0; --i) {
        G[i] = cx_recip(cx_sub(dl[i], R));
        if (i > 0) R = cx_mul(Cx<T>{r.kk(i - 1), T(0)}, cx_recip(Cx<T>{r.a[i] - z.re - R.re, -z.im - R.im}));
      }
    }
  });
}

template <class T>
void stable_vjp_cpu(const Tridiagonal& h, c10::complex<double> zc, const Tensor& grad_g, BkContext context, Tensor& out) {
  const int64_t B = h.diag.size(0), N = h.diag.size(1);
  const Tensor a = h.diag.contiguous(), b = h.upper.contiguous(), c = h.lower.contiguous();
  const Tensor g = grad_g.contiguous();
  const T* pa = a.data_ptr<T>();
  const T* pb = b.data_ptr<T>();
  const T* pc = c.data_ptr<T>();
  const auto* pg = reinterpret_cast<const Cx<T>*>(g.data_ptr());
  T* po = out.data_ptr<T>();
  const Cx<T> z{T(zc.real()), T(zc.imag())};
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<Cx<T>> dl(N), dr(N), acc(N);
    for (int64_t row = b0; row < b1; ++row) {
      const RowView<T> r{pa + row * N, pb + row * (N - 1), pc + row * (N - 1), N};
      const Cx<T>* gg = pg + row * N;
      T* grad = po + row * N;
      left_pivots(r, z, dl.data());
      if (context == BkContext::Causal) {
        // G^c_i = 1/dl_i and d dl_{m+1}/d dl_m = k_m/dl_m^2, so
        // dL/da_j = -Re T_j,  T_j = conj(g_j)/dl_j^2 + (k_j/dl_j^2) T_{j+1}.
        Cx<T> acc_t{T(0), T(0)};
        for (int64_t j = N - 1; j >= 0; --j) {
          const Cx<T> inv = cx_recip(dl[j]);
          const Cx<T> inv2 = cx_mul(inv, inv);
          if (j < N - 1) acc_t = cx_mul(cx_mul(Cx<T>{r.kk(j), T(0)}, inv2), acc_t);
          acc_t = cx_add(acc_t, cx_mul(cx_conj(gg[j]), inv2));
          grad[j] = -acc_t.re;
        }
        continue;
      }
      right_pivots(r, z, dr.data());
      // Left sums: S_j = sum_{i<j} conj(g_i) prod_{m=i}^{j-1} k_m/dl_m^2.
      Cx<T> s{T(0), T(0)};
      for (int64_t j = 0; j < N; ++j) {
        if (j > 0) {
          const Cx<T> inv = cx_recip(dl[j - 1]);
          s = cx_mul(cx_add(s, cx_conj(gg[j - 1])), cx_mul(Cx<T>{r.kk(j - 1), T(0)}, cx_mul(inv, inv)));
        }
        acc[j] = cx_add(cx_conj(gg[j]), s);
      }
      // Right sums: S_j = sum_{i>j} conj(g_i) prod_{m=j}^{i-1} k_m/dr_{m+1}^2; then
      // dL/da_j = -Re(G_jj^2 (conj(g_j) + left_j + right_j)).
      s = {T(0), T(0)};
      for (int64_t j = N - 1; j >= 0; --j) {
        if (j < N - 1) {
          const Cx<T> inv = cx_recip(dr[j + 1]);
          s = cx_mul(cx_mul(Cx<T>{r.kk(j), T(0)}, cx_mul(inv, inv)), cx_add(cx_conj(gg[j + 1]), s));
        }
        const Cx<T> Rj = j < N - 1 ? cx_mul(Cx<T>{r.kk(j), T(0)}, cx_recip(dr[j + 1])) : Cx<T>{T(0), T(0)};
        const Cx<T> Gjj = cx_recip(cx_sub(dl[j], Rj));
        grad[j] = -cx_mul(cx_mul(Gjj, Gjj), cx_add(acc[j], s)).re;
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Compat path: upstream's continuants (audit §1.1-1.3, §1.10), one formula for both executions.
//   theta_0 = 1, theta_1 = alpha_0, theta_{i+1} = alpha_i theta_i - k_{i-1} theta_{i-1}
//   phi_{N-1} = 1, phi_{N-2} = alpha_{N-1}, phi_i = alpha_{i+1} phi_{i+1} - k_i phi_{i+2}
//   G_i = theta_i phi_i / (theta_N + 1e-18)
// alpha = a - z and k = (c + 0i)(b + 0i) are complex products as upstream forms them, so a NaN
// from 0 * inf appears exactly where upstream's does.

constexpr double kUpstreamDetEps = 1e-18;  // upstream's "+ 1e-18" on the determinant
constexpr double kUpstreamMaxAbsG = 50.0;  // upstream's |G| clip (Ultra v2 / paper-time)
constexpr double kUpstreamAbsEps = 1e-9;   // upstream's 50/(|G| + 1e-9)

template <class R, class AlphaFn, class KFn>
void compat_continuants(int64_t N, const Cx<R>& one, AlphaFn alpha, KFn k, std::vector<Cx<R>>& theta,
                        std::vector<Cx<R>>& phi) {
  theta.assign(N + 1, one);
  phi.assign(N, one);
  theta[1] = alpha(0);
  for (int64_t i = 1; i < N; ++i) theta[i + 1] = cx_sub(cx_mul(alpha(i), theta[i]), cx_mul(k(i - 1), theta[i - 1]));
  if (N >= 2) phi[N - 2] = alpha(N - 1);
  for (int64_t i = N - 3; i >= 0; --i) phi[i] = cx_sub(cx_mul(alpha(i + 1), phi[i + 1]), cx_mul(k(i), phi[i + 2]));
}

template <class R>
Cx<R> compat_assemble(const Cx<R>& theta_i, const Cx<R>& phi_i, const Cx<R>& det_plus_eps) {
  return cx_div_textbook(cx_mul(theta_i, phi_i), det_plus_eps);
}

// Plain loops; W is the working real type (double for PoC/paper-time, float for Triton).
template <class W>
Tensor compat_scalar_loop(const Tridiagonal& h, c10::complex<double> zc) {
  const int64_t B = h.diag.size(0), N = h.diag.size(1);
  const auto wtype = std::is_same<W, double>::value ? torch::kDouble : torch::kFloat;
  const Tensor a = h.diag.to(torch::kCPU, wtype).contiguous();
  const Tensor b = h.upper.to(torch::kCPU, wtype).contiguous();
  const Tensor c = h.lower.to(torch::kCPU, wtype).contiguous();
  const Tensor out = torch::empty({B, N}, torch::TensorOptions().dtype(std::is_same<W, double>::value ? torch::kComplexDouble : torch::kComplexFloat));
  const W* pa = a.data_ptr<W>();
  const W* pb = b.data_ptr<W>();
  const W* pc = c.data_ptr<W>();
  auto* po = reinterpret_cast<Cx<W>*>(out.data_ptr());
  const Cx<W> z{W(zc.real()), W(zc.imag())};
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<Cx<W>> theta, phi;
    for (int64_t row = b0; row < b1; ++row) {
      const W* ra = pa + row * N;
      const W* rb = pb + row * (N - 1);
      const W* rc = pc + row * (N - 1);
      auto alpha = [&](int64_t i) { return cx_sub(Cx<W>{ra[i], W(0)}, z); };
      auto k = [&](int64_t i) { return cx_mul(Cx<W>{rc[i], W(0)}, Cx<W>{rb[i], W(0)}); };
      compat_continuants<W>(N, Cx<W>{W(1), W(0)}, alpha, k, theta, phi);
      const Cx<W> det{theta[N].re + W(kUpstreamDetEps), theta[N].im};
      for (int64_t i = 0; i < N; ++i) po[row * N + i] = compat_assemble(theta[i], phi[i], det);
    }
  });
  return out;
}

// One batched LibTorch op per arithmetic step, on h's device: upstream's execution model.
Tensor compat_tensor_ops(const Tridiagonal& h, c10::complex<double> zc, torch::ScalarType wtype) {
  const int64_t B = h.diag.size(0), N = h.diag.size(1);
  const Tensor a = h.diag.to(wtype), b = h.upper.to(wtype), c = h.lower.to(wtype);
  const Tensor zero = torch::zeros({B}, a.options());
  const Tensor zr = torch::full({B}, zc.real(), a.options()), zi = torch::full({B}, zc.imag(), a.options());
  auto alpha = [&](int64_t i) { return cx_sub(Cx<Tensor>{a.select(1, i), zero}, Cx<Tensor>{zr, zi}); };
  auto k = [&](int64_t i) { return cx_mul(Cx<Tensor>{c.select(1, i), zero}, Cx<Tensor>{b.select(1, i), zero}); };
  std::vector<Cx<Tensor>> theta, phi;
  compat_continuants<Tensor>(N, Cx<Tensor>{torch::ones({B}, a.options()), zero}, alpha, k, theta, phi);
  std::vector<Tensor> tr, ti, pr, pi;
  for (int64_t i = 0; i < N; ++i) {
    tr.push_back(theta[i].re);
    ti.push_back(theta[i].im);
    pr.push_back(phi[i].re);
    pi.push_back(phi[i].im);
  }
  const Cx<Tensor> det{(theta[N].re + kUpstreamDetEps).unsqueeze(1), theta[N].im.unsqueeze(1)};
  const Cx<Tensor> G = compat_assemble(Cx<Tensor>{torch::stack(tr, 1), torch::stack(ti, 1)},
                                       Cx<Tensor>{torch::stack(pr, 1), torch::stack(pi, 1)}, det);
  return torch::view_as_complex(torch::stack({G.re, G.im}, -1).contiguous());
}

// Upstream's post-processing (Ultra v2 / paper-time): non-finite -> 0, then |G| <= 50 keeping the
// phase. Applied to the complex64 result, as upstream does after its cast.
Tensor upstream_sanitise(const Tensor& G64) {
  Tensor ri = torch::view_as_real(G64).clone();  // (B, N, 2) float32
  const Tensor finite = torch::isfinite(ri).all(-1, /*keepdim=*/true);
  ri = torch::where(finite, ri, torch::zeros_like(ri));
  const Tensor mag = torch::hypot(ri.select(-1, 0), ri.select(-1, 1)).unsqueeze(-1);
  const Tensor scale = torch::where(mag > kUpstreamMaxAbsG, kUpstreamMaxAbsG / (mag + kUpstreamAbsEps), torch::ones_like(mag));
  return torch::view_as_complex((ri * scale).contiguous());
}

Tensor compat_forward(const Tridiagonal& h, c10::complex<double> z, BkForwardMode mode, CompatExecution execution) {
  const bool triton = mode == BkForwardMode::CompatPapertimeTriton;
  Tensor G;
  if (execution == CompatExecution::TensorOps) {
    G = compat_tensor_ops(h, z, triton ? torch::kFloat : torch::kDouble);
  } else {
    // The loops run on the CPU whatever h's device (same arithmetic as TensorOps): for a CUDA
    // model (the PoC bug variant of exp_train_poc) two small copies replace ~20 tiny kernel
    // launches per recursion step.
    G = triton ? compat_scalar_loop<float>(h, z) : compat_scalar_loop<double>(h, z);
    G = G.to(h.diag.device());
  }
  G = G.to(torch::kComplexFloat);  // upstream returns complex64
  if (mode == BkForwardMode::CompatPoc) return G;
  return upstream_sanitise(G);
}

// Where BK-Core's stable forward and exact VJP run: the one place that chooses (the model's v-only
// kernels are chosen by bk_core_v_only_kernel_applies, below, from the same facts).
//   CPU tensors: the recurrences above, at the input precision;
//   CUDA float32: the CUDA kernels (rbk/cuda_glue/bk_core_cuda.h);
//   CUDA float64: the CPU fp64 path, the result brought back (the kernels compute in fp32; fp64
//   stays the oracle). A CUDA tensor in a build without the kernels reaches the glue's stub, which
//   says so.
enum class StablePath { Cpu, CudaKernel, CudaViaCpuFp64 };
StablePath stable_path(const Tensor& diag) {
  if (diag.is_cuda()) return diag.scalar_type() == torch::kDouble ? StablePath::CudaViaCpuFp64 : StablePath::CudaKernel;
  TORCH_CHECK(diag.device().is_cpu(), "BK-Core: unsupported device ", diag.device());
  return StablePath::Cpu;
}
Tridiagonal on_cpu(const Tridiagonal& h) { return {h.diag.cpu(), h.upper.cpu(), h.lower.cpu()}; }

}  // namespace

bool bk_core_v_only_kernel_applies(const Tensor& v, BkForwardMode forward) {
  return forward == BkForwardMode::Stable && v.is_cuda() && cuda::cuda_kernels_linked() && v.dim() == 2 &&
         (v.scalar_type() == torch::kFloat || v.scalar_type() == torch::kBFloat16);
}

Tensor bk_core_diagonal(const Tridiagonal& h, c10::complex<double> z, BkForwardMode mode, BkContext context,
                          CompatExecution execution) {
  check_bk_inputs(h, z, mode, context);
  if (mode != BkForwardMode::Stable) return compat_forward(h, z, mode, execution);
  switch (stable_path(h.diag)) {
    case StablePath::CudaKernel: return cuda::bk_core_diagonal_stable_cuda(h, z, context);
    case StablePath::CudaViaCpuFp64: return bk_core_diagonal(on_cpu(h), z, mode, context).to(h.diag.device());
    case StablePath::Cpu: break;
  }
  const bool f64 = h.diag.scalar_type() == torch::kDouble;
  Tensor out = torch::empty(h.diag.sizes(), torch::TensorOptions().dtype(f64 ? torch::kComplexDouble : torch::kComplexFloat));
  if (f64) stable_forward_cpu<double>(h, z, context, out);
  else stable_forward_cpu<float>(h, z, context, out);
  return out;
}

Tensor bk_core_diagonal_vjp_exact(const Tridiagonal& h, c10::complex<double> z, const Tensor& grad_g, BkContext context) {
  check_bk_inputs(h, z, BkForwardMode::Stable, context);
  TORCH_CHECK(grad_g.is_complex(), "BK-Core VJP: grad_g must be complex (dL/dRe G + i dL/dIm G)");
  TORCH_CHECK(grad_g.sizes() == h.diag.sizes(), "BK-Core VJP: grad_g must be (B, N) = ", h.diag.sizes(), ", got ",
              grad_g.sizes());
  switch (stable_path(h.diag)) {
    case StablePath::CudaKernel: return cuda::bk_core_diagonal_vjp_exact_cuda(h, z, grad_g, context);
    case StablePath::CudaViaCpuFp64:
      return bk_core_diagonal_vjp_exact(on_cpu(h), z, grad_g.cpu(), context).to(h.diag.device());
    case StablePath::Cpu: break;
  }
  const bool f64 = h.diag.scalar_type() == torch::kDouble;
  const Tensor g = grad_g.to(f64 ? torch::kComplexDouble : torch::kComplexFloat).contiguous();
  Tensor out = torch::empty(h.diag.sizes(), h.diag.options());
  if (f64) stable_vjp_cpu<double>(h, z, g, context, out);
  else stable_vjp_cpu<float>(h, z, g, context, out);
  return out;
}

Tensor bk_core_diagonal_stable_differentiable(const Tensor& v, c10::complex<double> z, BkContext context) {
  const Tridiagonal h = laplacian_with_potential(v);
  check_bk_inputs(h, z, BkForwardMode::Stable, context);
  TORCH_CHECK(v.scalar_type() == torch::kFloat || v.scalar_type() == torch::kDouble,
              "BK-Core (differentiable): v must be float32 or float64, got ", v.scalar_type());
  const int64_t N = v.size(1);
  const auto ctype = v.scalar_type() == torch::kDouble ? torch::kComplexDouble : torch::kComplexFloat;
  // alpha_i = a_i - z as one complex tensor; unbind/stack (not select/index) so that the backward
  // of the per-column views is one O(N) stack/unbind, not N scatters into (B, N) zeros.
  const Tensor alpha = torch::complex(h.diag - z.real(), torch::full_like(h.diag, -z.imag()));
  const std::vector<Tensor> al = alpha.unbind(1);                        // N x (B,) complex
  const std::vector<Tensor> kk = (h.upper * h.lower).to(ctype).unbind(1);  // N-1 x (B,), k_i = b_i c_i
  std::vector<Tensor> dl(N), G(N);
  dl[0] = al[0];
  for (int64_t i = 1; i < N; ++i) dl[i] = al[i] - kk[i - 1] / dl[i - 1];  // left pivots
  if (context == BkContext::Causal) {
    for (int64_t i = 0; i < N; ++i) G[i] = dl[i].reciprocal();
  } else {
    // G_i = 1/(dl_i - R_i), R_{N-1} = 0, R_{i-1} = k_{i-1}/(alpha_i - R_i): the right sweep of
    // stable_forward_cpu, op for op.
    Tensor R;
    for (int64_t i = N - 1; i >= 0; --i) {
      G[i] = R.defined() ? (dl[i] - R).reciprocal() : dl[i].reciprocal();
      if (i > 0) R = kk[i - 1] / (R.defined() ? al[i] - R : al[i]);
    }
  }
  return torch::stack(G, 1);
}

namespace {

// Constants of upstream's hybrid backwards (audit §1.3-1.4).
constexpr double kGradBlendAlpha = 0.5;        // GRAD_BLEND, both versions
constexpr double kPapertimeMinDenom = 1e-3;    // |G^2| floor, paper-time
constexpr double kHeadMinDenom = 1e-4;         // |G^2| floor, HEAD
constexpr double kHybridDenomEps = 1e-6;       // "+ 1e-6" on the floored G^2
constexpr double kFloorEps = 1e-9;             // d/(|d| + 1e-9) * floor
constexpr double kPapertimeGradClamp = 1000.0;
constexpr double kHeadGradClamp = 100.0;

}  // namespace

Tensor hybrid_gradient(const Tensor& G, const Tensor& grad_features, BkGradientMode mode) {
  TORCH_CHECK(mode == BkGradientMode::PapertimeHybrid || mode == BkGradientMode::HeadHybrid,
              "hybrid_gradient: '", to_string(mode), "' is not a hybrid mode");
  TORCH_CHECK(G.is_complex() && G.dim() == 2, "hybrid_gradient: G must be (B, N) complex, got ", G.sizes());
  TORCH_CHECK(grad_features.dim() == 3 && grad_features.size(2) == 2 && grad_features.size(0) == G.size(0) &&
                  grad_features.size(1) == G.size(1),
              "hybrid_gradient: grad_features must be (B, N, 2) matching G ", G.sizes(), ", got ", grad_features.sizes());
  // Upstream works in complex64 / float32.
  const Tensor Gri = torch::view_as_real(G.to(torch::kComplexFloat).contiguous());
  const Tensor gf = grad_features.to(torch::kFloat);
  const bool head = mode == BkGradientMode::HeadHybrid;
  const Cx<Tensor> Gc{Gri.select(-1, 0), Gri.select(-1, 1)};
  Cx<Tensor> g{gf.select(-1, 0), gf.select(-1, 1)};
  if (head) g = cx_conj(g);  // HEAD conjugates g in both terms; paper-time in neither
  const Cx<Tensor> G2 = cx_mul(Gc, Gc);
  const Tensor t = -cx_mul(g, G2).re;  // "theoretical" term
  const double floor = head ? kHeadMinDenom : kPapertimeMinDenom;
  const Tensor mag = torch::hypot(G2.re, G2.im);
  const Tensor small = mag < floor;
  const Tensor shrink = floor / (mag + kFloorEps);
  const Cx<Tensor> d{torch::where(small, G2.re * shrink, G2.re) + kHybridDenomEps, torch::where(small, G2.im * shrink, G2.im)};
  const Tensor h7 = -cx_div_textbook(g, d).re;  // "hypothesis-7" term
  Tensor grad = (1.0 - kGradBlendAlpha) * t + kGradBlendAlpha * h7;
  if (head) {
    grad = torch::nan_to_num(grad, 0.0, kHeadGradClamp, -kHeadGradClamp).clamp(-kHeadGradClamp, kHeadGradClamp);
  } else {
    grad = torch::where(torch::isfinite(grad), grad, torch::zeros_like(grad)).clamp(-kPapertimeGradClamp, kPapertimeGradClamp);
  }
  return grad;
}

Tensor bk_core_features_of_diagonal(const Tensor& G) {
  TORCH_CHECK(G.is_complex(), "bk_core_features_of_diagonal: G must be complex");
  return torch::view_as_real(G.contiguous()).clone();
}

}  // namespace rbk
