// HTT embedding, AR-SSM, the Phase-1 and Phase-2-compat models (shapes and parameter counts:
// closed form = instantiated, seed 001 Table 10's 18.40K), and the semiseparable matvec against
// the dense matrix (claims C10, C16, C18).
#include "rbk/ar_ssm.h"
#include "rbk/htt_embedding.h"
#include "rbk/language_model.h"
#include "rbk/phase1_model.h"
#include "rbk/semiseparable.h"

#include <gtest/gtest.h>

namespace {

TEST(HttEmbedding, ShapesAndTable10Count) {
  // upstream-audit §6.3: V = 10,000, D = 512, r = 4 -> 4 (2300 + 2300) + 4 = 18,404 ("18.40K").
  EXPECT_EQ(rbk::htt_embedding_parameter_count(10000, 512, 4), 18404);
  rbk::HttEmbeddingOptions o;
  o.vocab_size = 10000;
  o.d_model = 512;
  o.rank = 4;
  rbk::HttEmbedding e(o);
  EXPECT_EQ(rbk::count_parameters(*e), 18404);
  const auto f = e->factors();
  EXPECT_EQ(f.v1, 100);
  EXPECT_EQ(f.v2, 100);
  EXPECT_EQ(f.d1, 23);
  EXPECT_EQ(f.d2, 23);
  const auto ids = torch::tensor({{0, 9999, 4242}, {17, 1, 100}}, torch::kInt64);
  const auto y = e->forward(ids);
  EXPECT_EQ(y.sizes(), torch::IntArrayRef({2, 3, 512}));
  // Same token, same vector; different tokens differ.
  const auto again = e->forward(torch::tensor({{4242}}, torch::kInt64));
  EXPECT_TRUE(torch::allclose(again[0][0], y[0][2]));
  EXPECT_FALSE(torch::allclose(y[0][0], y[0][1]));
  EXPECT_THROW(e->forward(torch::tensor({{10000}}, torch::kInt64)), c10::Error);
}

TEST(HttEmbedding, LookupEqualsTheTensorTrainFormula) {
  rbk::HttEmbeddingOptions o;
  o.vocab_size = 30;
  o.d_model = 10;
  o.rank = 3;
  rbk::HttEmbedding e(o);
  const auto f = e->factors();  // v1 = 6, v2 = 5, d1 = 4, d2 = 3 (12 >= 10, cropped)
  auto params = e->named_parameters();
  const auto c1 = params["core1"], c2 = params["core2"], th = params["phase"];
  const int64_t t = 23, i1 = t / f.v2, i2 = t % f.v2;
  const auto y = e->forward(torch::tensor({{t}}, torch::kInt64))[0][0];
  for (int64_t k = 0; k < o.d_model; ++k) {
    const int64_t a = k / f.d2, b = k % f.d2;
    double ref = 0;
    for (int64_t r = 0; r < o.rank; ++r)
      ref += std::cos(th[r].item<double>()) * c1[i1][r][a].item<double>() * c2[i2][r][b].item<double>();
    EXPECT_NEAR(y[k].item<double>(), ref, 1e-6) << "k " << k;
  }
}

TEST(ArSsm, ShapesCountsAndCausality) {
  rbk::ArSsmOptions o;
  o.d_model = 64;
  o.max_rank = 8;
  rbk::ArSsm layer(o);
  // gate 64*16 + 16 + 16*8 + 8, U/V 2*64*8, conv 3*64, out 8*64 + 64
  EXPECT_EQ(rbk::ar_ssm_parameter_count(o), 1024 + 16 + 128 + 8 + 1024 + 192 + 512 + 64);
  EXPECT_EQ(rbk::count_parameters(*layer), rbk::ar_ssm_parameter_count(o));
  torch::manual_seed(1);
  auto x = torch::randn({2, 12, 64});
  const auto y = layer->forward(x);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_TRUE(layer->last_gate_l1().defined());
  // Upstream's symmetric conv sees the next position; the causal option does not.
  auto x2 = x.clone();
  x2.select(1, 7).add_(1.0);
  const auto y2 = layer->forward(x2);
  EXPECT_GT((y2.select(1, 6) - y.select(1, 6)).abs().max().item<double>(), 1e-6);
  EXPECT_LT((y2.narrow(1, 0, 6) - y.narrow(1, 0, 6)).abs().max().item<double>(), 1e-6);
  o.causal_conv = true;
  rbk::ArSsm causal(o);
  const auto c1 = causal->forward(x), c2 = causal->forward(x2);
  EXPECT_LT((c2.narrow(1, 0, 7) - c1.narrow(1, 0, 7)).abs().max().item<double>(), 1e-6);
}

TEST(Phase1Model, ClosedFormEqualsInstantiatedAndShapes) {
  rbk::Phase1Config c;
  c.vocab_size = 1000;
  c.d_model = 64;
  c.n_layers = 2;
  c.htt_rank = 4;
  rbk::Phase1Lm m(c);
  const auto closed = rbk::phase1_parameter_breakdown(c), counted = m.count_by_component();
  EXPECT_EQ(closed.embedding, counted.embedding);
  EXPECT_EQ(closed.layers, counted.layers);
  EXPECT_EQ(closed.head, counted.head);
  EXPECT_EQ(closed.total(), rbk::count_parameters(m));
  const auto f = m.forward_features(torch::randint(1000, {2, 9}, torch::kInt64));
  EXPECT_EQ(f.sizes(), torch::IntArrayRef({2, 9, 32}));  // head rank max(64 / 32, 32)
  EXPECT_EQ(m.head_weight().sizes(), torch::IntArrayRef({1000, 32}));

  rbk::Phase2CompatConfig p;
  p.vocab_size = 1000;
  p.d_model = 64;
  p.n_layers = 3;
  rbk::Phase2CompatLm m2(p);
  EXPECT_EQ(rbk::phase2_compat_parameter_breakdown(p).total(), rbk::count_parameters(m2));
  EXPECT_EQ(rbk::phase2_compat_rank(4096), 12);
  EXPECT_EQ(rbk::phase2_compat_rank(64), 6);
  EXPECT_EQ(m2.forward_features(torch::randint(1000, {1, 5}, torch::kInt64)).sizes(), torch::IntArrayRef({1, 5, 16}));
}

TEST(Semiseparable, MatvecEqualsDense) {
  torch::manual_seed(3);
  for (int64_t n : {2, 3, 17, 128, 1000}) {
    const auto h = rbk::random_semiseparable(n, rbk::semiseparable_rank(n), torch::kDouble);
    const auto x = torch::randn({3, n}, torch::kDouble);
    const auto fast = rbk::semiseparable_matvec(h, x);
    const auto dense = torch::matmul(x, rbk::semiseparable_dense(h).t());
    // fp64, sums of O(r) terms: agreement to 1e-12 relative (rounding only).
    EXPECT_LT(((fast - dense).abs().max() / dense.abs().max()).item<double>(), 1e-12) << "n " << n;
  }
  EXPECT_EQ(rbk::semiseparable_rank(2048), 11);
  EXPECT_EQ(rbk::semiseparable_rank(1), 1);
  // Upstream's "610x": 4 d^2 / (3 d + 2 d floor(log2 d)) at d = 4096 = 67,108,864 / 110,592.
  EXPECT_NEAR(rbk::param_ratio_upstream_formula(4096), 67108864.0 / 110592.0, 1e-9);
}

}  // namespace
