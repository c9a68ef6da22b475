// AR-SSM layer (ar_ssm.h; seed 001 §6.3, upstream-audit §6.4).
#include "rbk/ar_ssm.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace rbk {

int64_t ar_ssm_gate_hidden(const ArSsmOptions& o) {
  return o.gate_hidden > 0 ? o.gate_hidden : std::max(o.d_model / 4, o.min_rank);
}

int64_t ar_ssm_parameter_count(const ArSsmOptions& o) {
  const int64_t D = o.d_model, R = o.max_rank, h = ar_ssm_gate_hidden(o);
  return (D * h + h + h * R + R) + 2 * D * R + 3 * D + (R * D + D);
}

ArSsmImpl::ArSsmImpl(const ArSsmOptions& options) : options_(options) {
  const int64_t D = options.d_model, R = options.max_rank, h = ar_ssm_gate_hidden(options);
  if (D < 1 || R < 1 || h < 1)
    throw std::invalid_argument("ArSsm: d_model, max_rank and the gate width must be >= 1, got " + std::to_string(D) +
                                ", " + std::to_string(R) + ", " + std::to_string(h));
  // Padding is applied by hand in forward (symmetric or causal), so the conv itself pads nothing.
  conv_ = register_module("conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(D, D, 3).groups(D).bias(false)));
  gate1_ = register_module("gate1", torch::nn::Linear(D, h));
  gate2_ = register_module("gate2", torch::nn::Linear(h, R));
  u_proj_ = register_module("u_proj", torch::nn::Linear(torch::nn::LinearOptions(D, R).bias(false)));
  v_proj_ = register_module("v_proj", torch::nn::Linear(torch::nn::LinearOptions(D, R).bias(false)));
  out_proj_ = register_module("out_proj", torch::nn::Linear(R, D));
}

torch::Tensor ArSsmImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == options_.d_model, "ArSsm: x must be (B, L, ", options_.d_model, "), got ",
              x.sizes());
  namespace F = torch::nn::functional;
  auto xc = x.transpose(1, 2);  // (B, D, L)
  xc = options_.causal_conv ? F::pad(xc, F::PadFuncOptions({2, 0})) : F::pad(xc, F::PadFuncOptions({1, 1}));
  const auto local = conv_->forward(xc).transpose(1, 2);  // (B, L, D)
  const auto g = torch::sigmoid(gate2_->forward(torch::relu(gate1_->forward(x))));  // (B, L, R)
  last_gate_l1_ = g.abs().mean();
  const auto u = u_proj_->forward(x) * g;
  const auto w = v_proj_->forward(x) * g;
  const auto k = torch::cumsum(u, 1);
  return local + out_proj_->forward(k * w);
}

}  // namespace rbk
