// Language models (claim C05; upstream-audit §2.1, §2.3, §3, §4.2, §9.4): exact parameter counts
// against the audit's formulas, the whole-model causality probe, forward/backward of every option,
// and the routers' gradient behaviour (learned top-1's gate gets no gradient, upstream's bug).
#include "rbk/language_model.h"
#include "rbk/moe.h"
#include "rbk/transformer_lm.h"

#include <gtest/gtest.h>

#include "lm_test_support.h"

namespace {

using rbk::lm_test::tiny_config;

TEST(LmParams, PocModelIs10159709) {
  rbk::LmConfig c;
  c.block = "poc";
  c.router = "gumbel_hard";
  c.init = "torch_default";
  c.vocab_size = 76617;
  auto m = rbk::make_language_model(c);
  const int64_t n = rbk::count_parameters(*m);
  std::printf("PoC V=76617 D64 L4 N128 E4: %lld parameters\n", (long long)n);
  EXPECT_EQ(n, 10159709);
}

TEST(LmParams, PapertimeAddsOneBkScalePerLayer) {
  rbk::LmConfig c;  // paper-time block, same hyper-parameters as the PoC
  c.vocab_size = 76617;
  const int64_t n = rbk::count_parameters(*rbk::make_language_model(c));
  std::printf("paper-time, PoC sizes: %lld\n", (long long)n);
  EXPECT_EQ(n, 10159709 + 4);
}

TEST(LmParams, SmallIs32500084AndMatchesFormula) {
  rbk::LmConfig c;
  c.vocab_size = 50000;
  c.d_model = 256;
  c.n_layers = 6;
  c.n_seq = 2048;
  const int64_t n = rbk::count_parameters(*rbk::make_language_model(c));
  std::printf("Small V=50000 D256 L6 N2048 E4: %lld\n", (long long)n);
  EXPECT_EQ(n, 32500084);
  // The audit's formula P(V, D, L, N, E) at another point, with the parameter-free router.
  c.vocab_size = 1000; c.d_model = 32; c.n_layers = 3; c.n_seq = 64; c.num_experts = 5; c.router = "scattering_phase";
  const int64_t V = 1000, D = 32, L = 3, N = 64, E = 5;
  const int64_t formula = V * D + N * D + L * (2 * D + E * (4 * D * D + 3 * D) + (D + 1) + 3 * D + 1) + 2 * D + (D * V + V);
  EXPECT_EQ(rbk::count_parameters(*rbk::make_language_model(c)), formula);
}

TEST(LmParams, TransformerBlockFormula) {
  auto c = tiny_config("transformer");
  const int64_t n = rbk::count_parameters(*rbk::make_language_model(c));
  const int64_t want = 2 * c.vocab_size * c.d_model + c.vocab_size + c.n_seq * c.d_model + 2 * c.d_model +
                       c.n_layers * rbk::transformer_block_parameters(c.d_model, c.ffn_dim);
  EXPECT_EQ(n, want);
  c.tie_weights = true;
  EXPECT_EQ(rbk::count_parameters(*rbk::make_language_model(c)), want - c.vocab_size * c.d_model - c.vocab_size);
}

// Largest change of logits at positions < j when the token at j changes, in float64 so that a
// causal model's zero is exact up to batch-shape-dependent GEMM rounding (~1e-16).
double leak(rbk::LmConfig c, int64_t j) {
  torch::manual_seed(3);
  auto m = rbk::make_language_model(c);
  m->to(torch::kDouble);
  m->eval();
  auto ids = torch::randint(c.vocab_size, {2, c.n_seq}, torch::kInt64);
  auto ids2 = ids.clone();
  ids2.select(1, j).add_(1).remainder_(c.vocab_size);
  torch::NoGradGuard ng;
  auto a = m->forward(ids), b = m->forward(ids2);
  auto past = (a.narrow(1, 0, j) - b.narrow(1, 0, j)).abs().max().item<double>();
  auto at = (a.select(1, j) - b.select(1, j)).abs().max().item<double>();
  std::printf("%-12s ctx=%-13s router=%-12s: max |dlogits| before j=%lld: %.3e, at j: %.3e\n", c.arch.c_str(),
              c.bk_context.c_str(), c.router.c_str(), (long long)j, past, at);
  EXPECT_GT(at, 1e-6) << "the perturbation must reach its own position";
  return past;
}

// Float64 GEMMs on sub-batches of different sizes round differently; 1e-12 is ~1e4 ulps of the
// O(1) logits, far below the 1e-6 a real leak through BK-Core produces.
constexpr double kCausalTol = 1e-12;
constexpr double kLeakMin = 1e-6;

TEST(LmCausality, BidirectionalLeaksCausalAndTransformerDoNot) {
  for (const char* block : {"papertime", "poc"}) {
    auto c = tiny_config();
    c.block = block;
    c.router = "switch_top1";
    c.bk_context = "bidirectional";
    EXPECT_GT(leak(c, 7), kLeakMin) << block;
    c.bk_context = "causal";
    EXPECT_LT(leak(c, 7), kCausalTol) << block;
  }
  EXPECT_LT(leak(tiny_config("transformer"), 7), kCausalTol);
}

struct Case {
  std::string block, router, fwd, grad, ctx, bump, arch = "resnet_bk";
};

TEST(LmForwardBackward, EveryOptionGivesShapesAndFiniteGradients) {
  std::vector<Case> cases;
  for (auto r : {"learned_topk", "switch_top1", "gumbel_hard"}) cases.push_back({"poc", r, "stable", "exact", "bidirectional", "none"});
  for (auto r : {"learned_topk", "switch_top1", "gumbel_hard", "scattering_phase"})
    cases.push_back({"papertime", r, "stable", "exact", "bidirectional", "none"});
  for (auto f : {"compat_poc", "compat_papertime", "compat_papertime_triton"})
    cases.push_back({"papertime", "learned_topk", f, "exact", "bidirectional", "none"});
  for (auto g : {"papertime_hybrid", "head_hybrid"})
    cases.push_back({"papertime", "learned_topk", "compat_papertime", g, "bidirectional", "none"});
  cases.push_back({"papertime", "switch_top1", "stable", "exact", "causal", "simple"});
  cases.push_back({"poc", "gumbel_hard", "stable", "exact", "causal", "potential"});
  cases.push_back({"", "", "", "", "", "", "transformer"});
  for (const auto& k : cases) {
    auto c = tiny_config(k.arch);
    if (k.arch == "resnet_bk") {
      c.block = k.block; c.router = k.router; c.bk_forward = k.fwd; c.bk_gradient = k.grad;
      c.bk_context = k.ctx; c.prime_bump = k.bump;
    }
    c.dropout = 0.1;
    torch::manual_seed(5);
    auto m = rbk::make_language_model(c);
    m->train();
    auto ids = torch::randint(c.vocab_size, {3, 10}, torch::kInt64);
    auto logits = m->forward(ids);
    ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{3, 10, c.vocab_size}));
    auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, c.vocab_size}), torch::randint(c.vocab_size, {30}, torch::kInt64));
    loss.backward();
    double gnorm = 0;
    bool finite = true;
    for (auto& p : m->named_parameters()) {
      if (!p.value().grad().defined()) continue;
      finite = finite && torch::isfinite(p.value().grad()).all().item<bool>();
      gnorm += p.value().grad().pow(2).sum().item<double>();
    }
    std::printf("%-11s %-9s %-16s %-23s %-16s %-13s %-9s loss %.4f |grad| %.4e\n", k.arch.c_str(), k.block.c_str(),
                k.router.c_str(), k.fwd.c_str(), k.grad.c_str(), k.ctx.c_str(), k.bump.c_str(), loss.item<double>(), std::sqrt(gnorm));
    EXPECT_TRUE(std::isfinite(loss.item<double>()));
    EXPECT_TRUE(finite);
    EXPECT_GT(gnorm, 0.0);
    auto counts = m->expert_counts();
    if (k.arch == "resnet_bk") {
      ASSERT_EQ(counts.sizes(), (std::vector<int64_t>{c.n_layers, c.num_experts}));
      EXPECT_GE(counts.sum(1).min().item<int64_t>(), 30);  // every token counted at least once per layer
    }
  }
}

