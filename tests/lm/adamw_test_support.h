// rbk::DeviceStepAdamW against torch::optim::AdamW, shared by the CPU test (the multi-tensor kernel,
// tests/lm/test_captured_step.cpp) and the GPU test (both kernels on CUDA,
// tests/gpu/test_device_step_adamw_cuda.cpp): the same parameters, gradients and learning-rate
// schedule through both optimizers, and the largest difference of the parameters afterwards.
#pragma once
#include "rbk/device_step_adamw.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <vector>

namespace rbk::adamw_test {

inline std::vector<torch::Tensor> make_params(uint64_t seed, const torch::Device& device) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> ps;
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{{300}, {10, 20}, {7, 5}, {3}})
    ps.push_back(torch::randn(shape).to(device).requires_grad_(true));
  return ps;
}

inline std::vector<torch::Tensor> clones(const std::vector<torch::Tensor>& ps) {
  std::vector<torch::Tensor> out;
  for (const auto& p : ps) out.push_back(p.detach().clone().requires_grad_(true));
  return out;
}

inline torch::optim::AdamWOptions options(double lr) {
  return torch::optim::AdamWOptions(lr).betas({0.9, 0.999}).eps(1e-8).weight_decay(0.1);
}

// Largest |a - b| over the parameters after `steps` steps of torch::optim::AdamW (learning rate
// lr_scale x the schedule) and of DeviceStepAdamW with `kernel` (the schedule) on the same
// gradients, on `device`. Fails the calling test if DeviceStepAdamW's kernel is not `expect_fused`.
inline double max_difference_after(int steps, double lr_scale, const torch::Device& device,
                                   DeviceStepAdamW::Kernel kernel, bool expect_fused) {
  auto a = make_params(11, device);
  auto b = clones(a);
  torch::optim::AdamW reference(a, options(3e-3 * lr_scale));
  DeviceStepAdamW device_step(b, options(3e-3), kernel);
  EXPECT_EQ(device_step.fused(), expect_fused);
  for (int s = 0; s < steps; ++s) {
    const double lr = 3e-3 / (1.0 + s);  // a schedule: both must read the rate at every step
    for (auto& g : reference.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr * lr_scale);
    device_step.set_lr(lr);
    device_step.zero_grad();
    for (size_t i = 0; i < a.size(); ++i) {
      const auto g = torch::randn_like(a[i]) * (1.0 + static_cast<double>(i));
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    reference.step();
    device_step.step();
  }
  EXPECT_EQ(device_step.steps_taken(), steps);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
  return worst;
}

// Bound: the parameters are O(1) and each of the 8 steps moves them by at most ~lr = 3e-3; the two
// optimizers round the same float32 arithmetic in a different order (a product with 1 / sqrt(bc2)
// for a quotient, the step size folded into the denominator), a few float32 ulps of O(1) values per
// step: 8 steps x 4 ulps x 1.2e-7 ~ 4e-6.
constexpr double kRoundingBound = 4e-6;

// The test of one kernel on one device: within the bound, and a learning rate 1 % off (a step size
// or bias correction computed wrongly is at least that far off at these early steps) far outside it.
inline void expect_equals_torch_adamw(const torch::Device& device, DeviceStepAdamW::Kernel kernel, bool expect_fused) {
  const double d = max_difference_after(8, 1.0, device, kernel, expect_fused);
  EXPECT_LE(d, kRoundingBound);
  const double off = max_difference_after(8, 1.01, device, kernel, expect_fused);
  EXPECT_GT(off, 10 * kRoundingBound) << "a 1 % different learning rate differs by only " << off;
}

}  // namespace rbk::adamw_test
