// rbk::MultiTensorAdamW (issue 25) against torch::optim::AdamW: bit-identical parameters and
// moments on the CPU over steps with a changing learning rate, weight decay, a parameter that
// misses a gradient (two step counts in one group) and several chunks; checkpoints exchanged both
// ways; the same within fp32 rounding on CUDA where a GPU is present. The gradient clipping's
// multi-tensor norm and scaling against the per-tensor formula.
#include "rbk/multi_tensor_adamw.h"
#include "rbk/torch_compat_optim.h"
#include "rbk/trainer.h"

#include <gtest/gtest.h>

#include <sstream>

namespace {

using torch::Tensor;

// Parameters whose sizes make the optimizer split them into two chunks (limit: twice the largest,
// 4,000 elements: 2,000 + 1,000 first, then 1,500 + 35 + 3 + 2,000).
std::vector<Tensor> make_params(const torch::Device& device) {
  torch::manual_seed(7);
  std::vector<Tensor> ps;
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{{2000}, {10, 100}, {1500}, {7, 5}, {3}, {40, 50}})
    ps.push_back(torch::randn(shape, torch::TensorOptions().device(device)).requires_grad_(true));
  return ps;
}

std::vector<Tensor> clones(const std::vector<Tensor>& ps) {
  std::vector<Tensor> out;
  for (const auto& p : ps) out.push_back(p.detach().clone().requires_grad_(true));
  return out;
}

torch::optim::AdamWOptions options() { return torch::optim::AdamWOptions(3e-3).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1); }

// The same gradients for both sets; parameter 3 gets none at step 1, so its step count lags.
void set_gradients(std::vector<Tensor>& a, std::vector<Tensor>& b, int step) {
  for (size_t i = 0; i < a.size(); ++i) {
    a[i].mutable_grad() = Tensor();
    b[i].mutable_grad() = Tensor();
    if (i == 3 && step == 1) continue;
    const auto g = torch::randn_like(a[i]) * (1.0 + static_cast<double>(i));
    a[i].mutable_grad() = g.clone();
    b[i].mutable_grad() = g.clone();
  }
}

