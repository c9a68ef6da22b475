// RWKV-4 WKV: LibTorch reference, naive formula, and the autograd Function around the kernel's
// arithmetic (CUDA kernel or its host execution). See wkv.h; issue 7 (RWKV baseline).
#include "rbk/wkv.h"

#include "rbk/kernels/wkv_column.h"

#include "rbk/cuda_glue/kernels_linked.h"
#include "rbk/cuda_glue/wkv_cuda.h"

#include <ATen/Parallel.h>

#include <array>
#include <limits>

namespace rbk {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void check_operands(const char* who, const Tensor& td, const Tensor& tf, const Tensor& k, const Tensor& v) {
  TORCH_CHECK(k.dim() == 3, who, ": k must be (B, T, C), got ", k.sizes());
  TORCH_CHECK(v.sizes() == k.sizes(), who, ": v must be (B, T, C) = ", k.sizes(), ", got ", v.sizes());
  TORCH_CHECK(td.dim() == 1 && td.size(0) == k.size(2), who, ": time_decay must be (", k.size(2), ",), got ",
              td.sizes());
  TORCH_CHECK(tf.dim() == 1 && tf.size(0) == k.size(2), who, ": time_first must be (", k.size(2), ",), got ",
              tf.sizes());
  for (const Tensor* t : {&td, &tf, &k, &v}) {
    TORCH_CHECK(t->is_floating_point(), who, ": inputs must be floating point, got ", t->scalar_type());
    TORCH_CHECK(t->device() == k.device(), who, ": inputs must share k's device ", k.device(), ", got ", t->device());
  }
}

// float64 if any input is float64, else float32.
torch::ScalarType compute_dtype(const Tensor& td, const Tensor& tf, const Tensor& k, const Tensor& v) {
  for (const Tensor* t : {&td, &tf, &k, &v})
    if (t->scalar_type() == torch::kDouble) return torch::kDouble;
  return torch::kFloat;
}

bool is_low_precision(const Tensor& t) {
  return t.scalar_type() == torch::kBFloat16 || t.scalar_type() == torch::kHalf;
}

// ---- host execution of the kernel's per-column code (wkv_column.h) ----

template <class F>
Tensor host_forward(const Tensor& td, const Tensor& tf, const Tensor& k, const Tensor& v) {
  const int64_t B = k.size(0), T = k.size(1), C = k.size(2);
  Tensor y = torch::empty({B, T, C}, k.options());
  if (y.numel() == 0) return y;
  const F *tdp = td.data_ptr<F>(), *tfp = tf.data_ptr<F>(), *kp = k.data_ptr<F>(), *vp = v.data_ptr<F>();
  F* yp = y.data_ptr<F>();
  // Columns are independent (one CUDA thread each): the result does not depend on the split.
  at::parallel_for(0, B * C, 16, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; ++idx) {
      const int64_t b = idx / C, c = idx % C, off = b * T * C + c;
      const F w = -wkv_detail::wkv_exp(tdp[c]);
      wkv_detail::wkv_forward_column<F>(T, C, w, tfp[c], kp + off, vp + off, yp + off);
    }
  });
  return y;
}

