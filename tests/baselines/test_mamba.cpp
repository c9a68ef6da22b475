// Mamba-1 baseline (issue 7): the selective-scan reference against an independent scalar loop,
// its gradients against central finite differences in fp64 (every input), causality of the mixer
// and of the whole LM, shapes, the closed-form parameter count, the paper initialisation, the
// LmConfig JSON round trip with arch "mamba", and a short training smoke on the sample corpus.
#include "rbk/corpus.h"
#include "rbk/language_model.h"
#include "rbk/mamba_lm.h"
#include "rbk/selective_scan.h"
#include "rbk/tokenizer.h"
#include "rbk/trainer.h"
#include "rbk/tensor_metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

namespace {

using torch::Tensor;

// fp64 reference vs an fp64 scalar loop doing the same maths in another order: only rounding
// differs, ~1e-16 relative per operation over a few dozen operations.
constexpr double kFp64LoopTol = 1e-12;
// Central differences in fp64, Richardson-extrapolated from steps h and 2h (truncation O(h^4)):
// with h = 1e-4 the truncation is ~1e-16 |f^(5)| and the rounding ~1e-16 |loss| / h ~ 1e-12
// relative. (Plain central differences with h = 1e-6 reached 7e-6 relative on d/dA, whose higher
// derivatives carry powers of dt t.) 1e-6 leaves a margin and still catches any wrong term, which
// is off by O(1).
constexpr double kFdStep = 1e-4;
constexpr double kFdRelTol = 1e-6;
// Causality probes in fp32: earlier positions must not move at all beyond fp32 noise of a
// recomputation (they are computed by the same operations on the same values).
constexpr double kCausalTol = 1e-6;

uint64_t fresh_seed() {
  static std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

struct ScanInputs {
  Tensor u, delta, A, B, C, D, z, bias;
};

// Fresh random inputs in the regime the model produces: delta around softplus^{-1}(0.01..0.1),
// A negative (S4D-real scale), B, C, u, z ~ N(0, 1).
ScanInputs draw(int64_t Bt, int64_t Dm, int64_t L, int64_t N, torch::Dtype dt, bool with_dz, bool with_bias) {
  const auto o = torch::TensorOptions().dtype(dt);
  ScanInputs s;
  s.u = torch::randn({Bt, Dm, L}, o);
  s.delta = torch::randn({Bt, Dm, L}, o) * 0.5 - 1.0;
  s.A = -(torch::rand({Dm, N}, o) * 3.0 + 0.5);
  s.B = torch::randn({Bt, N, L}, o);
  s.C = torch::randn({Bt, N, L}, o);
  if (with_dz) {
    s.D = torch::randn({Dm}, o);
    s.z = torch::randn({Bt, Dm, L}, o);
  }
  if (with_bias) s.bias = torch::randn({Dm}, o) * 0.5 - 2.0;
  return s;
}

// Independent oracle: per (b, d, n) scalar recurrence, written from the paper's equations.
Tensor naive_scan(const ScanInputs& s, bool softplus) {
  const int64_t Bt = s.u.size(0), Dm = s.u.size(1), L = s.u.size(2), N = s.A.size(1);
  auto out = torch::zeros({Bt, Dm, L}, torch::kDouble);
  const Tensor u64 = s.u.to(torch::kDouble), de64 = s.delta.to(torch::kDouble), A64 = s.A.to(torch::kDouble),
               B64 = s.B.to(torch::kDouble), C64 = s.C.to(torch::kDouble);
  const auto u = u64.accessor<double, 3>();
  const auto de = de64.accessor<double, 3>();
  const auto A = A64.accessor<double, 2>();
  const auto B = B64.accessor<double, 3>();
  const auto C = C64.accessor<double, 3>();
  auto o = out.accessor<double, 3>();
  for (int64_t b = 0; b < Bt; ++b)
    for (int64_t d = 0; d < Dm; ++d) {
      std::vector<double> h(static_cast<size_t>(N), 0.0);
      for (int64_t t = 0; t < L; ++t) {
        double dt = de[b][d][t] + (s.bias.defined() ? s.bias[d].item<double>() : 0.0);
        if (softplus) dt = dt > 20.0 ? dt : std::log1p(std::exp(dt));
        double y = 0.0;
        for (int64_t n = 0; n < N; ++n) {
          h[n] = std::exp(dt * A[d][n]) * h[n] + dt * B[b][n][t] * u[b][d][t];
          y += C[b][n][t] * h[n];
        }
        if (s.D.defined()) y += s.D[d].item<double>() * u[b][d][t];
        if (s.z.defined()) {
          const double zz = s.z[b][d][t].item<double>();
          y *= zz / (1.0 + std::exp(-zz));
        }
        o[b][d][t] = y;
      }
    }
  return out;
}

TEST(SelectiveScanReference, MatchesScalarLoopEveryOption) {
  const uint64_t seed = fresh_seed();
  torch::manual_seed(seed);
  for (const bool with_dz : {false, true})
    for (const bool with_bias : {false, true})
      for (const bool softplus : {false, true}) {
        const ScanInputs s = draw(2, 3, 7, 5, torch::kDouble, with_dz, with_bias);
        const Tensor got = rbk::selective_scan_reference(s.u, s.delta, s.A, s.B, s.C, s.D, s.z, s.bias, softplus);
        const Tensor ref = naive_scan(s, softplus);
        const double e = rbk::relative_l2_error(got, ref);
        std::printf("seed %llu D/z %d bias %d softplus %d: rel err %.3e\n", (unsigned long long)seed, with_dz, with_bias,
                    softplus, e);
        ASSERT_EQ(got.sizes(), ref.sizes());
        EXPECT_LT(e, kFp64LoopTol);
      }
}

TEST(SelectiveScanReference, ClosedFormAtLengthOne) {
  // L = 1: out = (dt sum_n C B) u + D u, times silu(z) — no recurrence at all.
  torch::manual_seed(fresh_seed());
  const ScanInputs s = draw(2, 4, 1, 3, torch::kDouble, true, true);
  const Tensor dt = torch::softplus(s.delta + s.bias.view({1, -1, 1}));
  const Tensor cb = (s.C * s.B).sum(1, true);  // (Bt, 1, 1)
  const Tensor want = (dt * cb * s.u + s.D.view({1, -1, 1}) * s.u) * torch::silu(s.z);
  const Tensor got = rbk::selective_scan_reference(s.u, s.delta, s.A, s.B, s.C, s.D, s.z, s.bias, true);
  EXPECT_LT(rbk::relative_l2_error(got, want), kFp64LoopTol);
}

TEST(SelectiveScanReference, Fp32AndBf16InputsRunInFp32) {
  torch::manual_seed(fresh_seed());
  const ScanInputs s = draw(2, 3, 9, 4, torch::kDouble, true, true);
  const Tensor ref = naive_scan(s, true);
  const Tensor f32 = rbk::selective_scan_reference(s.u.to(torch::kFloat), s.delta.to(torch::kFloat), s.A.to(torch::kFloat),
                                                   s.B.to(torch::kFloat), s.C.to(torch::kFloat), s.D.to(torch::kFloat),
                                                   s.z.to(torch::kFloat), s.bias.to(torch::kFloat), true);
  EXPECT_EQ(f32.scalar_type(), torch::kFloat);
  EXPECT_LT(rbk::relative_l2_error(f32, ref), 1e-5);  // fp32 rounding over 9 steps
  const Tensor b16 = rbk::selective_scan_reference(s.u.to(torch::kBFloat16), s.delta.to(torch::kBFloat16), s.A.to(torch::kFloat),
                                                   s.B.to(torch::kBFloat16), s.C.to(torch::kBFloat16), s.D.to(torch::kFloat),
                                                   s.z.to(torch::kBFloat16), s.bias.to(torch::kFloat), true);
  EXPECT_EQ(b16.scalar_type(), torch::kBFloat16);
  EXPECT_LT(rbk::relative_l2_error(b16, ref), 5e-2);  // bf16 inputs/outputs: 8-bit mantissa
}

TEST(SelectiveScanReference, GradientsMatchCentralDifferencesEveryInput) {
  const uint64_t seed = fresh_seed();
  torch::manual_seed(seed);
  ScanInputs s = draw(2, 3, 6, 4, torch::kDouble, true, true);
  const Tensor w = torch::randn({2, 3, 6}, torch::kDouble);  // upstream gradient
  std::vector<std::pair<const char*, Tensor*>> inputs = {{"u", &s.u}, {"delta", &s.delta}, {"A", &s.A}, {"B", &s.B},
                                                         {"C", &s.C}, {"D", &s.D},         {"z", &s.z}, {"delta_bias", &s.bias}};
  for (auto& in : inputs) in.second->requires_grad_(true);
  auto loss_of = [&] {
    return (rbk::selective_scan(s.u, s.delta, s.A, s.B, s.C, s.D, s.z, s.bias, true) * w).sum();
  };
  loss_of().backward();
  std::mt19937_64 rng(seed);
  for (auto& in : inputs) {
    Tensor& x = *in.second;
    const Tensor g = x.grad().clone();
    const double gmax = g.abs().max().item<double>();
    double worst = 0.0;
    for (int k = 0; k < 4; ++k) {
      const int64_t i = static_cast<int64_t>(rng() % static_cast<uint64_t>(x.numel()));
      double fd;
      {
        torch::NoGradGuard ng;
        auto flat = x.view({-1});
        const double x0 = flat[i].item<double>();
        auto central = [&](double h) {
          flat[i] = x0 + h;
          const double lp = loss_of().item<double>();
          flat[i] = x0 - h;
          const double lm = loss_of().item<double>();
          flat[i] = x0;
          return (lp - lm) / (2 * h);
        };
        fd = (4 * central(kFdStep) - central(2 * kFdStep)) / 3;
      }
      const double an = g.view({-1})[i].item<double>();
      // Relative to the element, or to 1 % of the largest gradient entry for near-zero elements
      // (where the difference quotient's rounding, ~1e-16 |loss| / h, dominates).
      const double err = std::abs(an - fd) / std::max(std::abs(fd), 1e-2 * gmax);
      worst = std::max(worst, err);
    }
    std::printf("seed %llu d/d%s: worst rel err vs central differences %.3e\n", (unsigned long long)seed, in.first, worst);
    EXPECT_LT(worst, kFdRelTol) << in.first;
  }
}

TEST(SelectiveScanEntry, CpuAutoIsReferenceAndKernelRefuses) {
  torch::manual_seed(fresh_seed());
  const ScanInputs s = draw(1, 2, 5, 3, torch::kFloat, true, true);
  const Tensor a = rbk::selective_scan(s.u, s.delta, s.A, s.B, s.C, s.D, s.z, s.bias, true);
  const Tensor b = rbk::selective_scan_reference(s.u, s.delta, s.A, s.B, s.C, s.D, s.z, s.bias, true);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_THROW(rbk::selective_scan(s.u, s.delta, s.A, s.B, s.C, s.D, s.z, s.bias, true, rbk::SelectiveScanImpl::Kernel),
               std::exception);
  EXPECT_THROW(rbk::selective_scan(s.u, s.delta, s.A, s.C.narrow(2, 0, 4), s.C, s.D, s.z, s.bias, true),
               std::exception);  // B of the wrong length is named, not read out of bounds
}

rbk::LmConfig tiny_mamba(int64_t V = 29) {
  rbk::LmConfig c;
  c.arch = "mamba";
  c.vocab_size = V;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_seq = 12;
  c.d_state = 4;
  return c;
}

TEST(MambaBlock, CausalAndShapes) {
  torch::manual_seed(fresh_seed());
  rbk::MambaBlockOptions o;
  o.d_model = 8;
  o.d_state = 4;
  rbk::MambaBlock blk(o);
  const Tensor x = torch::randn({2, 10, 8});
  const Tensor y = blk->forward(x);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 10, 8}));
  for (const int64_t t : {0, 4, 9}) {
    Tensor x2 = x.clone();
    x2.select(1, t).add_(torch::randn({2, 8}));
    const Tensor y2 = blk->forward(x2);
    if (t > 0) {
      const double before = (y2.narrow(1, 0, t) - y.narrow(1, 0, t)).abs().max().item<double>();
      EXPECT_LE(before, kCausalTol) << "position " << t << " leaks backwards";
    }
    EXPECT_GT((y2.narrow(1, t, 10 - t) - y.narrow(1, t, 10 - t)).abs().max().item<double>(), 1e-4)
        << "position " << t << " has no effect on itself and later positions";
  }
}

