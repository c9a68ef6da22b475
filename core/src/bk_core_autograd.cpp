// autograd::Function around BK-Core: any forward mode x any gradient mode x context.
#include "rbk/bk_core_autograd.h"

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
    const Tensor vv = fwd == BkForwardMode::Stable ? v : v.to(torch::kFloat);  // upstream feeds float32
    const Tensor G = resolvent_diagonal(laplacian_with_potential(vv.detach()), z, fwd, static_cast<BkContext>(context),
                                        static_cast<CompatExecution>(compat_execution));
    ctx->save_for_backward({v, G});
    ctx->saved_data["gradient"] = gradient_mode;
    ctx->saved_data["context"] = context;
    ctx->saved_data["z_re"] = z_re;
    ctx->saved_data["z_im"] = z_im;
    return resolvent_features(G);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const Tensor& v = saved[0];
    const Tensor& G = saved[1];
    const Tensor grad = grad_outputs[0].contiguous();  // (B, N, 2)
    const auto mode = static_cast<BkGradientMode>(ctx->saved_data["gradient"].toInt());
    Tensor grad_v;
    if (mode == BkGradientMode::Exact) {
      const auto real_type = v.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
      const Tensor g = torch::view_as_complex(grad.to(real_type).contiguous());
      const c10::complex<double> z(ctx->saved_data["z_re"].toDouble(), ctx->saved_data["z_im"].toDouble());
      grad_v = resolvent_diagonal_vjp_exact(laplacian_with_potential(v.to(real_type)), z, g,
                                            static_cast<BkContext>(ctx->saved_data["context"].toInt()));
    } else {
      grad_v = hybrid_gradient(G, grad, mode);
    }
    return {grad_v.to(v.scalar_type()), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

Tensor bk_core_features(const Tensor& v, const BkCoreOptions& o) {
  return BkCoreFunction::apply(v, static_cast<int64_t>(o.forward), static_cast<int64_t>(o.gradient),
                               static_cast<int64_t>(o.context), o.z.real(), o.z.imag(),
                               static_cast<int64_t>(o.compat_execution));
}

}  // namespace rbk
