// Unit tests of exp_ablations (claims C14, C06, C09) and of the ablation switches in the model:
// each switch changes exactly the component it names (parameter names and counts before and
// after, and which outputs move); the semiseparable diagonal equals a dense inverse; the summary's
// rules (steps to target, ratios, stability) on cases that must fail when the rule is wrong.
#include "ablation_summary.h"
#include "router_memory.h"

#include "rbk/bk_core_autograd.h"
#include "rbk/resnet_bk_lm.h"
#include "rbk/lowrank_resolvent.h"

#include <gtest/gtest.h>

#include <map>

namespace ab = rbk::ablations;

namespace {

rbk::LmConfig small_config() {
  rbk::LmConfig c;
  c.vocab_size = 50;
  c.d_model = 8;
  c.n_layers = 2;
  c.n_seq = 16;
  c.num_experts = 4;
  c.block = "papertime";
  return c;
}

std::map<std::string, std::vector<int64_t>> shapes_of(const rbk::LmConfig& c) {
  torch::manual_seed(0);
  auto m = rbk::make_language_model(c);
  std::map<std::string, std::vector<int64_t>> s;
  for (const auto& p : m->named_parameters()) s[p.key()] = p.value().sizes().vec();
  return s;
}

// Names present in b and not in a.
std::vector<std::string> added(const std::map<std::string, std::vector<int64_t>>& a,
                               const std::map<std::string, std::vector<int64_t>>& b) {
  std::vector<std::string> out;
  for (const auto& [k, v] : b)
    if (!a.count(k)) out.push_back(k);
  return out;
}

}  // namespace

TEST(AblationSwitches, SemiseparableAddsOnlyItsFactors) {
  auto base = small_config();
  auto with = base;
  with.semiseparable_rank = -1;  // ceil(log2 16) = 4
  const auto a = shapes_of(base), b = shapes_of(with);
  const auto extra = added(a, b);
  ASSERT_EQ(extra.size(), 4u);  // ss_u, ss_v per block, 2 blocks
  for (const auto& k : extra) {
    EXPECT_TRUE(k.find("ss_u") != std::string::npos || k.find("ss_v") != std::string::npos) << k;
    EXPECT_EQ(b.at(k), (std::vector<int64_t>{16, 4})) << k;
  }
  EXPECT_TRUE(added(b, a).empty());
  for (const auto& [k, v] : a) EXPECT_EQ(b.at(k), v) << k;
}

TEST(AblationSwitches, RouterSwitchRemovesOnlyTheGate) {
  auto base = small_config();
  auto scat = base;
  scat.router = "scattering_phase";
  const auto a = shapes_of(base), b = shapes_of(scat);
  const auto gone = added(b, a);
  ASSERT_EQ(gone.size(), 4u);  // gate weight + bias per block
  for (const auto& k : gone) EXPECT_NE(k.find("gate"), std::string::npos) << k;
  EXPECT_TRUE(added(a, b).empty());
}

TEST(AblationSwitches, LapAndPrimeBumpAddNoParameters) {
  auto base = small_config();
  auto lap = base;
  lap.bk_lap = true;
  auto pb = base;
  pb.prime_bump = "potential";
  EXPECT_EQ(shapes_of(base), shapes_of(lap));
  EXPECT_EQ(shapes_of(base), shapes_of(pb));
}

TEST(AblationSwitches, DefaultsLeaveTheModelUnchanged) {
  // The new keys at their defaults: identical initial weights and outputs to a config that never
  // heard of them (the same config object, built twice from the same seed, and a JSON round trip
  // without the new keys).
  auto c = small_config();
  auto j = c.to_json();
  for (const char* k : {"bk_lap", "bk_lap_s", "semiseparable_rank", "act", "act_signal", "act_threshold", "act_min_layers"}) j.erase(k);
  auto c2 = rbk::LmConfig::from_json(j);
  torch::manual_seed(3);
  auto m1 = rbk::make_language_model(c);
  torch::manual_seed(3);
  auto m2 = rbk::make_language_model(c2);
  auto ids = torch::randint(0, 50, {2, 16});
  EXPECT_TRUE(torch::equal(m1->forward(ids), m2->forward(ids)));
}