TEST(MambaLm, CausalShapesAndLengths) {
  torch::manual_seed(fresh_seed());
  auto m = rbk::make_language_model(tiny_mamba());
  m->eval();
  const Tensor ids = torch::randint(0, 29, {3, 12}, torch::kLong);
  const Tensor lo = m->forward(ids);
  ASSERT_EQ(lo.sizes(), (std::vector<int64_t>{3, 12, 29}));
  for (const int64_t t : {1, 6, 11}) {
    Tensor ids2 = ids.clone();
    ids2.select(1, t).add_(1).remainder_(29);
    const Tensor lo2 = m->forward(ids2);
    EXPECT_LE((lo2.narrow(1, 0, t) - lo.narrow(1, 0, t)).abs().max().item<double>(), kCausalTol) << t;
    EXPECT_GT((lo2.select(1, t) - lo.select(1, t)).abs().max().item<double>(), 1e-6) << t;
  }
  // Shorter sequences give the prefix of the longer one's logits (no position embedding).
  const Tensor lo5 = m->forward(ids.narrow(1, 0, 5));
  EXPECT_LE((lo5 - lo.narrow(1, 0, 5)).abs().max().item<double>(), kCausalTol);
  EXPECT_THROW(m->forward(torch::zeros({1, 13}, torch::kLong)), std::exception);
  // Backward reaches every parameter.
  m->train();
  torch::nn::functional::cross_entropy(m->forward(ids).reshape({-1, 29}), ids.reshape({-1})).backward();
  for (const auto& p : m->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
}

TEST(MambaLm, ParameterCountsClosedForm) {
  struct Case {
    int64_t V, D, L, expand, N, K, R;
    bool tie;
  };
  for (const Case& k : {Case{29, 16, 2, 2, 4, 4, 0, false}, Case{1000, 64, 3, 2, 16, 4, 0, false},
                        Case{500, 40, 1, 3, 8, 3, 5, true}, Case{50000, 256, 6, 2, 16, 4, 0, false}}) {
    rbk::LmConfig c = tiny_mamba(k.V);
    c.d_model = k.D;
    c.n_layers = k.L;
    c.expand = k.expand;
    c.d_state = k.N;
    c.d_conv = k.K;
    c.dt_rank = k.R;
    c.tie_weights = k.tie;
    const int64_t counted = rbk::count_parameters(*rbk::make_language_model(c));
    std::printf("mamba V=%lld D=%lld L=%lld expand=%lld N=%lld K=%lld R=%lld tie=%d: %lld parameters (block %lld)\n",
                (long long)k.V, (long long)k.D, (long long)k.L, (long long)k.expand, (long long)k.N, (long long)k.K,
                (long long)k.R, k.tie, (long long)counted, (long long)rbk::mamba_block_parameters(c));
    EXPECT_EQ(counted, rbk::mamba_lm_parameters(c));
    // The per-layer closed form, independently of the LM's.
    rbk::LmConfig c1 = c;
    c1.n_layers = k.L + 1;
    EXPECT_EQ(rbk::count_parameters(*rbk::make_language_model(c1)) - counted, rbk::mamba_block_parameters(c));
  }
}

TEST(MambaBlock, PaperInitialisation) {
  torch::manual_seed(fresh_seed());
  rbk::MambaBlockOptions o;
  o.d_model = 32;
  o.d_state = 16;
  rbk::MambaBlock blk(o);
  EXPECT_EQ(o.resolved_dt_rank(), 2);
  const Tensor want_alog = torch::log(torch::arange(1, 17, torch::kFloat)).expand({64, 16});
  EXPECT_TRUE(torch::allclose(blk->A_log, want_alog));
  EXPECT_TRUE(torch::equal(blk->D, torch::ones({64})));
  const Tensor dt = torch::softplus(blk->dt_proj->bias.to(torch::kDouble));
  EXPECT_GE(dt.min().item<double>(), 1e-3 * (1 - 1e-5));
  EXPECT_LE(dt.max().item<double>(), 1e-1 * (1 + 1e-5));
  EXPECT_LE(blk->dt_proj->weight.abs().max().item<double>(), 1.0 / std::sqrt(2.0));
  EXPECT_EQ(blk->A_log.scalar_type(), torch::kFloat);
}

TEST(MambaLm, RmsNormMatchesFormula) {
  torch::manual_seed(fresh_seed());
  rbk::RmsNorm n(6);
  {
    torch::NoGradGuard ng;
    n->weight.copy_(torch::randn({6}));
  }
  const Tensor x = torch::randn({3, 5, 6});
  const Tensor x64 = x.to(torch::kDouble);
  const Tensor want = x64 / torch::sqrt(x64.pow(2).mean(-1, true) + 1e-5) * n->weight.to(torch::kDouble);
  EXPECT_LT(rbk::relative_l2_error(n->forward(x), want), 1e-6);
}

TEST(MambaLm, ConfigJsonRoundTrip) {
  rbk::LmConfig c = tiny_mamba();
  c.expand = 3;
  c.d_state = 8;
  c.d_conv = 3;
  c.dt_rank = 5;
  c.tie_weights = true;
  const auto j = c.to_json();
  const rbk::LmConfig back = rbk::LmConfig::from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(back.to_json(), j);
  EXPECT_EQ(back.arch, "mamba");
  EXPECT_EQ(rbk::count_parameters(*rbk::make_language_model(back)), rbk::mamba_lm_parameters(c));
  auto bad = j;
  bad["d_state"] = 0;
  EXPECT_THROW(rbk::LmConfig::from_json(bad), std::invalid_argument);
}

TEST(MambaLm, FewTrainerStepsReduceTheLoss) {
  const std::string dir = std::string(RBK_TEST_DATA_DIR) + "/sotu_sample";
  auto text = rbk::read_corpus(rbk::find_split_file(dir, "train"));
  const auto tok = rbk::WordTokenizer::build(text.lines, 0);
  const auto train = rbk::load_token_stream(rbk::find_split_file(dir, "train"), tok, "");
  rbk::LmConfig c = tiny_mamba(tok.vocab_size());
  c.n_seq = 16;
  torch::manual_seed(3);
  auto m = rbk::make_language_model(c);
  rbk::TrainOptions o;
  o.batch_size = 4;
  o.seq_len = 16;
  o.epochs = 5;
  o.max_steps = 40;
  o.lr = 1e-2;
  o.seed = 7;
  o.log_every = 0;
  const auto r = rbk::train_language_model(*m, train.ids, o);
  ASSERT_EQ(r.status, "ok") << r.message;
  ASSERT_GE(r.step_losses.size(), 10u);
  double first = 0, last = 0;
  for (size_t i = 0; i < 5; ++i) first += r.step_losses[i] / 5;
  for (size_t i = r.step_losses.size() - 5; i < r.step_losses.size(); ++i) last += r.step_losses[i] / 5;
  std::printf("mamba smoke: %zu steps, loss %.3f -> %.3f (ln V = %.3f)\n", r.step_losses.size(), first, last,
              std::log(static_cast<double>(tok.vocab_size())));
  EXPECT_LT(last, first - 0.3);
}

}  // namespace
