// Unit tests of adaptive computation (act.h) and of the FLOP counts (flop_count.h), claim C11:
// halted tokens receive no further block work (counted by the executed matrix products, not by the
// ACT code's own counters alone); compat ACT changes nothing in the output; the analytic
// matrix-product FLOPs equal the operator count on small cases of every model.
#include "rbk/act.h"
#include "rbk/flop_count.h"
#include "rbk/resnet_bk_lm.h"

#include <gtest/gtest.h>

namespace {

rbk::LmConfig bk_config() {
  rbk::LmConfig c;
  c.vocab_size = 40;
  c.d_model = 8;
  c.n_layers = 3;
  c.n_seq = 12;
  c.num_experts = 4;
  c.top_k = 1;
  c.block = "papertime";
  c.router = "learned_topk";
  return c;
}

// Counted matrix-product FLOPs per token of forward_features (the head is not run).
double counted_per_token(rbk::LanguageModel& m, const torch::Tensor& ids) {
  torch::NoGradGuard ng;
  rbk::MatmulFlopCounter counter;
  (void)m.forward_features(ids);
  return counter.flops() / static_cast<double>(ids.numel());
}

double analytic_without_head(const rbk::LmConfig& c, int64_t n, double fraction = 1.0) {
  const auto t = rbk::analytic_token_flops(c, n, fraction);
  return t.matmul_total() - t.matmul.at("head");
}

// The analytic matrix-product FLOPs of forward_features equal the operators counted on a batch.
void expect_analytic_equals_counted(const rbk::LmConfig& c) {
  torch::manual_seed(0);
  auto m = rbk::make_language_model(c);
  m->eval();
  auto ids = torch::randint(0, c.vocab_size, {2, c.n_seq});
  EXPECT_DOUBLE_EQ(counted_per_token(*m, ids), analytic_without_head(c, c.n_seq));
}

}  // namespace

TEST(FlopCount, AnalyticMatmulEqualsOperatorCountResNetBk) {
  auto c = bk_config();
  expect_analytic_equals_counted(c);
}

TEST(FlopCount, AnalyticMatmulEqualsOperatorCountTransformer) {
  auto c = bk_config();
  c.arch = "transformer";
  c.n_heads = 2;
  c.ffn_dim = 16;
  expect_analytic_equals_counted(c);
}

TEST(FlopCount, AnalyticMatmulEqualsOperatorCountMamba) {
  auto c = bk_config();
  c.arch = "mamba";
  c.position = "auto";
  expect_analytic_equals_counted(c);
}

// Fused attention operators are counted once, as their dense QK^T and AV products: LibTorch 2's
// scaled_dot_product_attention runs fused kernels with no aten::bmm (the Transformer count fell
// short by exactly its attention on LibTorch 2.11), and 1.13's _scaled_dot_product_attention runs
// its math path's bmm leaves inside it, which must not be counted a second time. Each operator this
// LibTorch has is called through the dispatcher with its schema's defaults (no version guard).
TEST(FlopCount, AttentionOperatorsCountTheirDenseProductsOnce) {
  const int64_t B = 2, H = 3, N = 5, S = 7, Dh = 4, Dv = 6;
  const double dense = 2.0 * B * H * N * S * (Dh + Dv);
  int found = 0;
  for (const char* name : {"aten::scaled_dot_product_attention", "aten::_scaled_dot_product_attention"}) {
    const auto op = c10::Dispatcher::singleton().findSchema({name, ""});
    if (!op) continue;
    ++found;
    torch::jit::Stack stack{torch::randn({B, H, N, Dh}), torch::randn({B, H, S, Dh}), torch::randn({B, H, S, Dv})};
    const auto& args = op->schema().arguments();
    for (size_t i = 3; i < args.size(); ++i) {
      ASSERT_TRUE(args[i].default_value().has_value()) << name << " argument " << args[i].name();
      stack.push_back(*args[i].default_value());
    }
    torch::NoGradGuard ng;
    rbk::MatmulFlopCounter counter;
    op->callBoxed(&stack);
    EXPECT_DOUBLE_EQ(counter.flops(), dense) << name;
  }
  EXPECT_GE(found, 1) << "no attention operator in this LibTorch";
}