template <class F>
std::array<Tensor, 4> host_backward(const Tensor& td, const Tensor& tf, const Tensor& k, const Tensor& v,
                                    const Tensor& y, const Tensor& gy) {
  const int64_t B = k.size(0), T = k.size(1), C = k.size(2);
  Tensor grad_k = torch::empty({B, T, C}, k.options()), grad_v = torch::empty({B, T, C}, k.options());
  Tensor gtd_rows = torch::empty({B, C}, k.options()), gtf_rows = torch::empty({B, C}, k.options());
  if (B * C > 0) {
    const F *tdp = td.data_ptr<F>(), *tfp = tf.data_ptr<F>(), *kp = k.data_ptr<F>(), *vp = v.data_ptr<F>();
    const F *yp = y.data_ptr<F>(), *gyp = gy.data_ptr<F>();
    F *gkp = grad_k.data_ptr<F>(), *gvp = grad_v.data_ptr<F>();
    F *gtdp = gtd_rows.data_ptr<F>(), *gtfp = gtf_rows.data_ptr<F>();
    at::parallel_for(0, B * C, 16, [&](int64_t begin, int64_t end) {
      for (int64_t idx = begin; idx < end; ++idx) {
        const int64_t b = idx / C, c = idx % C, off = b * T * C + c;
        const F w = -wkv_detail::wkv_exp(tdp[c]);
        F gw = 0, gu = 0;
        wkv_detail::wkv_backward_column<F>(T, C, w, tfp[c], kp + off, vp + off, yp + off, gyp + off, gkp + off,
                                           gvp + off, &gw, &gu);
        gtdp[idx] = gw * w;  // dw/dtime_decay = w
        gtfp[idx] = gu;
      }
    });
  }
  return {gtd_rows.sum(0), gtf_rows.sum(0), grad_k, grad_v};
}

// Inputs: contiguous, one dtype (float32 on CUDA; float32 or float64 on the CPU).
Tensor kernel_forward(const Tensor& td, const Tensor& tf, const Tensor& k, const Tensor& v) {
  if (k.is_cuda()) return cuda::wkv_forward_cuda(td, tf, k, v);
  TORCH_CHECK(k.is_cpu(), "rbk::wkv: WkvPath::Kernel runs on CUDA or the CPU, got ", k.device());
  return k.scalar_type() == torch::kDouble ? host_forward<double>(td, tf, k, v) : host_forward<float>(td, tf, k, v);
}

std::array<Tensor, 4> kernel_backward(const Tensor& td, const Tensor& tf, const Tensor& k, const Tensor& v,
                                      const Tensor& y, const Tensor& gy) {
  if (k.is_cuda()) return cuda::wkv_backward_cuda(td, tf, k, v, y, gy);
  const Tensor g = gy.to(k.scalar_type()).contiguous();
  return k.scalar_type() == torch::kDouble ? host_backward<double>(td, tf, k, v, y, g)
                                           : host_backward<float>(td, tf, k, v, y, g);
}

// Custom backward: the kernel's two-pass gradient (wkv_column.h). Saves the inputs and the output y
// (the backward's forward-in-time pass reads y instead of recomputing it).
struct WkvKernelFunction : public torch::autograd::Function<WkvKernelFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& time_decay, const Tensor& time_first, const Tensor& k,
                        const Tensor& v) {
    Tensor y = kernel_forward(time_decay, time_first, k, v);
    ctx->save_for_backward({time_decay, time_first, k, v, y});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto s = ctx->get_saved_variables();
    auto g = kernel_backward(s[0], s[1], s[2], s[3], s[4], grad_outputs[0].contiguous());
    return {g[0], g[1], g[2], g[3]};
  }
};

}  // namespace

Tensor wkv_reference(const Tensor& time_decay, const Tensor& time_first, const Tensor& k, const Tensor& v) {
  check_operands("rbk::wkv_reference", time_decay, time_first, k, v);
  const auto dt = compute_dtype(time_decay, time_first, k, v);
  const Tensor w = -torch::exp(time_decay.to(dt));  // (C,)
  const Tensor u = time_first.to(dt);               // (C,)
  const Tensor kk = k.to(dt), vv = v.to(dt);        // (B, T, C)
  const int64_t B = k.size(0), T = k.size(1), C = k.size(2);
  if (T == 0) return torch::zeros({B, 0, C}, kk.options());
  std::vector<Tensor> ys;
  ys.reserve(static_cast<size_t>(T));
  // Step 0: the sums over i < 0 are empty, y_0 = v_0; the state (p, q, o) = (v_0, 1, k_0), with
  // p, q written as e^{k_0 - o} v_0 and e^{k_0 - o} so that they carry the k_0-dependence the
  // detached shift o does not.
  ys.push_back(vv.select(1, 0));
  const Tensor o0 = kk.select(1, 0).detach();
  Tensor q = torch::exp(kk.select(1, 0) - o0), p = q * vv.select(1, 0), o = o0;
  for (int64_t t = 1; t < T; ++t) {
    const Tensor kt = kk.select(1, t), vt = vv.select(1, t);  // (B, C)
    const Tensor uk = u + kt;
    Tensor m = torch::maximum(o, uk).detach();
    Tensor ea = torch::exp(o - m), eb = torch::exp(uk - m);
    ys.push_back((ea * p + eb * vt) / (ea * q + eb));
    const Tensor wo = w + o;
    m = torch::maximum(wo, kt).detach();
    ea = torch::exp(wo - m);
    eb = torch::exp(kt - m);
    p = ea * p + eb * vt;
    q = ea * q + eb;
    o = m;  // detached: a = p e^o with o a constant is an exact reparametrisation
  }
  return torch::stack(ys, 1);
}

