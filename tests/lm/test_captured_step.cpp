// The parts of a training step captured in a CUDA graph (issue 25), on the CPU:
// * rbk::DeviceStepAdamW against torch::optim::AdamW: equal within float32 rounding over steps with
//   weight decay and a changing learning rate, where a 1 % different learning rate is far outside
//   that bound (tests/lm/adamw_test_support.h, shared with the CUDA test of both kernels); clear
//   errors for a missing gradient, mixed dtypes and the fused kernel asked for on the CPU;
// * rbk::CapturedLmStep's eager step against the same step written out (language_model_loss,
//   clipping, torch::optim::AdamW) on a ResNet-BK LM;
// * rbk::CudaGraph's error where the build or device cannot capture.
// The captured step itself is tested on the GPU (tests/gpu/test_cuda_graph_step.cpp).
#include "rbk/captured_lm_step.h"
#include "rbk/device_step_adamw.h"
#include "rbk/lm_loss.h"
#include "rbk/torch_compat_cuda_graph.h"

#include <gtest/gtest.h>

#include "adamw_test_support.h"
#include "lm_test_support.h"

#include <string>

namespace {

using torch::Tensor;

using rbk::adamw_test::kRoundingBound;
using rbk::adamw_test::options;

// On the CPU, Auto is the multi-tensor kernel (the fused one runs on CUDA only).
TEST(DeviceStepAdamW, EqualsTorchAdamWWithinFloat32Rounding) {
  rbk::adamw_test::expect_equals_torch_adamw(torch::kCPU, rbk::DeviceStepAdamW::Kernel::Auto, /*expect_fused=*/false);
}

TEST(DeviceStepAdamW, TheFusedKernelOnTheCpuIsAClearError) {
  auto ps = rbk::adamw_test::make_params(3, torch::kCPU);
  try {
    rbk::DeviceStepAdamW opt(ps, options(1e-3), rbk::DeviceStepAdamW::Kernel::Fused);
    FAIL() << "the fused kernel must refuse CPU parameters";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the fused kernel needs CUDA parameters"), std::string::npos) << e.what();
  }
}

TEST(DeviceStepAdamW, MissingGradientAndMixedDtypesAreClearErrors) {
  auto ps = rbk::adamw_test::make_params(3, torch::kCPU);
  rbk::DeviceStepAdamW opt(ps, options(1e-3));
  for (size_t i = 0; i < ps.size(); ++i)
    if (i != 2) ps[i].mutable_grad() = torch::ones_like(ps[i]);
  try {
    opt.step();
    FAIL() << "a parameter without a gradient must be an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("parameter 2 (shape [7, 5]) has no gradient"), std::string::npos) << e.what();
  }
  std::vector<Tensor> mixed{torch::zeros({3}).requires_grad_(true), torch::zeros({3}, torch::kDouble).requires_grad_(true)};
  EXPECT_THROW(rbk::DeviceStepAdamW(mixed, options(1e-3)), c10::Error);
  EXPECT_THROW(rbk::DeviceStepAdamW(ps, options(-1.0)), c10::Error);
}

// CapturedLmStep's eager step is the trainer's step. Over 4 steps on different batches, each of its
// steps is compared with the same step written out (language_model_loss, clipping,
// torch::optim::AdamW) from the same parameters, in two parts:
// * the clipped gradients agree within float32 rounding (relative to the largest element: the two
//   paths may sum in another order), and the same steps with the batches in another order are far
//   outside that (so the step reads each batch it is given);
// * given the captured step's own gradients, torch::optim::AdamW lands on its parameters within the
//   optimizer's rounding bound.
// Comparing the parameters alone would not do: Adam divides each element's update by that element's
// gradient scale, so a rounding-level difference in a gradient element near eps (1e-8) becomes one of
// up to ~lr in its update (on one CPU a 4-step parameter comparison differed by 1.0e-5 at a gradient
// of -1.3e-8 whose two roundings were 1 % apart).
struct StepComparison {
  double gradient_rel = 0;  // max |g_captured - g_written| / max |g_written|, over steps and parameters
  double parameters = 0;    // max |p_captured - p_written| after AdamW on the captured gradients
};

StepComparison captured_step_vs_written_out(bool shuffled) {
  rbk::LmConfig c = rbk::lm_test::tiny_config("resnet_bk");
  c.moe_dispatch = "dense";
  rbk::TrainOptions t;
  t.lr = 2e-3;
  t.weight_decay = 0.05;
  t.clip_norm = 0.5;
  torch::manual_seed(5);
  auto a = rbk::make_language_model(c);
  torch::manual_seed(5);
  auto b = rbk::make_language_model(c);
  torch::manual_seed(6);
  const auto batches = torch::randint(c.vocab_size, {4, 3, c.n_seq + 1}, torch::kInt64);
  rbk::CapturedLmStep step(*a, t, false, 3, c.n_seq);
  const auto pa = a->parameters();
  auto params = b->parameters();
  torch::optim::AdamW reference(params, options(t.lr).betas({t.beta1, t.beta2}).eps(t.eps).weight_decay(t.weight_decay));
  StepComparison worst;
  for (int64_t s = 0; s < 4; ++s) {
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < pa.size(); ++i) params[i].copy_(pa[i]);  // both steps start from the same point
    }
    std::vector<Tensor> before;
    for (const auto& p : pa) before.push_back(p.detach().clone());
    step.run_eager(batches[shuffled ? 3 - s : s]);
    reference.zero_grad();
    const auto x = batches[s];
    const auto loss = rbk::language_model_loss(*b, x.narrow(1, 0, c.n_seq), x.narrow(1, 1, c.n_seq), false);
    loss.backward();
    rbk::clip_grad_norm_no_sync(params, t.clip_norm);
    if (!shuffled) {
      EXPECT_NEAR(step.loss().item<double>(), loss.item<double>(), 1e-5) << "step " << s;
    }
    double largest = 0, differs = 0;
    for (size_t i = 0; i < pa.size(); ++i) {
      largest = std::max(largest, params[i].grad().abs().max().item<double>());
      differs = std::max(differs, (pa[i].grad() - params[i].grad()).abs().max().item<double>());
    }
    worst.gradient_rel = std::max(worst.gradient_rel, differs / largest);
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < pa.size(); ++i) {
        params[i].copy_(before[i]);
        params[i].mutable_grad().copy_(pa[i].grad());
      }
    }
    reference.step();
    for (size_t i = 0; i < pa.size(); ++i)
      worst.parameters = std::max(worst.parameters, (pa[i] - params[i]).abs().max().item<double>());
  }
  return worst;
}