TEST(Act, HaltedTokensGetNoFurtherBlockWork) {
  // Threshold tiny, min_layers 1: every token halts after block 1 (its phase probability is > 0),
  // so block 2 must execute no matrix product at all: 2 of 3 blocks' per-token work.
  auto c = bk_config();
  c.act = "skip";
  c.act_threshold = 1e-6;
  c.act_min_layers = 1;
  torch::manual_seed(1);
  auto m = rbk::make_language_model(c);
  m->eval();
  auto ids = torch::randint(0, 40, {2, 12});
  const double counted = counted_per_token(*m, ids);
  EXPECT_DOUBLE_EQ(counted, analytic_without_head(c, 12, 2.0 / 3.0));
  auto& bk = dynamic_cast<rbk::ResNetBkLm&>(*m);
  EXPECT_EQ(bk.act_counters().token_blocks_run, 2 * 24);
  EXPECT_EQ(bk.act_counters().token_blocks_full, 3 * 24);
  EXPECT_EQ(bk.act_counters().halted_tokens, 24);
  // The same model with nothing halting does every block's work.
  auto full = c;
  full.act_min_layers = 3;
  torch::manual_seed(1);
  auto m_full = rbk::make_language_model(full);
  m_full->eval();
  EXPECT_DOUBLE_EQ(counted_per_token(*m_full, ids), analytic_without_head(c, 12, 1.0));
}

TEST(Act, SkipWithNothingHaltedEqualsThePlainModel) {
  auto plain = bk_config();
  auto skip = plain;
  skip.act = "skip";
  skip.act_min_layers = 3;  // no block may halt
  torch::manual_seed(2);
  auto a = rbk::make_language_model(plain);
  torch::manual_seed(2);
  auto b = rbk::make_language_model(skip);
  a->eval();
  b->eval();
  auto ids = torch::randint(0, 40, {2, 12});
  torch::NoGradGuard ng;
  // Tolerance: the same float32 ops on a gathered copy of the tokens; only summation order in the
  // Linear kernels may differ.
  EXPECT_TRUE(torch::allclose(a->forward(ids), b->forward(ids), 1e-5, 1e-6));
}

TEST(Act, CompatComputesHaltingButChangesNothing) {
  auto plain = bk_config();
  auto compat = plain;
  compat.act = "compat";
  torch::manual_seed(3);
  auto a = rbk::make_language_model(plain);
  torch::manual_seed(3);
  auto b = rbk::make_language_model(compat);
  a->eval();
  b->eval();
  auto ids = torch::randint(0, 40, {2, 12});
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(a->forward(ids), b->forward(ids)));
  auto& bk = dynamic_cast<rbk::ResNetBkLm&>(*b);
  EXPECT_EQ(bk.act_counters().token_blocks_run, bk.act_counters().token_blocks_full);
  EXPECT_GT(bk.act_counters().upstream_weight_sum, 0.0);  // upstream's halting weights were computed
  EXPECT_DOUBLE_EQ(counted_per_token(*b, ids), analytic_without_head(compat, 12, 1.0));
}

TEST(Act, LearnedUnitIsTheOnlyNewParameterAndTrains) {
  auto plain = bk_config();
  auto learned = plain;
  learned.act = "skip";
  learned.act_signal = "learned";
  learned.act_min_layers = 0;  // halting after block 0 scales the updates of blocks 1 and 2
  auto a = rbk::make_language_model(plain);
  auto b = rbk::make_language_model(learned);
  EXPECT_EQ(rbk::count_parameters(*b) - rbk::count_parameters(*a), 3 * (8 + 1));
  b->train();
  auto ids = torch::randint(0, 40, {2, 12});
  b->forward(ids).sum().backward();
  bool halt_grad = false;
  for (const auto& p : b->named_parameters())
    if (p.key().find("halt") != std::string::npos && p.value().grad().defined())
      halt_grad = halt_grad || p.value().grad().abs().sum().item<double>() > 0;
  EXPECT_TRUE(halt_grad);
}

TEST(Act, UpstreamHaltingProbabilityRegimes) {
  // u = (delta + pi) / (2 pi): delta = -0.8 pi -> u = 0.1 < 0.2 -> p = clamp(2 * 0.9) = 1, x (l+1)/L.
  auto p = rbk::upstream_halting_probability(torch::tensor({-0.8 * M_PI, 0.0, 0.8 * M_PI}), 1, 4, 0);
  EXPECT_NEAR(p[0].item<double>(), 1.0 * 2.0 / 4.0, 1e-6);
  EXPECT_NEAR(p[1].item<double>(), 0.5 * 2.0 / 4.0, 1e-6);
  EXPECT_NEAR(p[2].item<double>(), 0.5 * 0.1 * 2.0 / 4.0, 1e-6);
  EXPECT_EQ(rbk::upstream_halting_probability(torch::tensor({0.3}), 0, 4, 1)[0].item<double>(), 0.0);
}

TEST(Act, RejectsInconsistentConfigs) {
  auto c = bk_config();
  c.act = "skip";
  c.block = "poc";
  c.router = "learned_topk";
  EXPECT_THROW(rbk::make_language_model(c), std::invalid_argument);
  auto d = bk_config();
  d.act_min_layers = 9;
  d.act = "compat";
  EXPECT_THROW(rbk::make_language_model(d), std::invalid_argument);
}