Tensor wkv_naive(const Tensor& time_decay, const Tensor& time_first, const Tensor& k, const Tensor& v) {
  check_operands("rbk::wkv_naive", time_decay, time_first, k, v);
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble).device(k.device());
  const Tensor w = -torch::exp(time_decay.to(torch::kDouble)), u = time_first.to(torch::kDouble);
  const Tensor kk = k.to(torch::kDouble), vv = v.to(torch::kDouble);
  const int64_t T = k.size(1);
  // E[t, i, c] = exponent of term i in y_t: (t-1-i) w + k_i for i < t, u + k_t for i == t.
  const Tensor ti = torch::arange(T, f64);
  const Tensor lag = (ti.unsqueeze(1) - 1 - ti.unsqueeze(0));                  // (T, T): t-1-i
  const Tensor past = ti.unsqueeze(1) > ti.unsqueeze(0);  // (T, T) bool: i < t
  const Tensor diag = torch::eye(T, f64);                  // (T, T): i == t
  // Exponents of term i in row t; the terms i >= t of the sum get -inf (their lag would overflow).
  const Tensor e_past = (lag.unsqueeze(-1) * w + kk.unsqueeze(1))  // (B, T, T, C): (t-1-i) w + k_i
                            .masked_fill(past.logical_not().unsqueeze(-1), -std::numeric_limits<double>::infinity());
  const Tensor e_now = (u + kk).unsqueeze(2);  // (B, T, 1, C): u + k_t
  const Tensor weight = torch::exp(e_past) + torch::exp(e_now) * diag.unsqueeze(-1);
  const Tensor num = (weight * vv.unsqueeze(1)).sum(2);  // (B, T, C)
  const Tensor den = weight.sum(2);
  return num / den;
}

Tensor wkv(const Tensor& time_decay, const Tensor& time_first, const Tensor& k, const Tensor& v, WkvPath path) {
  check_operands("rbk::wkv", time_decay, time_first, k, v);
  auto dt = compute_dtype(time_decay, time_first, k, v);
  if (path == WkvPath::Auto)
    path = (k.is_cuda() && wkv_cuda_kernel_built() && dt == torch::kFloat) ? WkvPath::Kernel : WkvPath::Reference;
  Tensor y;
  if (path == WkvPath::Reference) {
    y = wkv_reference(time_decay, time_first, k, v);
  } else {
    // The CUDA kernel computes in fp32: bf16 / fp16 inputs are cast up explicitly here (autograd
    // casts the gradients back); fp64 on CUDA is refused rather than silently downcast.
    TORCH_CHECK(!(k.is_cuda() && dt == torch::kDouble),
                "rbk::wkv: the CUDA kernel computes in float32; use WkvPath::Reference for float64 CUDA tensors");
    auto c = [dt](const Tensor& t) { return t.to(dt).contiguous(); };
    y = WkvKernelFunction::apply(c(time_decay), c(time_first), c(k), c(v));
  }
  return is_low_precision(k) ? y.to(k.scalar_type()) : y;
}

bool wkv_cuda_kernel_built() { return cuda::cuda_kernels_linked(); }

}  // namespace rbk
