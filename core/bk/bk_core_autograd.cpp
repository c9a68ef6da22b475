// autograd::Function around BK-Core: any forward mode x any gradient mode x context.
#include "rbk/bk_core_autograd.h"

#include "rbk/cuda_glue/bk_core_cuda.h"

namespace rbk {
namespace {

using torch::Tensor;

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct BkCoreFunction : public torch::autograd::Function<BkCoreFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& v, int64_t forward_mode, int64_t gradient_mode,
                        int64_t context, double z_re, double z_im, int64_t compat_execution) {
    const c10::complex<double> z(z_re, z_im);
    const auto fwd = static_cast<BkForwardMode>(forward_mode);
    ctx->saved_data["gradient"] = gradient_mode;
    ctx->saved_data["context"] = context;
    ctx->saved_data["z_re"] = z_re;
    ctx->saved_data["z_im"] = z_im;
    if (bk_core_v_only_kernel_applies(v, fwd)) {
      const Tensor features = cuda::bk_core_features_cuda(v.detach().contiguous(), z, static_cast<BkContext>(context));
      ctx->save_for_backward({v, features});
      ctx->saved_data["v_only_cuda"] = true;
      return features;
    }
    ctx->saved_data["v_only_cuda"] = false;
    // Upstream feeds its compat recursions float32. A float16 or bfloat16 potential (a model cast to
    // fp16 for inference, as the seeds' memory measurements do; bf16 off the v-only kernel) is scanned
    // in float32 too: the continued fractions need more than 8-11 mantissa bits, and the scans take
    // float32 / float64 only. The features come back float32; the model casts them to its dtype.
    const bool scan_dtype = v.scalar_type() == torch::kFloat || v.scalar_type() == torch::kDouble;
    const Tensor vv = fwd == BkForwardMode::Stable && scan_dtype ? v : v.to(torch::kFloat);
    const Tensor G = bk_core_diagonal(laplacian_with_potential(vv.detach()), z, fwd, static_cast<BkContext>(context),
                                        static_cast<CompatExecution>(compat_execution));
    ctx->save_for_backward({v, G});
    return bk_core_features_of_diagonal(G);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const Tensor& v = saved[0];
    const Tensor grad = grad_outputs[0].contiguous();  // (B, N, 2)
    const auto mode = static_cast<BkGradientMode>(ctx->saved_data["gradient"].toInt());
    const bool v_only_cuda = ctx->saved_data["v_only_cuda"].toBool();
    // Saved: G (B, N) complex, or the v-only kernel's features (B, N, 2) float32.
    const Tensor G = v_only_cuda ? torch::view_as_complex(saved[1].contiguous()) : saved[1];
    Tensor grad_v;
    if (v_only_cuda && mode == BkGradientMode::Exact) {
      const c10::complex<double> z(ctx->saved_data["z_re"].toDouble(), ctx->saved_data["z_im"].toDouble());
      grad_v = cuda::bk_core_features_vjp_cuda(v.contiguous(), z, grad.to(torch::kFloat).contiguous(),
                                          static_cast<BkContext>(ctx->saved_data["context"].toInt()));
      return {grad_v.to(v.scalar_type()), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
    }
    if (mode == BkGradientMode::Exact) {
      const auto real_type = v.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
      const Tensor g = torch::view_as_complex(grad.to(real_type).contiguous());
      const c10::complex<double> z(ctx->saved_data["z_re"].toDouble(), ctx->saved_data["z_im"].toDouble());
      grad_v = bk_core_diagonal_vjp_exact(laplacian_with_potential(v.to(real_type)), z, g,
                                            static_cast<BkContext>(ctx->saved_data["context"].toInt()));
    } else {
      grad_v = hybrid_gradient(G, grad, mode);
    }
    return {grad_v.to(v.scalar_type()), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

Tensor bk_core_features(const Tensor& v, const BkCoreOptions& o) {
  if (o.gradient == BkGradientMode::Autograd) {
    // No custom Function: LibTorch records the differentiable forward and derives the backward.
    TORCH_CHECK(o.forward == BkForwardMode::Stable, "BK-Core: gradient 'autograd' needs forward 'stable' (got '",
                to_string(o.forward), "')");
    return torch::view_as_real(bk_core_diagonal_stable_differentiable(v, o.z, o.context));  // (B, N, 2)
  }
  return BkCoreFunction::apply(v, static_cast<int64_t>(o.forward), static_cast<int64_t>(o.gradient),
                               static_cast<int64_t>(o.context), o.z.real(), o.z.imag(),
                               static_cast<int64_t>(o.compat_execution));
}

}  // namespace rbk
