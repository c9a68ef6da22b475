// Position modes of the language models (position_encoding.h; issue 17, model.position): which
// architecture supports which mode, "no table = no parameters" and the counts with and without
// the table, the fixed encodings against their formulas, and what each mode does to a model:
// positions absent (none) leave a symmetry intact that learned, sinusoidal and rotary break, and
// every Transformer mode stays causal.
#include "rbk/language_model.h"
#include "rbk/model_sizing.h"
#include "rbk/position_encoding.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "lm_test_support.h"

namespace {

using rbk::LmConfig;
using rbk::lm_test::tiny_config;
using torch::Tensor;

LmConfig with_position(LmConfig c, const std::string& position) {
  c.position = position;
  return c;
}

bool has_position_parameter(const rbk::LanguageModel& m) {
  for (const auto& p : m.named_parameters())
    if (p.key().find("pos") != std::string::npos) return true;
  return false;
}

std::string error_of(const LmConfig& c) {
  try {
    (void)rbk::make_language_model(c);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

std::shared_ptr<rbk::LanguageModel> build64(const LmConfig& c) {
  torch::manual_seed(7);
  auto m = rbk::make_language_model(c);
  m->to(torch::kFloat64);
  m->eval();
  return m;
}

Tensor logits64(rbk::LanguageModel& m, const Tensor& ids) {
  torch::NoGradGuard ng;
  return m.forward(ids);
}

double max_abs(const Tensor& t) { return t.abs().max().item<double>(); }

}  // namespace

TEST(PositionModes, SupportTableAndAuto) {
  using V = std::vector<std::string>;
  EXPECT_EQ(rbk::supported_positions("resnet_bk"), (V{"learned", "none", "sinusoidal"}));
  EXPECT_EQ(rbk::supported_positions("transformer"), (V{"learned", "none", "sinusoidal", "rotary"}));
  EXPECT_EQ(rbk::supported_positions("mamba"), (V{"none"}));
  EXPECT_EQ(rbk::supported_positions("rwkv"), (V{"none"}));
  EXPECT_TRUE(rbk::supported_positions("lstm").empty());
  EXPECT_EQ(rbk::resolve_position(tiny_config("resnet_bk")), rbk::PositionMode::Learned);
  EXPECT_EQ(rbk::resolve_position(tiny_config("transformer")), rbk::PositionMode::Learned);
  EXPECT_EQ(rbk::resolve_position(tiny_config("mamba")), rbk::PositionMode::None);
  EXPECT_EQ(rbk::resolve_position(tiny_config("rwkv")), rbk::PositionMode::None);
  // Every supported pair builds; every unsupported one is refused with the key, value and arch.
  for (const char* arch : {"resnet_bk", "transformer", "mamba", "rwkv"}) {
    const auto ok = rbk::supported_positions(arch);
    for (const char* mode : {"auto", "learned", "none", "sinusoidal", "rotary"}) {
      const bool supported = std::string(mode) == "auto" || std::find(ok.begin(), ok.end(), mode) != ok.end();
      const auto msg = error_of(with_position(tiny_config(arch), mode));
      if (supported) {
        EXPECT_EQ(msg, "") << arch << " " << mode;
      } else {
        // The message names the key, the value and the arch (wording: LmConfig::validate's).
        EXPECT_NE(msg.find("position"), std::string::npos) << msg;
        EXPECT_NE(msg.find("'" + std::string(mode) + "'"), std::string::npos) << msg;
        EXPECT_NE(msg.find(arch), std::string::npos) << msg;
      }
    }
  }
}

TEST(PositionModes, CrossFieldChecksNameBothKeys) {
  auto c = with_position(tiny_config("resnet_bk"), "sinusoidal");
  c.prime_bump = "simple";
  auto msg = error_of(c);
  EXPECT_NE(msg.find("'prime_bump' = 'simple'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("position"), std::string::npos) << msg;
  c.position = "learned";
  EXPECT_EQ(error_of(c), "");
  auto t = with_position(tiny_config("transformer"), "rotary");
  t.d_model = 18;
  t.n_heads = 2;  // head dim 9: rotary rotates channel pairs
  msg = error_of(t);
  EXPECT_NE(msg.find("'position' = 'rotary'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("n_heads = 2"), std::string::npos) << msg;
}

// "auto" keeps the papers' models: the same parameter names (checkpoints load) and, from one
// seed, the same weights as "learned".
TEST(PositionModes, AutoIsTheLearnedTableWithUnchangedNames) {
  for (const char* arch : {"resnet_bk", "transformer"}) {
    torch::manual_seed(3);
    auto a = rbk::make_language_model(tiny_config(arch));
    torch::manual_seed(3);
    auto l = rbk::make_language_model(with_position(tiny_config(arch), "learned"));
    const auto pa = a->named_parameters(), pl = l->named_parameters();
    ASSERT_EQ(pa.size(), pl.size());
    ASSERT_NE(pa.find("pos_emb.weight"), nullptr) << arch;
    EXPECT_EQ(pa["pos_emb.weight"].sizes(), (std::vector<int64_t>{12, 16}));
    for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pl[p.key()])) << arch << " " << p.key();
  }
}

// No table, no parameters; the counts with and without the table differ by exactly n_seq x D,
// and model_sizing's analytic count agrees with the built model in every mode.
TEST(PositionModes, ParameterCountsWithAndWithoutTheTable) {
  for (const char* arch : {"resnet_bk", "transformer", "mamba", "rwkv"}) {
    auto base = tiny_config(arch);
    base.n_seq = 40;
    for (const auto& mode : rbk::supported_positions(arch)) {
      const auto c = with_position(base, mode);
      auto m = rbk::make_language_model(c);
      const int64_t total = rbk::count_parameters(*m);
      const int64_t table = rbk::position_parameters(c);
      EXPECT_EQ(has_position_parameter(*m), mode == "learned") << arch << " " << mode;
      EXPECT_EQ(table, mode == "learned" ? c.n_seq * c.d_model : 0) << arch << " " << mode;
      EXPECT_EQ(rbk::estimate_parameter_count(c), total) << arch << " " << mode;
      const int64_t without = rbk::count_parameters(*rbk::make_language_model(with_position(base, "none")));
      if (arch != std::string("mamba") && arch != std::string("rwkv"))
        EXPECT_EQ(total - table, without) << arch << " " << mode;
      std::printf("%-12s %-10s parameters %lld, position table %lld, without it %lld\n", arch, mode.c_str(),
                  (long long)total, (long long)table, (long long)(total - table));
    }
  }
}

// The fixed encodings against their formulas, at positions where an fp32 angle would already be
// off by whole radians (t ~ 1e6): the tables are computed in fp64 and rounded once.
constexpr double kTableTol = 1e-6;  // a few fp32 ulps of values in [-1, 1]

TEST(PositionModes, SinusoidalAndRotaryTablesMatchTheFormulas) {
  const int64_t n = 1'000'003, D = 10;
  const auto pe = rbk::sinusoidal_positions(n, D, torch::kFloat32);
  ASSERT_EQ(pe.sizes(), (std::vector<int64_t>{n, D}));
  for (int64_t t : {int64_t(0), int64_t(1), int64_t(37), n - 1}) {
    for (int64_t i = 0; i < D / 2; ++i) {
      const double w = std::pow(10000.0, -2.0 * i / D);
      EXPECT_NEAR(pe[t][2 * i].item<double>(), std::sin(t * w), kTableTol) << t << " " << i;
      EXPECT_NEAR(pe[t][2 * i + 1].item<double>(), std::cos(t * w), kTableTol) << t << " " << i;
    }
  }
  EXPECT_EQ(rbk::sinusoidal_positions(5, 7, torch::kFloat64).size(1), 7);  // odd D: last cosine dropped
  // Rotary: <R_t q, R_s k> depends on t - s only.
  const int64_t Dh = 8, m = 64;
  const auto tables = rbk::rotary_tables(m, Dh, torch::kFloat64);
  torch::manual_seed(2);
  const auto q = rbk::apply_rotary(torch::randn({Dh}, torch::kFloat64).expand({m, Dh}), tables);
  const auto k = rbk::apply_rotary(torch::randn({Dh}, torch::kFloat64).expand({m, Dh}), tables);
  const auto scores = torch::matmul(q, k.t());  // (m, m)
  for (int64_t d : {0, 3, 17}) {
    const auto diag = scores.diagonal(-d);  // entries (t, t - d)
    EXPECT_LT(max_abs(diag - diag[0]), 1e-12) << "offset " << d;
  }
  EXPECT_GT(max_abs(scores.diagonal(0)[0] - scores.diagonal(-3)[0]), 1e-3);  // and on t - s it does
}

// A sinusoidal (or learned) model's output changes when the tokens are permuted in a way a model
// without positions cannot see. ResNet-BK with bidirectional BK and no positions is equivariant
// under reversing the sequence (the tridiagonal H = -Delta + V is mirror-symmetric, everything
// else acts per token): out(reverse(x)) = reverse(out(x)) up to rounding. Position information
// breaks that symmetry.
constexpr double kSymmetryTol = 1e-9;  // fp64: the recursions run in the opposite order
constexpr double kBrokenMin = 1e-4;    // what a position encoding at init changes, at least

TEST(PositionModes, ResNetBkReversalSymmetryOnlyWithoutPositions) {
  for (const char* mode : {"none", "sinusoidal", "learned"}) {
    auto c = with_position(tiny_config("resnet_bk"), mode);
    c.router = "switch_top1";
    auto m = build64(c);
    const auto ids = torch::randint(c.vocab_size, {2, c.n_seq}, torch::kInt64);
    const auto out = logits64(*m, ids);
    const auto out_rev = logits64(*m, ids.flip({1})).flip({1});
    const double asym = max_abs(out - out_rev);
    std::printf("resnet_bk %-10s max |out(x) - rev(out(rev(x)))| = %.3e\n", mode, asym);
    if (std::string(mode) == "none")
      EXPECT_LT(asym, kSymmetryTol);
    else
      EXPECT_GT(asym, kBrokenMin) << mode;
  }
}

// One causal Transformer layer without positions: the output at the last position sees the
// prefix only as a set (attention sums over keys), so permuting earlier tokens leaves it
// unchanged; every position mode changes it. (With two or more layers a causal Transformer
// without positions can infer order from the prefix lengths, so the property is one layer's.)
TEST(PositionModes, TransformerLastOutputIgnoresPrefixOrderOnlyWithoutPositions) {
  for (const char* mode : {"none", "learned", "sinusoidal", "rotary"}) {
    auto c = with_position(tiny_config("transformer"), mode);
    c.n_layers = 1;
    auto m = build64(c);
    const auto ids = torch::randint(c.vocab_size, {2, c.n_seq}, torch::kInt64);
    auto shuffled = ids.clone();
    const int64_t n = c.n_seq;
    shuffled.narrow(1, 0, n - 1).copy_(ids.narrow(1, 0, n - 1).index_select(1, torch::randperm(n - 1, torch::kInt64)));
    const double change = max_abs(logits64(*m, ids).select(1, n - 1) - logits64(*m, shuffled).select(1, n - 1));
    std::printf("transformer %-10s max |d last logits| after shuffling the prefix = %.3e\n", mode, change);
    if (std::string(mode) == "none")
      EXPECT_LT(change, kSymmetryTol);
    else
      EXPECT_GT(change, kBrokenMin) << mode;
  }
}

// Every Transformer mode is causal: the logits at t < j do not move when the token at j changes.
// fp64; 1e-12 is the GEMM-rounding bound the other causality test uses (test_lm_model.cpp).
constexpr double kCausalTol = 1e-12;

TEST(PositionModes, TransformerStaysCausalInEveryMode) {
  for (const char* mode : {"learned", "none", "sinusoidal", "rotary"}) {
    auto m = build64(with_position(tiny_config("transformer"), mode));
    const auto& c = m->config();
    const auto ids = torch::randint(c.vocab_size, {2, c.n_seq}, torch::kInt64);
    for (int64_t j : {1, 6, 11}) {
      auto ids2 = ids.clone();
      ids2.select(1, j).add_(1).remainder_(c.vocab_size);
      const auto a = logits64(*m, ids), b = logits64(*m, ids2);
      EXPECT_LT(max_abs(a.narrow(1, 0, j) - b.narrow(1, 0, j)), kCausalTol) << mode << " j " << j;
      EXPECT_GT(max_abs(a.select(1, j) - b.select(1, j)), kBrokenMin) << mode << " j " << j;
    }
  }
}

// Sequences shorter than n_seq: the fixed encodings are computed for the actual n.
TEST(PositionModes, FixedEncodingsServeAnyLengthUpToNSeq) {
  for (const auto& [arch, mode] : std::vector<std::pair<std::string, std::string>>{
           {"resnet_bk", "sinusoidal"}, {"transformer", "sinusoidal"}, {"transformer", "rotary"}}) {
    auto m = build64(with_position(tiny_config(arch), mode));
    const auto ids = torch::randint(m->config().vocab_size, {2, 12}, torch::kInt64);
    const auto full = logits64(*m, ids);
    EXPECT_EQ(logits64(*m, ids.narrow(1, 0, 5)).size(1), 5);
    if (arch == "transformer")  // causal: a prefix gives the prefix's logits
      EXPECT_LT(max_abs(logits64(*m, ids.narrow(1, 0, 5)) - full.narrow(1, 0, 5)), kCausalTol) << mode;
  }
}