void set_lr(torch::optim::Optimizer& o, double lr) {
  for (auto& g : o.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

// Largest |a - b| over parameters and both moments; -1 when any shape or step count differs.
double max_difference(torch::optim::Optimizer& oa, const std::vector<Tensor>& a, torch::optim::Optimizer& ob,
                      const std::vector<Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto& sa = static_cast<torch::optim::AdamWParamState&>(*oa.state().at(rbk::optimizer_state_key(oa.state(), a[i])));
    const auto& sb = static_cast<torch::optim::AdamWParamState&>(*ob.state().at(rbk::optimizer_state_key(ob.state(), b[i])));
    if (sa.step() != sb.step()) return -1;
    for (const auto& [x, y] : {std::pair{a[i].detach(), b[i].detach()}, {sa.exp_avg(), sb.exp_avg()}, {sa.exp_avg_sq(), sb.exp_avg_sq()}})
      worst = std::max(worst, (x - y).abs().max().item<double>());
  }
  return worst;
}

// Runs `steps` steps of both optimizers on the same gradients; returns the largest difference.
double run_side_by_side(torch::optim::Optimizer& oa, std::vector<Tensor>& a, torch::optim::Optimizer& ob,
                        std::vector<Tensor>& b, int first_step, int steps) {
  for (int s = first_step; s < first_step + steps; ++s) {
    set_gradients(a, b, s);
    const double lr = 3e-3 / (1.0 + s);  // a schedule: the optimizers must read lr at every step
    set_lr(oa, lr);
    set_lr(ob, lr);
    oa.step();
    ob.step();
  }
  return max_difference(oa, a, ob, b);
}

// The two optimizers on equal copies of the parameters.
struct SideBySide {
  std::vector<Tensor> a, b;
  torch::optim::AdamW reference;
  rbk::MultiTensorAdamW multi;
  explicit SideBySide(const torch::Device& device)
      : a(make_params(device)), b(clones(a)), reference(a, options()), multi(b, options()) {}
};

TEST(MultiTensorAdamW, BitIdenticalToTorchAdamWOnCpu) {
  SideBySide s(torch::kCPU);
  torch::manual_seed(11);
  EXPECT_EQ(run_side_by_side(s.reference, s.a, s.multi, s.b, 0, 6), 0.0);
  // The lagging parameter really has its own step count (the two-step-count path ran).
  const auto& lagging =
      static_cast<torch::optim::AdamWParamState&>(*s.multi.state().at(rbk::optimizer_state_key(s.multi.state(), s.b[3])));
  EXPECT_EQ(lagging.step(), 5);
  // And the parameters moved (a no-op step would compare equal to a no-op reference only if both were).
  EXPECT_GT((s.b[0].detach() - make_params(torch::kCPU)[0]).abs().max().item<double>(), 1e-3);
}

TEST(MultiTensorAdamW, CheckpointsAreInterchangeableWithTorchAdamW) {
  for (const bool reference_first : {true, false}) {
    SideBySide s(torch::kCPU);
    torch::manual_seed(13);
    ASSERT_EQ(run_side_by_side(s.reference, s.a, s.multi, s.b, 0, 3), 0.0);
    // Save one optimizer, load it into a fresh one of the other kind on copies of its parameters.
    torch::optim::Optimizer& kept = reference_first ? static_cast<torch::optim::Optimizer&>(s.reference) : s.multi;
    auto& kept_params = reference_first ? s.a : s.b;
    auto c = clones(kept_params);
    torch::serialize::OutputArchive out;
    kept.save(out);
    std::ostringstream bytes;
    out.save_to(bytes);
    std::unique_ptr<torch::optim::Optimizer> loaded;
    if (reference_first) loaded = std::make_unique<rbk::MultiTensorAdamW>(c, options());
    else loaded = std::make_unique<torch::optim::AdamW>(c, options());
    torch::serialize::InputArchive in;
    std::istringstream read(bytes.str());
    in.load_from(read);
    loaded->load(in);
    EXPECT_EQ(max_difference(kept, kept_params, *loaded, c), 0.0) << "after loading";
    EXPECT_EQ(run_side_by_side(kept, kept_params, *loaded, c, 3, 3), 0.0) << "three steps after loading";
  }
}

TEST(MultiTensorAdamW, AmsgradIsAnError) {
  auto a = make_params(torch::kCPU);
  rbk::MultiTensorAdamW multi(a, options().amsgrad(true));
  for (auto& p : a) p.mutable_grad() = torch::ones_like(p);
  EXPECT_THROW(multi.step(), c10::Error);
}

// CUDA: the multi-tensor kernels may round differently; after 6 steps every value must stay within
// 1e-6 relative of the per-tensor loop's (a few fp32 ulps per step, carried by the normalisation
// by sqrt(v)), far below what a wrong coefficient or a skipped parameter would give (>= 1e-3).
TEST(MultiTensorAdamW, CloseToTorchAdamWOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  SideBySide s(torch::kCUDA);
  torch::manual_seed(11);
  EXPECT_LT(run_side_by_side(s.reference, s.a, s.multi, s.b, 0, 6), 1e-6);
}

// The clipping's multi-tensor norm and scaling (trainer.h) against the per-tensor formula of
// torch::nn::utils::clip_grad_norm_ written out: equal bits on the CPU.
TEST(MultiTensorAdamW, ClippingMatchesThePerTensorFormula) {
  auto a = make_params(torch::kCPU);
  auto b = clones(a);
  torch::manual_seed(17);
  set_gradients(a, b, 0);
  std::vector<Tensor> norms;
  for (const auto& p : a)
    if (p.grad().defined()) norms.push_back(p.grad().norm(2.0));
  const auto total = torch::stack(norms).norm(2.0);
  const auto coef = torch::clamp(1.0 / (total + 1e-6), c10::nullopt, 1.0);
  for (auto& p : a)
    if (p.grad().defined()) p.grad().mul_(coef);
  const auto returned = rbk::clip_grad_norm_no_sync(b, 1.0);
  EXPECT_TRUE(torch::equal(returned, total));
  EXPECT_LT(coef.item<double>(), 0.1);  // the gradients were really scaled
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].grad().defined()) {
      EXPECT_TRUE(torch::equal(a[i].grad(), b[i].grad())) << "parameter " << i;
    }
  }
}

}  // namespace