TEST(AblationSwitches, LapWeightsOnlyTheFeatures) {
  // LAP changes the BK features by exactly (1 + x^2)^-s per position, nothing else of the block.
  auto c = small_config();
  torch::nn::Module owner;
  torch::manual_seed(2);
  const rbk::ResNetBkBlock plain = rbk::make_resnet_bk_block(owner, "p_", c);
  rbk::ResNetBkBlock lap = plain;
  lap.lap_s = 1.0;
  auto v = torch::rand({2, 16}) * 6.0 - 3.0;
  auto f0 = rbk::resnet_bk_block_features(plain, v, {});
  auto f1 = rbk::resnet_bk_block_features(lap, v, {});
  auto x = torch::arange(16, torch::kFloat32);
  auto w = torch::pow(1.0 + x * x, -1.0).view({1, 16, 1});
  EXPECT_TRUE(torch::allclose(f1, f0 * w, 1e-6, 1e-7));
  EXPECT_FALSE(torch::allclose(f1, f0));  // the switch does something
}

TEST(Semiseparable, DiagonalEqualsDenseInverse) {
  // diag((T + U V^T - z)^-1) from the O(N r) path against a dense complex128 inverse.
  torch::manual_seed(4);
  const int64_t n = 24, r = 3;
  auto v = torch::rand({2, n}, torch::kFloat64) * 6.0 - 3.0;
  auto U = torch::randn({n, r}, torch::kFloat64) * 0.3, V = torch::randn({n, r}, torch::kFloat64) * 0.3;
  const c10::complex<double> z(0.2, 1.0);
  rbk::BkCoreOptions bk;
  bk.z = z;
  auto f = rbk::bk_core_features(v, bk);
  auto g_tri = torch::complex(f.select(-1, 0), f.select(-1, 1));
  auto g = g_tri - rbk::semiseparable_diagonal_correction(v, U, V, z);
  for (int64_t b = 0; b < 2; ++b) {
    auto T = torch::diag(v[b] - 2.0) + torch::diag(torch::ones({n - 1}, torch::kFloat64), 1) +
             torch::diag(torch::ones({n - 1}, torch::kFloat64), -1);
    auto H = (T + torch::matmul(U, V.t())).to(torch::kComplexDouble) -
             torch::eye(n, torch::kComplexDouble) * torch::scalar_tensor(z, torch::kComplexDouble);
    auto dense = torch::diagonal(torch::inverse(H));
    // Tolerance: both sides are complex128 of well-conditioned (Im z = 1) systems; 1e-9 is far
    // above their rounding and far below any formula error (a wrong sign is O(|U||V|) ~ 1e-1).
    EXPECT_LT((g[b] - dense).abs().max().item<double>(), 1e-9);
  }
  // The correction is real work: without it the diagonals differ.
  EXPECT_GT(rbk::semiseparable_diagonal_correction(v, U, V, z).abs().max().item<double>(), 1e-3);
}

// The host solve (one autograd node, closed-form backward) against the reference: the same
// recurrences as torch ops, differentiated by autograd. Tolerance 1e-11 relative: both are
// complex128 on systems with |pivot| >= Im z = 1, so they differ by rounding of a few dozen
// operations per entry (~1e-14); a wrong sign, a missing conjugate or a dropped batch sum in the
// backward is an O(1) relative error.
TEST(Semiseparable, HostSolveMatchesTheReferenceInValuesAndGradients) {
  torch::manual_seed(5);
  const int64_t B = 3, n = 37, m = 5;
  const c10::complex<double> z(0.3, 1.0);
  const auto rel = [](const torch::Tensor& a, const torch::Tensor& b) {
    return ((a - b).abs().max() / b.abs().max()).item<double>();
  };
  for (const bool complex_rhs : {false, true}) {
    for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
      SCOPED_TRACE(std::string(complex_rhs ? "complex" : "real") + " rhs, " + (dtype == torch::kFloat64 ? "fp64" : "fp32"));
      const auto v0 = (torch::rand({B, n}, torch::kFloat64) * 6.0 - 3.0).to(dtype);
      auto r0 = torch::randn({n, m}, torch::kFloat64).to(dtype);
      if (complex_rhs) r0 = torch::complex(r0.to(torch::kFloat64), torch::randn({n, m}, torch::kFloat64));
      const auto w = torch::complex(torch::randn({B, n, m}, torch::kFloat64), torch::randn({B, n, m}, torch::kFloat64));
      std::vector<torch::Tensor> x, gv, gr;
      for (const bool host : {true, false}) {
        auto v = v0.clone().requires_grad_(true), r = r0.clone().requires_grad_(true);
        auto X = host ? rbk::tridiagonal_solve_shifted(v, r, z) : rbk::tridiagonal_solve_shifted_reference(v, r, z);
        torch::real((X * w).sum()).backward();
        x.push_back(X.detach());
        gv.push_back(v.grad());
        gr.push_back(r.grad());
      }
      EXPECT_LT(rel(x[0], x[1]), 1e-11);
      EXPECT_EQ(gv[0].scalar_type(), dtype);
      EXPECT_EQ(gr[0].scalar_type(), r0.scalar_type());
      EXPECT_LT(rel(gv[0].to(torch::kFloat64), gv[1].to(torch::kFloat64)), dtype == torch::kFloat64 ? 1e-11 : 1e-6);
      EXPECT_LT(rel(gr[0].to(gr[1].scalar_type()), gr[1]), dtype == torch::kFloat64 ? 1e-11 : 1e-6);
    }
  }
  // Its backward leaves no graph, so asking for one is an error, not a silent zero.
  auto v = torch::rand({1, 8}, torch::kFloat64).requires_grad_(true);
  auto X = rbk::tridiagonal_solve_shifted(v, torch::ones({8, 2}, torch::kFloat64), z);
  EXPECT_THROW(torch::autograd::grad({torch::real(X.sum())}, {v}, {}, true, true), c10::Error);
}

