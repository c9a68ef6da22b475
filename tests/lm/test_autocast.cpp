// bf16 autocast support of the LM trainer (issue 4), checked on the CPU: rbk::AutocastGuard sets
// and restores CUDA autocast's state (nesting included) and leaves CPU forwards bit-identical
// (CPU autocast is never enabled by it); bf16 off CUDA is an error naming the option.
#include "rbk/evaluator.h"
#include "rbk/language_model.h"
#include "rbk/torch_compat.h"
#include "rbk/trainer.h"

#include <gtest/gtest.h>

#include "lm_test_support.h"

#include <string>

namespace {

using rbk::lm_test::tiny_config;

TEST(AutocastGuard, SetsAndRestoresCudaAutocastState) {
  const bool enabled0 = rbk::cuda_autocast_enabled();
  const auto dtype0 = rbk::cuda_autocast_dtype();
  ASSERT_FALSE(enabled0);
  {
    rbk::AutocastGuard off(false);  // a disabled guard changes nothing
    EXPECT_FALSE(rbk::cuda_autocast_enabled());
  }
  {
    rbk::AutocastGuard outer(true, torch::kBFloat16);
    EXPECT_TRUE(rbk::cuda_autocast_enabled());
    EXPECT_EQ(rbk::cuda_autocast_dtype(), torch::kBFloat16);
    {
      rbk::AutocastGuard inner(true, torch::kHalf);
      EXPECT_TRUE(rbk::cuda_autocast_enabled());
      EXPECT_EQ(rbk::cuda_autocast_dtype(), torch::kHalf);
    }
    EXPECT_TRUE(rbk::cuda_autocast_enabled());
    EXPECT_EQ(rbk::cuda_autocast_dtype(), torch::kBFloat16);
  }
  EXPECT_EQ(rbk::cuda_autocast_enabled(), enabled0);
  EXPECT_EQ(rbk::cuda_autocast_dtype(), dtype0);
  EXPECT_THROW(rbk::AutocastGuard(true, torch::kFloat), c10::Error);
  EXPECT_EQ(rbk::cuda_autocast_enabled(), enabled0);
}

TEST(AutocastGuard, CpuForwardIsUnchanged) {
  for (const std::string arch : {"resnet_bk", "transformer"}) {
    torch::manual_seed(3);
    auto m = rbk::make_language_model(tiny_config(arch));
    m->eval();
    torch::NoGradGuard ng;
    const auto ids = torch::randint(37, {3, 12}, torch::kInt64);
    const auto plain = m->forward(ids);
    torch::Tensor guarded;
    {
      rbk::AutocastGuard autocast(true);
      guarded = m->forward(ids);
    }
    EXPECT_EQ(guarded.scalar_type(), torch::kFloat) << arch;
    EXPECT_TRUE(torch::equal(plain, guarded)) << arch << ": max diff " << (plain - guarded).abs().max().item<double>();
  }
}

TEST(Precision, Bf16OffCudaIsAnErrorNamingTheOption) {
  EXPECT_FALSE(rbk::wants_bf16_autocast("fp32", torch::kCPU));
  for (const std::string p : {"bf16", "fp16"}) {
    try {
      (void)rbk::wants_bf16_autocast(p, torch::kCPU);
      FAIL() << p << ": expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("'precision'"), std::string::npos) << e.what();
    }
  }
  auto m = rbk::make_language_model(tiny_config("transformer"));
  rbk::TrainOptions o;
  o.batch_size = 2;
  o.seq_len = 4;
  o.precision = "bf16";
  const auto ids = torch::randint(37, {64}, torch::kInt64);
  EXPECT_THROW(rbk::train_language_model(*m, ids, o), std::invalid_argument);
  rbk::TokenStream s;
  s.ids = ids;
  s.n_bytes = 256;
  EXPECT_THROW(rbk::evaluate_language_model(*m, s, 2, 4, rbk::BatchLayout::Correct, torch::kCPU, "bf16"),
               std::invalid_argument);
}

// The trainer reads its losses from the device every sync_every steps and replays the host
// bookkeeping; the result must not depend on the interval (on the CPU the default is 1).
TEST(Trainer, DeferredLossReadsGiveIdenticalLossesAndDivergenceStep) {
  torch::manual_seed(5);
  const auto ids = torch::randint(37, {6000}, torch::kInt64);
  rbk::TrainOptions o;
  o.batch_size = 4;
  o.seq_len = 12;  // tiny_config(): n_seq 12
  o.epochs = 2;    // 62 steps per epoch: the epoch-end flush and a partial epoch are exercised
  o.max_steps = 80;
  o.grad_accum = 2;
  o.log_every = 0;
  o.seed = 9;
  auto run = [&](int64_t sync_every, double spike) {
    torch::manual_seed(1);
    auto m = rbk::make_language_model(tiny_config("transformer"));
    auto oo = o;
    oo.sync_every = sync_every;
    oo.spike_factor = spike;
    return rbk::train_language_model(*m, ids, oo);
  };
  const auto a = run(1, 0.0), b = run(7, 0.0);
  ASSERT_EQ(a.status, "ok");
  ASSERT_EQ(b.status, "ok");
  ASSERT_EQ(a.step_losses.size(), 80u);
  EXPECT_EQ(a.step_losses, b.step_losses);
  ASSERT_EQ(a.epochs.size(), 2u);
  ASSERT_EQ(b.epochs.size(), 2u);
  for (size_t e = 0; e < 2; ++e) EXPECT_EQ(a.epochs[e].mean_loss, b.epochs[e].mean_loss);
  EXPECT_LT(a.step_losses.back(), a.step_losses.front());
  // Any loss above half its running mean is a spike: both must report step 50, the first one checked.
  const auto c = run(1, 0.5), d = run(7, 0.5);
  std::printf("every step: %s | every 7: %s\n", c.message.c_str(), d.message.c_str());
  EXPECT_EQ(c.status, "diverged");
  EXPECT_EQ(d.status, "diverged");
  EXPECT_EQ(c.steps, 50);
  EXPECT_EQ(d.steps, 50);
  EXPECT_EQ(c.message, d.message);
  EXPECT_EQ(c.step_losses, d.step_losses);
}

}  // namespace
