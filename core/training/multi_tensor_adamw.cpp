// MultiTensorAdamW (multi_tensor_adamw.h): torch::optim::AdamW's update, written as multi-tensor
// operations over the parameters of a group.
#include "rbk/multi_tensor_adamw.h"

#include "rbk/torch_compat_optim.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace rbk {
namespace {

using torch::Tensor;
using torch::optim::AdamWOptions;
using torch::optim::AdamWParamState;

// The parameters of one group that share a step count (their bias corrections are equal), with
// their gradients and moments, in the group's order.
struct SameStepParams {
  std::vector<Tensor> params, grads, exp_avgs, exp_avg_sqs;
};

// Updates one list of same-step parameters: torch::optim::AdamW's per-tensor arithmetic in the
// same order of operations, each as one multi-tensor call.
void update(const SameStepParams& s, int64_t step, const AdamWOptions& o) {
  const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
  if (o.weight_decay() != 0) at::_foreach_mul_(s.params, 1 - o.lr() * o.weight_decay());
  at::_foreach_mul_(s.exp_avgs, beta1);
  at::_foreach_add_(s.exp_avgs, s.grads, 1 - beta1);
  at::_foreach_mul_(s.exp_avg_sqs, beta2);
  at::_foreach_addcmul_(s.exp_avg_sqs, s.grads, s.grads, 1 - beta2);
  const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(step));
  const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(step));
  auto denom = at::_foreach_sqrt(s.exp_avg_sqs);
  at::_foreach_div_(denom, std::sqrt(bias_correction2));
  at::_foreach_add_(denom, o.eps());
  at::_foreach_addcdiv_(s.params, s.exp_avgs, denom, -(o.lr() / bias_correction1));
}

// Splits `all` into consecutive chunks of at most `max_elements` elements (a parameter larger than
// that is a chunk of its own), so the denominators of one chunk never hold more memory than the
// per-tensor loop's two temporaries of the largest parameter.
std::vector<SameStepParams> chunks_of(const SameStepParams& all, int64_t max_elements) {
  std::vector<SameStepParams> out;
  int64_t in_chunk = max_elements;  // forces a new chunk for the first parameter
  for (size_t i = 0; i < all.params.size(); ++i) {
    const int64_t n = all.params[i].numel();
    if (in_chunk + n > max_elements) {
      out.emplace_back();
      in_chunk = 0;
    }
    auto& c = out.back();
    c.params.push_back(all.params[i]);
    c.grads.push_back(all.grads[i]);
    c.exp_avgs.push_back(all.exp_avgs[i]);
    c.exp_avg_sqs.push_back(all.exp_avg_sqs[i]);
    in_chunk += n;
  }
  return out;
}

}  // namespace

Tensor MultiTensorAdamW::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  auto& states = state();
  for (auto& group : param_groups()) {
    const auto& o = static_cast<const AdamWOptions&>(group.options());
    TORCH_CHECK(!o.amsgrad(), "rbk::MultiTensorAdamW: amsgrad is not implemented (use torch::optim::AdamW)");
    std::map<int64_t, SameStepParams> by_step;
    int64_t largest = 0;
    for (const auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      TORCH_CHECK(!p.grad().is_sparse(), "rbk::MultiTensorAdamW: sparse gradients are not supported");
      auto& slot = states[optimizer_state_key(states, p)];
      if (!slot) {
        auto fresh = std::make_unique<AdamWParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& st = static_cast<AdamWParamState&>(*slot);
      st.step(st.step() + 1);
      auto& same = by_step[st.step()];
      same.params.push_back(p);
      same.grads.push_back(p.grad());
      same.exp_avgs.push_back(st.exp_avg());
      same.exp_avg_sqs.push_back(st.exp_avg_sq());
      largest = std::max(largest, p.numel());
    }
    for (const auto& [step, same] : by_step)
      for (const auto& chunk : chunks_of(same, 2 * largest)) update(chunk, step, o);
  }
  return loss;
}

}  // namespace rbk