TEST(Semiseparable, ZeroFactorsAreInertAsUpstream) {
  auto v = torch::rand({1, 10}, torch::kFloat64);
  auto z0 = torch::zeros({10, 2}, torch::kFloat64);
  EXPECT_EQ(rbk::semiseparable_diagonal_correction(v, z0, z0, {0.0, 1.0}).abs().max().item<double>(), 0.0);
}

TEST(Summary, StepsToTargetInterpolates) {
  std::vector<ab::CurvePoint> c{{10, 5.0}, {20, 4.0}, {30, 3.0}};
  EXPECT_DOUBLE_EQ(*ab::steps_to_target(c, 3.5), 25.0);
  EXPECT_DOUBLE_EQ(*ab::steps_to_target(c, 6.0), 10.0);
  EXPECT_FALSE(ab::steps_to_target(c, 2.0).has_value());
}

TEST(Summary, RatiosAndStability) {
  EXPECT_DOUBLE_EQ(*ab::mean_ratio({10.0, 20.0, std::nullopt}, {20.0, 20.0, 5.0}), 0.75);
  EXPECT_FALSE(ab::mean_ratio({std::nullopt}, {1.0}).has_value());
  EXPECT_DOUBLE_EQ(*ab::stable_fraction({"ok", "diverged", "ok", "pending"}), 2.0 / 3.0);
  EXPECT_FALSE(ab::stable_fraction({"pending"}).has_value());
}

TEST(Summary, ArmsRemoveExactlyOneComponent) {
  const auto comps = ab::components({{"prime_bump", "potential"}, {"router", "scattering_phase"}, {"bk_lap", true},
                                     {"semiseparable_rank", -1}});
  const auto full = ab::arm_overrides("full", comps);
  for (const auto& c : comps) {
    const auto o = ab::arm_overrides(c.arm, comps);
    int differing = 0;
    for (auto it = full.begin(); it != full.end(); ++it) differing += o.at(it.key()) != it.value();
    EXPECT_EQ(differing, 1) << c.arm;
    EXPECT_EQ(o.at(c.key), c.removed) << c.arm;
  }
  EXPECT_THROW(ab::arm_overrides("no_everything", comps), std::invalid_argument);
}

TEST(Memory, DenseProjectionGrowsQuadraticallyAndFlagsOom) {
  ab::OomSpec s;
  s.n = 1024;
  s.batch = 1;
  s.n_layers = 1;
  s.device_gib = 1.0;
  const auto a = ab::project_semiseparable_memory(s);
  s.n = 2048;
  const auto b = ab::project_semiseparable_memory(s);
  EXPECT_NEAR(b["dense_peak_bytes"].get<double>() / a["dense_peak_bytes"].get<double>(), 4.0, 1e-9);
  EXPECT_LT(b["semiseparable_peak_bytes"].get<double>(), b["dense_peak_bytes"].get<double>());
  // 3 N^2 x 8 bytes at N = 8192 = 1.5 GiB > 1 GiB.
  s.n = 8192;
  EXPECT_TRUE(ab::project_semiseparable_memory(s)["oom"].get<bool>());
  s.n = 4096;  // 0.375 GiB
  EXPECT_FALSE(ab::project_semiseparable_memory(s)["oom"].get<bool>());
}