TEST(LmRouters, LearnedTop1GateGetsNoGradientSwitchDoes) {
  for (const char* r : {"learned_topk", "switch_top1", "gumbel_hard"}) {
    auto c = tiny_config();
    c.router = r;
    torch::manual_seed(9);
    auto m = rbk::make_language_model(c);
    auto ids = torch::randint(c.vocab_size, {2, 12}, torch::kInt64);
    m->forward(ids).pow(2).mean().backward();
    double g = 0;
    for (auto& p : m->named_parameters())
      if (p.key().find("gate") != std::string::npos && p.value().grad().defined()) g += p.value().grad().abs().sum().item<double>();
    std::printf("router %-13s sum |d gate| = %.3e\n", r, g);
    if (std::string(r) == "learned_topk") EXPECT_EQ(g, 0.0);
    else EXPECT_GT(g, 0.0);
  }
}

TEST(LmRouters, ScatteringPhaseNeverUsesExpertZero) {
  auto c = tiny_config();
  c.router = "scattering_phase";
  c.num_experts = 4;
  torch::manual_seed(11);
  auto m = rbk::make_language_model(c);
  m->eval();
  torch::NoGradGuard ng;
  m->forward(torch::randint(c.vocab_size, {4, 12}, torch::kInt64));
  auto counts = m->expert_counts();
  std::cout << "scattering-phase expert counts per layer:\n" << counts << "\n";
  // Im G_ii > 0, so the phase lies in (0, pi) and u in (0.5, 0.955): expert 0 is unreachable
  // (upstream-audit §3.3).
  EXPECT_EQ(counts.select(1, 0).sum().item<int64_t>(), 0);
}

