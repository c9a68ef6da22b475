// DeviceStepAdamW (device_step_adamw.h): AdamW with its step count, bias corrections and learning
// rate on the device, for captured training steps.
#include "rbk/device_step_adamw.h"

#include "rbk/torch_compat_fused_adamw.h"
#include "rbk/torch_compat_optim.h"

#include <cmath>
#include <utility>

namespace rbk {

using torch::Tensor;

DeviceStepAdamW::DeviceStepAdamW(std::vector<Tensor> params, const torch::optim::AdamWOptions& o, Kernel kernel)
    : params_(std::move(params)),
      beta1_(std::get<0>(o.betas())),
      beta2_(std::get<1>(o.betas())),
      eps_(o.eps()),
      weight_decay_(o.weight_decay()) {
  TORCH_CHECK(!params_.empty(), "rbk::DeviceStepAdamW: no parameters");
  TORCH_CHECK(!o.amsgrad(), "rbk::DeviceStepAdamW: amsgrad is not implemented");
  TORCH_CHECK(o.lr() >= 0 && std::isfinite(o.lr()), "rbk::DeviceStepAdamW: lr must be finite and >= 0, got ", o.lr());
  const auto device = params_[0].device();
  const auto dtype = params_[0].scalar_type();
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    TORCH_CHECK(p.device() == device && p.scalar_type() == dtype, "rbk::DeviceStepAdamW: parameter ", i, " is ",
                p.scalar_type(), " on ", p.device(), "; every parameter must be ", dtype, " on ", device);
    exp_avgs_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    exp_avg_sqs_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve));
  }
  fused_ = kernel == Kernel::Fused || (kernel == Kernel::Auto && fused_adamw_runs_on(device));
  TORCH_CHECK(!fused_ || fused_adamw_runs_on(device), "rbk::DeviceStepAdamW: the fused kernel needs CUDA parameters and "
              "LibTorch >= 2.4; the parameters are on ", device);
  const auto scalars = torch::TensorOptions().dtype(fused_ ? torch::kFloat : torch::kDouble).device(device);
  step_ = torch::zeros({}, scalars);
  lr_ = torch::full({}, o.lr(), scalars);
  if (fused_) steps_.assign(params_.size(), step_);
}

void DeviceStepAdamW::zero_grad() {
  for (auto& p : params_) p.mutable_grad() = Tensor();
}

void DeviceStepAdamW::set_lr(double lr) {
  TORCH_CHECK(lr >= 0 && std::isfinite(lr), "rbk::DeviceStepAdamW: lr must be finite and >= 0, got ", lr);
  lr_.fill_(lr);
}

int64_t DeviceStepAdamW::steps_taken() const { return static_cast<int64_t>(step_.item<double>()); }

void DeviceStepAdamW::step() {
  torch::NoGradGuard no_grad;
  std::vector<Tensor> grads;
  grads.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& g = params_[i].grad();
    TORCH_CHECK(g.defined(), "rbk::DeviceStepAdamW: parameter ", i, " (shape ", params_[i].sizes(),
                ") has no gradient; every parameter needs one at every step (a captured step has a fixed set of tensors)");
    grads.push_back(g);
  }
  step_.add_(1);
  if (fused_)
    fused_adamw_update(params_, grads, exp_avgs_, exp_avg_sqs_, steps_, lr_, beta1_, beta2_, weight_decay_, eps_);
  else
    multi_tensor_step(grads);
}

void DeviceStepAdamW::multi_tensor_step(const std::vector<Tensor>& grads) {
  const auto dtype = params_[0].scalar_type();
  if (weight_decay_ != 0) scale_in_place(params_, (1 - lr_ * weight_decay_).to(dtype));
  at::_foreach_mul_(exp_avgs_, beta1_);
  at::_foreach_add_(exp_avgs_, grads, 1 - beta1_);
  at::_foreach_mul_(exp_avg_sqs_, beta2_);
  at::_foreach_addcmul_(exp_avg_sqs_, grads, grads, 1 - beta2_);
  const Tensor bias_correction1 = 1 - torch::pow(beta1_, step_);
  const Tensor bias_correction2 = 1 - torch::pow(beta2_, step_);
  // denom = sqrt(v) / sqrt(bc2) + eps as torch::optim::AdamW has it, then divided by the step size
  // -lr / bc1, so that p += m / denom is the update p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps).
  auto denom = at::_foreach_sqrt(exp_avg_sqs_);
  scale_in_place(denom, bias_correction2.rsqrt().to(dtype));
  at::_foreach_add_(denom, eps_);
  scale_in_place(denom, (-bias_correction1 / lr_).to(dtype));
  at::_foreach_addcdiv_(params_, exp_avgs_, denom, 1.0);
}

}  // namespace rbk
