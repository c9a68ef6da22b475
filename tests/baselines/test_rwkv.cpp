// RWKV-4 baseline (issue 7): the stable WKV reference against the naive fp64 formula and against
// fp64 central finite differences (every input), finiteness at large |k|, the kernel's per-column
// arithmetic (run on the host) against the reference - forward and every gradient - causality of
// the block and of the whole LM, shapes, closed-form parameter counts, the config round trip, the
// RWKV-4 initialisation ramps and a short training smoke. Every case draws fresh inputs (seed
// printed), prints its errors, then asserts.
#include "rbk/language_model.h"
#include "rbk/rwkv_lm.h"
#include "rbk/trainer.h"
#include "rbk/wkv.h"
#include "rbk/tensor_metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace {

using torch::Tensor;

uint64_t fresh_seed() {
  static std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

struct Inputs {
  Tensor td, tf, k, v;  // (C,), (C,), (B, T, C), (B, T, C) float64
  Tensor g;             // (B, T, C) float64 upstream gradient
};

// time_decay ~ N(0, 0.8) (w = -exp(td) spans ~[-5, -0.2]), time_first ~ N(0, 0.5), k ~ k_scale N(0,1).
Inputs draw(int64_t B, int64_t T, int64_t C, double k_scale, const char* what) {
  const uint64_t seed = fresh_seed();
  std::printf("[%s] B=%lld T=%lld C=%lld k_scale=%g seed=%llu\n", what, (long long)B, (long long)T, (long long)C,
              k_scale, (unsigned long long)seed);
  torch::manual_seed(seed);
  const auto o = torch::kDouble;
  return {torch::randn({C}, o) * 0.8, torch::randn({C}, o) * 0.5, torch::randn({B, T, C}, o) * k_scale,
          torch::randn({B, T, C}, o), torch::randn({B, T, C}, o)};
}

// Forward and the four gradients of L = sum(y * g), all returned in float64.
struct Result {
  Tensor y, gtd, gtf, gk, gv;
};
Result run(const Inputs& in, torch::ScalarType dt, rbk::WkvPath path) {
  auto leaf = [dt](const Tensor& t) { return t.to(dt).detach().requires_grad_(true); };
  Tensor td = leaf(in.td), tf = leaf(in.tf), k = leaf(in.k), v = leaf(in.v);
  Tensor y = rbk::wkv(td, tf, k, v, path);
  (y * in.g.to(y.scalar_type())).sum().backward();
  auto d = [](const Tensor& t) { return t.detach().to(torch::kDouble); };
  // An input the outputs do not reach (time_decay at T <= 2, time_first at T = 1) has no grad.
  auto gr = [&d](const Tensor& t) { return t.grad().defined() ? d(t.grad()) : torch::zeros_like(d(t)); };
  return {d(y), gr(td), gr(tf), gr(k), gr(v)};
}

// The fp64 oracle evaluated at the fp32-rounded inputs, so that input rounding is not counted as
// an error of the fp32 computation.
Inputs rounded_to_fp32(const Inputs& in) {
  auto r = [](const Tensor& t) { return t.to(torch::kFloat).to(torch::kDouble); };
  return {r(in.td), r(in.tf), r(in.k), r(in.v), in.g};
}

const char* kNames[5] = {"y", "dL/dtime_decay", "dL/dtime_first", "dL/dk", "dL/dv"};
std::vector<Tensor> parts(const Result& r) { return {r.y, r.gtd, r.gtf, r.gk, r.gv}; }

// Both sides fp64; the naive sums add positive terms whose relative rounding is ~1e-16 each, so
// agreement to 1e-12 leaves three decades for accumulation over T and the exp of |arguments| ~ 100.
constexpr double kNaiveTol = 1e-12;
// Central differences in fp64 with h = 1e-6: truncation ~h^2 |f'''| ~ 1e-12, rounding
// ~eps |L| / h ~ 1e-9; 1e-6 relative to the largest gradient entry is far above both and far below
// any formula error.
constexpr double kFdTol = 1e-6;
constexpr double kFdStep = 1e-6;
// Host-run kernel code in fp64 vs the fp64 autograd reference: same maths, different association
// (two-pass adjoint vs autograd through the recurrence); T <= 300 steps of fp64 rounding.
constexpr double kHostFp64Tol = 1e-11;
// fp32 rule (the one tests/gpu/test_wkv_cuda.cpp uses): the kernel arithmetic's error against the
// fp64 oracle may be at most kFp32Factor x the error of the fp32 LibTorch reference plus kFp32Floor
// (both fp32 implementations round at every step; their errors differ by association only, and the
// floor covers cases where the reference happens to be unusually exact: ~10 fp32 ulps).
constexpr double kFp32Factor = 4.0;
constexpr double kFp32Floor = 1e-6;

TEST(WkvReference, StableFormMatchesNaiveFormula) {
  for (double k_scale : {0.0, 1.0, 3.0, 25.0}) {
    const auto in = draw(2, 9, 5, k_scale, "naive");
    Tensor k = in.k;
    if (k_scale == 25.0) k = k.clamp(-60.0, 60.0);  // exp(60 + ...) is still comfortable in fp64
    const Tensor stable = rbk::wkv_reference(in.td, in.tf, k, in.v);
    const Tensor naive = rbk::wkv_naive(in.td, in.tf, k, in.v);
    const double e = rbk::relative_l2_error(stable, naive);
    std::printf("  stable vs naive fp64: rel err %.3e\n", e);
    EXPECT_LT(e, kNaiveTol) << "k_scale " << k_scale;
  }
  // T = 1 and T = 0 shapes.
  const auto in = draw(3, 1, 4, 1.0, "naive T=1");
  EXPECT_LT(rbk::relative_l2_error(rbk::wkv_reference(in.td, in.tf, in.k, in.v), in.v), 1e-15) << "y_0 = v_0";
  EXPECT_EQ(rbk::wkv_reference(in.td, in.tf, in.k.narrow(1, 0, 0), in.v.narrow(1, 0, 0)).sizes(),
            torch::IntArrayRef({3, 0, 4}));
}

TEST(WkvReference, LargeKeysStayFinite) {
  const auto in = draw(2, 12, 6, 1.0, "large k");
  const Tensor base = rbk::wkv_reference(in.td, in.tf, in.k, in.v);
  for (double shift : {80.0, 500.0}) {
    // Adding a constant to every k cancels between numerator and denominator.
    for (auto dt : {torch::kDouble, torch::kFloat}) {
      const Tensor y = rbk::wkv_reference(in.td.to(dt), in.tf.to(dt), (in.k + shift).to(dt), in.v.to(dt));
      const double e = rbk::relative_l2_error(y, base);
      std::printf("  k + %g (%s): finite=%d, rel err vs unshifted fp64 %.3e\n", shift,
                  dt == torch::kDouble ? "fp64" : "fp32", (int)torch::isfinite(y).all().item<bool>(), e);
      EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
      // fp64: exact shift invariance up to rounding. fp32: k + 500 is rounded to ulp(500) = 3e-5,
      // which moves every weight e^k by up to that relative amount.
      EXPECT_LT(e, dt == torch::kDouble ? 1e-12 : 3e-4);
    }
  }
  // Mixed signs at +-80: the naive fp64 sum still fits, fp32 would overflow without the max trick.
  const Tensor k80 = 80.0 * torch::sign(in.k) + in.k;
  EXPECT_LT(rbk::relative_l2_error(rbk::wkv_reference(in.td, in.tf, k80, in.v), rbk::wkv_naive(in.td, in.tf, k80, in.v)), kNaiveTol);
  // Gradients stay finite at k ~ 500 in fp32, on both paths.
  Inputs big = in;
  big.k = in.k * 5.0 + 500.0;
  for (auto path : {rbk::WkvPath::Reference, rbk::WkvPath::Kernel}) {
    const auto r = run(big, torch::kFloat, path);
    for (const auto& t : parts(r)) EXPECT_TRUE(torch::isfinite(t).all().item<bool>());
  }
  // The unstabilised formula does overflow there (this is what the running maximum is for).
  EXPECT_FALSE(torch::isfinite(rbk::wkv_naive(in.td, in.tf, in.k + 800.0, in.v)).all().item<bool>());
}

TEST(WkvReference, GradientsMatchFiniteDifferences) {
  const auto in = draw(2, 6, 3, 2.0, "finite differences");
  const auto ad = run(in, torch::kDouble, rbk::WkvPath::Reference);
  auto loss = [&](const Tensor& td, const Tensor& tf, const Tensor& k, const Tensor& v) {
    return (rbk::wkv_reference(td, tf, k, v) * in.g).sum().item<double>();
  };
  const std::vector<Tensor> inputs = {in.td, in.tf, in.k, in.v};
  const std::vector<Tensor> grads = {ad.gtd, ad.gtf, ad.gk, ad.gv};
  torch::NoGradGuard ng;
  for (size_t which = 0; which < inputs.size(); ++which) {
    const Tensor flat_grad = grads[which].reshape({-1});
    Tensor fd = torch::zeros_like(flat_grad);
    for (int64_t e = 0; e < flat_grad.numel(); ++e) {
      std::vector<Tensor> plus, minus;
      for (size_t j = 0; j < inputs.size(); ++j) {
        plus.push_back(inputs[j].clone());
        minus.push_back(inputs[j].clone());
      }
      plus[which].view({-1})[e] += kFdStep;
      minus[which].view({-1})[e] -= kFdStep;
      fd[e] = (loss(plus[0], plus[1], plus[2], plus[3]) - loss(minus[0], minus[1], minus[2], minus[3])) / (2 * kFdStep);
    }
    const double err = (fd - flat_grad).abs().max().item<double>() / flat_grad.abs().max().item<double>();
    std::printf("  %-15s: max |fd - autograd| / max |grad| = %.3e (%lld entries)\n", kNames[which + 1], err,
                (long long)fd.numel());
    EXPECT_LT(err, kFdTol) << kNames[which + 1];
  }
}

// The kernel's per-column code (wkv_column.h) through the custom autograd Function, run on the
// host: its forward and two-pass backward against autograd through the reference.
TEST(WkvKernelArithmetic, HostRunMatchesReferenceForwardAndEveryGradient) {
  struct Shape {
    int64_t B, T, C;
    double k_scale;
  };
  for (const Shape s : {Shape{1, 1, 5, 1.0}, Shape{3, 2, 7, 1.0}, Shape{2, 17, 33, 2.0}, Shape{3, 300, 40, 2.0},
                        Shape{2, 50, 9, 30.0}}) {
    const auto in = draw(s.B, s.T, s.C, s.k_scale, "kernel on host");
    // fp64: same maths in both, only association differs.
    const auto ref64 = parts(run(in, torch::kDouble, rbk::WkvPath::Reference));
    const auto host64 = parts(run(in, torch::kDouble, rbk::WkvPath::Kernel));
    // fp32, judged against the fp64 oracle at the fp32-rounded inputs.
    const auto oracle = parts(run(rounded_to_fp32(in), torch::kDouble, rbk::WkvPath::Reference));
    const auto ref32 = parts(run(in, torch::kFloat, rbk::WkvPath::Reference));
    const auto host32 = parts(run(in, torch::kFloat, rbk::WkvPath::Kernel));
    for (size_t i = 0; i < 5; ++i) {
      const double e64 = rbk::relative_l2_error(host64[i], ref64[i]);
      const double e_ref = rbk::relative_l2_error(ref32[i], oracle[i]), e_host = rbk::relative_l2_error(host32[i], oracle[i]);
      const double bound = kFp32Factor * e_ref + kFp32Floor;
      std::printf("  %-15s fp64 host vs ref %.2e | fp32 ref %.2e, host kernel %.2e (bound %.2e)\n", kNames[i], e64,
                  e_ref, e_host, bound);
      EXPECT_LT(e64, kHostFp64Tol) << kNames[i];
      EXPECT_LE(e_host, bound) << kNames[i];
      EXPECT_TRUE(torch::isfinite(host32[i]).all().item<bool>()) << kNames[i];
    }
  }
}

rbk::LmConfig tiny_rwkv(int64_t V = 23) {
  rbk::LmConfig c;
  c.arch = "rwkv";
  c.vocab_size = V;
  c.d_model = 12;
  c.n_layers = 2;
  c.n_seq = 16;
  c.ffn_dim = 20;
  c.init = "torch_default";  // the RWKV-4 init zeroes the branch outputs: blocks start as identities
  return c;
}

// Exact zeros: d out[:, i] / d x[:, j] for j > i. Checked through the input gradient of each output row.
TEST(RwkvCausality, BlockOutputsDependOnlyOnThePast) {
  const uint64_t seed = fresh_seed();
  std::printf("seed %llu\n", (unsigned long long)seed);
  torch::manual_seed(seed);
  auto c = tiny_rwkv();
  rbk::RwkvBlock block(c, 1);
  block->to(torch::kDouble);
  const int64_t n = 10;
  const Tensor x = torch::randn({2, n, c.d_model}, torch::kDouble).requires_grad_(true);
  const Tensor out = block->forward(x);
  for (int64_t i : {0, 3, 9}) {
    const Tensor g = torch::autograd::grad({out.select(1, i).sum()}, {x}, {}, true)[0];  // (2, n, C)
    const double future = i + 1 < n ? g.narrow(1, i + 1, n - i - 1).abs().max().item<double>() : 0.0;
    const double here = g.select(1, i).abs().max().item<double>();
    const double past = i > 0 ? g.narrow(1, 0, i).abs().max().item<double>() : 1.0;
    std::printf("  row %lld: max |d out / d x| future %.3e, same position %.3e, past %.3e\n", (long long)i, future,
                here, past);
    EXPECT_EQ(future, 0.0);
    EXPECT_GT(here, 1e-6);
    EXPECT_GT(past, 1e-9) << "the past must reach row " << i << " (token shift and WKV)";
  }
}

TEST(RwkvCausality, LmLogitsBeforeAPerturbedTokenDoNotChange) {
  const uint64_t seed = fresh_seed();
  std::printf("seed %llu\n", (unsigned long long)seed);
  torch::manual_seed(seed);
  auto c = tiny_rwkv();
  auto m = rbk::make_language_model(c);
  m->to(torch::kDouble);
  m->eval();
  const int64_t j = 7;
  Tensor ids = torch::randint(c.vocab_size, {3, c.n_seq}, torch::kLong);
  Tensor ids2 = ids.clone();
  ids2.select(1, j).add_(1).remainder_(c.vocab_size);
  torch::NoGradGuard ng;
  const Tensor a = m->forward(ids), b = m->forward(ids2);
  const double before = (a.narrow(1, 0, j) - b.narrow(1, 0, j)).abs().max().item<double>();
  const double at = (a.select(1, j) - b.select(1, j)).abs().max().item<double>();
  const double after = (a.select(1, j + 1) - b.select(1, j + 1)).abs().max().item<double>();
  std::printf("  max |dlogits| before j=%lld: %.3e, at j: %.3e, at j+1: %.3e\n", (long long)j, before, at, after);
  // Same shapes and rows in both calls, so equal bits are expected; 1e-12 (~1e4 ulps of O(1)
  // logits) only allows for a BLAS that blocks rows by content, far below any real leak.
  EXPECT_LT(before, 1e-12);
  EXPECT_GT(at, 1e-6);
  EXPECT_GT(after, 1e-6);
}

TEST(RwkvLm, ShapesFiniteGradientsAndBothWkvPaths) {
  torch::manual_seed(fresh_seed() & 0xffffffff);
  for (bool tie : {false, true}) {
    auto c = tiny_rwkv();
    c.tie_weights = tie;
    c.dropout = 0.1;
    c.init = "papertime";
    auto m = std::dynamic_pointer_cast<rbk::RwkvLm>(rbk::make_language_model(c));
    ASSERT_TRUE(m) << "make_language_model(arch rwkv) must build an RwkvLm";
    for (int64_t n : {int64_t{1}, int64_t{5}, c.n_seq}) {
      const Tensor ids = torch::randint(c.vocab_size, {3, n}, torch::kLong);
      const Tensor logits = m->forward(ids);
      EXPECT_EQ(logits.sizes(), torch::IntArrayRef({3, n, c.vocab_size}));
      EXPECT_EQ(logits.scalar_type(), torch::kFloat);
      EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
    }
    EXPECT_THROW(m->forward(torch::zeros({1, c.n_seq + 1}, torch::kLong)), c10::Error);
    m->zero_grad();
    m->forward(torch::randint(c.vocab_size, {2, 8}, torch::kLong)).logsumexp(-1).mean().backward();
    for (const auto& p : m->named_parameters())
      EXPECT_TRUE(p.value().grad().defined() && torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
  // The kernel path (host-run on the CPU) gives the model the same logits as the reference path.
  auto c = tiny_rwkv();
  auto m = std::dynamic_pointer_cast<rbk::RwkvLm>(rbk::make_language_model(c));
  m->eval();
  torch::NoGradGuard ng;
  const Tensor ids = torch::randint(c.vocab_size, {2, c.n_seq}, torch::kLong);
  m->set_wkv_path(rbk::WkvPath::Reference);
  const Tensor a = m->forward(ids);
  m->set_wkv_path(rbk::WkvPath::Kernel);
  const Tensor b = m->forward(ids);
  const double e = rbk::relative_l2_error(b, a);
  std::printf("  LM logits, kernel path vs reference path (fp32): rel err %.3e\n", e);
  EXPECT_LT(e, 1e-5);  // fp32 logits through two blocks: a few ulps per op
}

TEST(RwkvLm, ParameterCountsMatchClosedForm) {
  struct P {
    int64_t V, C, L, F;
    bool tie;
  };
  for (const P p : {P{50, 16, 1, 64, false}, P{101, 24, 3, 40, true}, P{1000, 64, 4, 256, false},
                    P{7, 1, 1, 1, false}}) {
    rbk::LmConfig c;
    c.arch = "rwkv";
    c.vocab_size = p.V;
    c.d_model = p.C;
    c.n_layers = p.L;
    c.ffn_dim = p.F;
    c.tie_weights = p.tie;
    auto m = rbk::make_language_model(c);
    rbk::RwkvBlock block(c, 0);
    const int64_t counted = rbk::count_parameters(*m);
    std::printf("  V=%lld C=%lld L=%lld F=%lld tied=%d: %lld parameters (block %lld)\n", (long long)p.V,
                (long long)p.C, (long long)p.L, (long long)p.F, (int)p.tie, (long long)counted,
                (long long)rbk::rwkv_block_parameters(c));
    EXPECT_EQ(rbk::count_parameters(*block), rbk::rwkv_block_parameters(c));
    EXPECT_EQ(counted, rbk::rwkv_lm_parameters(c));
  }
}

TEST(RwkvLm, ConfigJsonRoundTrip) {
  auto c = tiny_rwkv();
  c.tie_weights = true;
  c.dropout = 0.05;
  const auto j = c.to_json();
  const auto back = rbk::LmConfig::from_json(j);
  EXPECT_EQ(back.to_json(), j);
  EXPECT_EQ(back.arch, "rwkv");
  EXPECT_TRUE(std::dynamic_pointer_cast<rbk::RwkvLm>(rbk::make_language_model(back)));
  auto bad = j;
  bad["ffn_dim"] = 0;
  EXPECT_THROW(rbk::LmConfig::from_json(bad), std::invalid_argument);
}

TEST(RwkvLm, Rwkv4InitialisationRamps) {
  auto c = tiny_rwkv();
  c.n_layers = 3;
  c.init = "papertime";
  auto m = std::dynamic_pointer_cast<rbk::RwkvLm>(rbk::make_language_model(c));
  const int64_t C = c.d_model;
  const auto& b0 = m->blocks()[0];
  const auto& b2 = m->blocks()[2];
  // Layer 0: time_decay runs -5 -> 3 with exponent 0.7; layer L-1 with exponent 2.
  EXPECT_NEAR(b0->att->time_decay[0].item<double>(), -5.0, 1e-6);
  EXPECT_NEAR(b0->att->time_decay[C - 1].item<double>(), 3.0, 1e-6);
  EXPECT_NEAR(b2->att->time_decay[C / 2].item<double>(), -5.0 + 8.0 * std::pow((C / 2) / double(C - 1), 2.0), 1e-5);
  EXPECT_NEAR(b0->att->time_first[0].item<double>(), std::log(0.3), 1e-6);
  EXPECT_NEAR(b0->att->time_first[1].item<double>(), std::log(0.3) + 0.5, 1e-6);
  EXPECT_NEAR(b0->att->time_first[2].item<double>(), std::log(0.3) - 0.5, 1e-6);
  // Layer 0 (r10 = 1, r01 = 0): mix_k = i/C; mix_v = i/C; mix_r = sqrt(i/C).
  EXPECT_NEAR(b0->att->time_mix_k[3].item<double>(), 3.0 / C, 1e-6);
  EXPECT_NEAR(b0->att->time_mix_r[3].item<double>(), std::sqrt(3.0 / C), 1e-6);
  // Layer 2 of 3: r01 = 1, r10 = 1/3; mix_v gets + 0.3.
  EXPECT_NEAR(b2->att->time_mix_v[3].item<double>(), std::pow(3.0 / C, 1.0 / 3.0) + 0.3, 1e-6);
  EXPECT_NEAR(b2->ffn->time_mix_k[3].item<double>(), std::pow(3.0 / C, 1.0 / 3.0), 1e-6);
  // RWKV_Init zeros: every block starts as the identity.
  EXPECT_EQ(b0->att->output->weight.abs().max().item<double>(), 0.0);
  EXPECT_EQ(b0->ffn->value->weight.abs().max().item<double>(), 0.0);
  EXPECT_GT(b0->att->value->weight.abs().max().item<double>(), 0.0);
}

// A few trainer steps on a learnable synthetic stream (a fixed random sequence of period 13) lower
// the loss well below its start.
TEST(RwkvLm, TrainingSmokeLowersTheLoss) {
  torch::manual_seed(7);
  const int64_t V = 16;
  const Tensor period = torch::randint(V, {13}, torch::kLong);
  const Tensor stream = period.repeat({400});  // (5200,)
  auto c = tiny_rwkv(V);
  c.d_model = 32;
  c.ffn_dim = 64;
  c.init = "papertime";
  auto m = rbk::make_language_model(c);
  rbk::TrainOptions o;
  o.batch_size = 4;
  o.seq_len = 16;
  o.epochs = 1;
  o.max_steps = 60;
  o.lr = 1e-2;
  o.seed = 11;
  o.log_every = 0;
  const auto r = rbk::train_language_model(*m, stream, o);
  ASSERT_EQ(r.status, "ok") << r.message;
  ASSERT_GE(r.step_losses.size(), 20u);
  auto mean = [](auto b, auto e) {
    double s = 0;
    int n = 0;
    for (auto it = b; it != e; ++it, ++n) s += *it;
    return s / n;
  };
  const double first = mean(r.step_losses.begin(), r.step_losses.begin() + 5);
  const double last = mean(r.step_losses.end() - 5, r.step_losses.end());
  std::printf("  %zu steps: mean loss first 5 %.3f, last 5 %.3f (ln V = %.3f)\n", r.step_losses.size(), first, last,
              std::log(double(V)));
  EXPECT_LT(last, first - 0.5);
}

}  // namespace