// The sparse dispatch (rows grouped per expert after one host synchronisation) against the
// definition: out_t = sum over slots j of w_tj expert_{idx_tj}(x_t), every expert evaluated on every
// token. fp64 throughout, so the only differences are the order of a few additions (1e-12 is
// ~4000 ulp of the O(1) outputs: a wrong row, weight or expert shows as O(0.1)).
TEST(LmRouters, SparseDispatchMatchesTheSumOverSlots) {
  struct Case {
    rbk::RouterKind router;
    int64_t top_k;
  };
  for (const auto dispatch : {rbk::MoeDispatch::Gather, rbk::MoeDispatch::Dense, rbk::MoeDispatch::Grouped})
  for (const Case& k : {Case{rbk::RouterKind::LearnedTopK, 1}, Case{rbk::RouterKind::LearnedTopK, 2},
                        Case{rbk::RouterKind::SwitchTop1, 1}, Case{rbk::RouterKind::ScatteringPhase, 2}}) {
    rbk::MoeOptions o;
    o.dispatch = dispatch;
    o.d_model = 8;
    o.num_experts = 4;
    o.top_k = k.top_k;
    o.router = k.router;
    o.resonance_fraction = 0.3;  // scattering: enough tokens in two slots (and some in one twice)
    torch::manual_seed(21);
    rbk::Moe moe(o);
    moe->to(torch::kDouble);
    const int64_t T = 40;
    const auto x = torch::randn({T, o.d_model}, torch::kDouble);
    const auto g = torch::complex(torch::randn({T}, torch::kDouble), torch::rand({T}, torch::kDouble) + 0.1);
    torch::NoGradGuard ng;
    const auto out = moe->forward(x, g);
    const auto r = moe->route(x, g);
    auto ref = torch::zeros_like(x);
    const auto params = moe->named_parameters();
    for (int64_t e = 0; e < o.num_experts; ++e) {
      const std::string up = "up." + std::to_string(e), down = "down." + std::to_string(e);
      const auto y = torch::relu(x.matmul(params[up + ".weight"].t()) + params[up + ".bias"])
                         .matmul(params[down + ".weight"].t()) + params[down + ".bias"];
      const auto we = (r.w * r.idx.eq(e).to(torch::kDouble)).sum(1, true);  // (T, 1)
      ref += we * y;
    }
    const double err = (out - ref).abs().max().item<double>();
    std::printf("%s dispatch, router %d top-%lld: max |dispatch - sum over slots| = %.2e (|ref| max %.2f)\n",
                rbk::to_string(dispatch).c_str(), static_cast<int>(k.router), static_cast<long long>(k.top_k), err,
                ref.abs().max().item<double>());
    EXPECT_LT(err, 1e-12);
    EXPECT_GT(ref.abs().max().item<double>(), 0.1);  // non-trivial outputs
  }
}