// float32 sums of the same terms in another order: a few ulps of the largest gradient element.
constexpr double kGradientRoundingBound = 1e-5;

TEST(CapturedLmStep, EagerStepIsTheTrainersStep) {
  const StepComparison same = captured_step_vs_written_out(false);
  EXPECT_LE(same.gradient_rel, kGradientRoundingBound);
  EXPECT_LE(same.parameters, kRoundingBound);
  const StepComparison shuffled = captured_step_vs_written_out(true);
  EXPECT_GT(shuffled.gradient_rel, 100 * kGradientRoundingBound) << "the step did not read the batch it was given";
  std::printf("captured vs written-out step: gradients %.3g (relative), parameters %.3g; shuffled batches: gradients %.3g\n",
              same.gradient_rel, same.parameters, shuffled.gradient_rel);
}

TEST(CudaGraph, RefusesWhatCannotCapture) {
  bool ran = false;
  try {
    rbk::CudaGraph graph([&] { ran = true; }, torch::kCPU, 1);
    FAIL() << "a CUDA graph on the CPU must be an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cpu"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(ran);
  if (!rbk::cuda_graphs_available()) {
    EXPECT_THROW(rbk::CudaGraph([] {}, torch::Device(torch::kCUDA, 0), 1), std::runtime_error);
  }
}

}  // namespace