// The three dispatches of one MoE (same weights, fp64) give the same outputs and the same gradients
// for the input and every parameter (the gate's included: the weights' gradient reaches it), so
// a model trains the same function with either (issue 25). Dropout 0: dropout masks differ.
TEST(LmRouters, DenseAndGroupedDispatchesHaveTheGatherGradients) {
  for (const int64_t top_k : {1, 2}) {
    std::vector<std::vector<torch::Tensor>> grads;
    for (const auto dispatch : {rbk::MoeDispatch::Gather, rbk::MoeDispatch::Dense, rbk::MoeDispatch::Grouped}) {
      rbk::MoeOptions o;
      o.d_model = 8;
      o.num_experts = 4;
      o.top_k = top_k;
      o.router = rbk::RouterKind::SwitchTop1;
      if (top_k == 2) o.router = rbk::RouterKind::LearnedTopK;
      o.dispatch = dispatch;
      torch::manual_seed(23);
      rbk::Moe moe(o);
      moe->to(torch::kDouble);
      const auto x = torch::randn({40, o.d_model}, torch::kDouble).requires_grad_(true);
      const auto target = torch::randn({40, o.d_model}, torch::kDouble);
      (moe->forward(x) * target).sum().backward();
      grads.push_back(rbk::lm_test::input_and_parameter_gradients(x, *moe));
    }
    for (const size_t other : {1, 2}) {
      const auto cmp = rbk::lm_test::compare_gradients(grads[0], grads[other]);
      std::printf("top-%lld: max |grad gather - grad %s| = %.2e over %zu tensors (largest |grad| %.2f)\n",
                  static_cast<long long>(top_k), other == 1 ? "dense" : "grouped", cmp.max_difference, grads[0].size(),
                  cmp.largest);
      EXPECT_LT(cmp.max_difference, 1e-12);
      EXPECT_GT(cmp.largest, 0.1);
    }
  }
}

TEST(LmConfig, JsonRoundTripAndErrorsNameTheKey) {
  auto c = tiny_config();
  c.router = "gumbel_hard";
  auto d = rbk::LmConfig::from_json(c.to_json());
  EXPECT_EQ(d.to_json(), c.to_json());
  auto j = c.to_json();
  j["router"] = "softmax";
  try { rbk::LmConfig::from_json(j); FAIL(); } catch (const std::invalid_argument& e) {
    std::printf("error: %s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("softmax"), std::string::npos);
  }
  j = c.to_json();
  j["bk_contxt"] = "causal";
  EXPECT_THROW(rbk::LmConfig::from_json(j), std::invalid_argument);
  j = c.to_json();
  j["bk_context"] = "causal";
  j["bk_forward"] = "compat_poc";
  EXPECT_THROW(rbk::LmConfig::from_json(j), std::invalid_argument);
}

}  // namespace
