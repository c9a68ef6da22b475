// The chunked LM head + cross-entropy (lm_loss.h, issue 17) against the plain full-logits path:
// loss and gradients in fp64 and fp32, chunk sizes that do not divide T, chunk 1, chunk >= T, both
// gradient schedules, biased / bias-free / tied heads, every architecture through
// language_model_loss, the evaluator, and forward() unchanged by the forward_features split. The
// fused head + loss of fused_cross_entropy.h (issue 25) on its CPU path against the same plain
// path: the wiring of its in-forward gradients, their scaling and which inputs get one.
#include "lm_test_support.h"
#include "rbk/evaluator.h"
#include "rbk/fused_cross_entropy.h"
#include "rbk/lm_loss.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace {

using rbk::HeadGradient;
using rbk::LossReduction;
using torch::Tensor;

// fp64: both paths sum the same terms (at most V products per logit, T per-token NLLs, T products
// per weight-gradient entry) in different orders; with T, V <= 200 the reordering error is a few
// hundred ulps (eps 2.2e-16) of the largest partial sum, below 1e-12 relative.
constexpr double kFp64RelTol = 1e-12;
// fp32: the same reordering at eps 1.2e-7 gives a few 1e-6 relative; 2e-5 leaves margin.
constexpr double kFp32RelTol = 2e-5;
// Whole-model gradients (fp64): the head's reordering error passes through every layer's backward;
// 1e-10 relative (per parameter, in the 2-norm) is still ~1e6 ulps below any real difference.
constexpr double kModelRelTol = 1e-10;

// ||a - b||_inf <= tol * ||b||_inf (with an absolute floor for all-zero references).
void expect_close(const Tensor& a, const Tensor& b, double tol, const std::string& what) {
  ASSERT_TRUE(a.defined() && b.defined()) << what;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double diff = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
  const double ref = b.to(torch::kDouble).abs().max().item<double>();
  EXPECT_LE(diff, tol * ref + 1e-300) << what << ": max |diff| " << diff << ", max |ref| " << ref;
}

struct Grads {
  Tensor loss, df, dw, db;
};

struct Problem {
  Tensor f, w, b, y;
};

Problem make_problem(int64_t T, int64_t D, int64_t V, bool bias, torch::ScalarType dtype, uint64_t seed) {
  torch::manual_seed(seed);
  Problem p;
  p.f = torch::randn({T, D}, dtype) * 2.0;  // logits of a few units: a non-trivial softmax
  p.w = torch::randn({V, D}, dtype) * 0.7;
  if (bias) p.b = torch::randn({V}, dtype);
  p.y = torch::randint(V, {T}, torch::kInt64);
  return p;
}

enum class HeadPath { Plain, Chunked, Fused };

Grads run(const Problem& p, HeadPath path, int64_t chunk, LossReduction red, HeadGradient sched) {
  auto f = p.f.clone().requires_grad_(true), w = p.w.clone().requires_grad_(true);
  auto b = p.b.defined() ? p.b.clone().requires_grad_(true) : Tensor();
  Tensor loss;
  if (path == HeadPath::Chunked) {
    loss = rbk::chunked_linear_cross_entropy(f, w, b, p.y, chunk, red, sched);
  } else if (path == HeadPath::Fused) {
    loss = rbk::fused_linear_cross_entropy(f, w, b, p.y, /*bf16=*/false);  // the mean only
  } else {
    auto logits = b.defined() ? torch::linear(f, w, b) : torch::matmul(f, w.t());
    auto opts = torch::nn::functional::CrossEntropyFuncOptions();
    if (red == LossReduction::Mean) opts.reduction(torch::kMean);
    else opts.reduction(torch::kSum);
    loss = torch::nn::functional::cross_entropy(logits, p.y, opts);
  }
  (loss * 1.7).backward();  // a grad_output other than 1 checks the scaling
  return {loss.detach(), f.grad(), w.grad(), b.defined() ? b.grad() : Tensor()};
}

void compare_all(torch::ScalarType dtype, double tol) {
  const int64_t T = 37, D = 8, V = 53;
  for (bool bias : {true, false})
    for (auto red : {LossReduction::Mean, LossReduction::Sum})
      for (auto sched : {HeadGradient::InForward, HeadGradient::RecomputeInBackward})
        for (int64_t chunk : {1, 5, 16, 36, 37, 100}) {
          const auto p = make_problem(T, D, V, bias, dtype, 11);
          const auto ref = run(p, HeadPath::Plain, 0, red, sched);
          const auto got = run(p, HeadPath::Chunked, chunk, red, sched);
          const std::string tag = std::string(bias ? "bias" : "no bias") + (red == LossReduction::Mean ? " mean" : " sum") +
                                  (sched == HeadGradient::InForward ? " in-forward" : " recompute") +
                                  " chunk " + std::to_string(chunk);
          EXPECT_EQ(got.loss.scalar_type(), dtype) << tag;
          expect_close(got.loss, ref.loss, tol, tag + " loss");
          expect_close(got.df, ref.df, tol, tag + " dfeatures");
          expect_close(got.dw, ref.dw, tol, tag + " dweight");
          if (bias) expect_close(got.db, ref.db, tol, tag + " dbias");
        }
}

TEST(ChunkedHeadLoss, EqualsPlainPathFp64) { compare_all(torch::kDouble, kFp64RelTol); }
TEST(ChunkedHeadLoss, EqualsPlainPathFp32) { compare_all(torch::kFloat, kFp32RelTol); }

// Logits tens of units apart: the targets of many tokens get probabilities that underflow fp32
// (nll > 100 nats), where the CPU path's -log softmax must be repaired (lm_loss.cpp).
TEST(ChunkedHeadLoss, UnderflowedTargetProbabilitiesMatchPlain) {
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    auto p = make_problem(40, 8, 60, true, dtype, 3);
    p.f.mul_(dtype == torch::kFloat ? 30.0 : 400.0);  // fp64 needs nll > 666 nats to underflow
    const auto ref = run(p, HeadPath::Plain, 0, LossReduction::Sum, HeadGradient::InForward);
    const double tol = dtype == torch::kFloat ? kFp32RelTol : kFp64RelTol;
    for (int64_t chunk : {3, 64}) {
      const auto got = run(p, HeadPath::Chunked, chunk, LossReduction::Sum, HeadGradient::InForward);
      ASSERT_TRUE(std::isfinite(got.loss.item<double>()));
      expect_close(got.loss, ref.loss, tol, "underflow loss");
      expect_close(got.df, ref.df, tol, "underflow dfeatures");
      expect_close(got.dw, ref.dw, tol, "underflow dweight");
    }
    // The case is real: some target's log-probability is below the repair threshold.
    auto logp = torch::log_softmax(torch::linear(p.f, p.w, p.b), 1).gather(1, p.y.unsqueeze(1));
    EXPECT_LT(logp.min().item<double>(), dtype == torch::kFloat ? -100.0 : -700.0);
  }
}

// A wrong chunk boundary, a missing one-hot or a wrong scale must show: the tolerance is far
// below the change of one token's target.
TEST(ChunkedHeadLoss, DetectsAChangedTarget) {
  auto p = make_problem(20, 6, 30, true, torch::kDouble, 5);
  const auto ref = run(p, HeadPath::Plain, 0, LossReduction::Mean, HeadGradient::InForward);
  p.y[19] = (p.y[19].item<int64_t>() + 1) % 30;  // the last token: inside the short last chunk
  const auto got = run(p, HeadPath::Chunked, 7, LossReduction::Mean, HeadGradient::InForward);
  const double diff = (got.dw - ref.dw).abs().max().item<double>();
  EXPECT_GT(diff, 1e3 * kFp64RelTol * ref.dw.abs().max().item<double>());
}

// Only the inputs that require a gradient get one; without grad mode nothing is accumulated.
TEST(ChunkedHeadLoss, GradientsOnlyWhereRequired) {
  const auto p = make_problem(9, 4, 11, true, torch::kDouble, 2);
  auto f = p.f.clone().requires_grad_(true);
  rbk::chunked_linear_cross_entropy(f, p.w, p.b, p.y, 4).backward();
  auto ref_f = p.f.clone().requires_grad_(true);
  torch::nn::functional::cross_entropy(torch::linear(ref_f, p.w, p.b), p.y).backward();
  expect_close(f.grad(), ref_f.grad(), kFp64RelTol, "dfeatures only");
  torch::NoGradGuard ng;
  auto loss = rbk::chunked_linear_cross_entropy(p.f, p.w, p.b, p.y, 4, LossReduction::Sum);
  EXPECT_FALSE(loss.requires_grad());
  expect_close(loss, torch::nn::functional::cross_entropy(
                         torch::linear(p.f, p.w, p.b), p.y,
                         torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)),
               kFp64RelTol, "no-grad sum");
}

TEST(ChunkedHeadLoss, RejectsBadArguments) {
  const auto p = make_problem(4, 3, 5, true, torch::kFloat, 1);
  EXPECT_THROW(rbk::chunked_linear_cross_entropy(p.f, p.w, p.b, p.y, 0), c10::Error);
  EXPECT_THROW(rbk::chunked_linear_cross_entropy(p.f, p.w.t(), p.b, p.y, 2), c10::Error);
  EXPECT_THROW(rbk::chunked_linear_cross_entropy(p.f, p.w, p.b, p.y.narrow(0, 0, 3), 2), c10::Error);
}

// The fused head's CPU path (the kernel's quantities from aten ops) against the plain path, with
// the chunked path's tolerances (the same sums in another order): loss and every gradient, scaled
// by the incoming 1.7, for biased and bias-free heads in fp64 and fp32.
TEST(FusedHeadLoss, EqualsPlainPath) {
  for (auto dtype : {torch::kDouble, torch::kFloat})
    for (bool bias : {true, false}) {
      const auto p = make_problem(37, 8, 53, bias, dtype, 12);
      const auto ref = run(p, HeadPath::Plain, 0, LossReduction::Mean, HeadGradient::InForward);
      const auto got = run(p, HeadPath::Fused, 0, LossReduction::Mean, HeadGradient::InForward);
      const double tol = dtype == torch::kDouble ? kFp64RelTol : kFp32RelTol;
      const std::string tag = std::string(c10::toString(dtype)) + (bias ? " bias" : " no bias");
      EXPECT_EQ(got.loss.scalar_type(), dtype) << tag;
      expect_close(got.loss, ref.loss, tol, tag + " loss");
      expect_close(got.df, ref.df, tol, tag + " dfeatures");
      expect_close(got.dw, ref.dw, tol, tag + " dweight");
      if (bias) expect_close(got.db, ref.db, tol, tag + " dbias");
    }
}

// A changed target must show in the fused gradients far above the tolerance.
TEST(FusedHeadLoss, DetectsAChangedTarget) {
  auto p = make_problem(20, 6, 30, true, torch::kDouble, 5);
  const auto ref = run(p, HeadPath::Plain, 0, LossReduction::Mean, HeadGradient::InForward);
  p.y[19] = (p.y[19].item<int64_t>() + 1) % 30;
  const auto got = run(p, HeadPath::Fused, 0, LossReduction::Mean, HeadGradient::InForward);
  EXPECT_GT((got.dw - ref.dw).abs().max().item<double>(), 1e3 * kFp64RelTol * ref.dw.abs().max().item<double>());
}

// The fused kernel's check against fp64 (its GPU test and bench_softmax_xent use it): an fp32 and a
// bf16 output of the reference are inside the bounds; a loss off by 1e-3 and the row's smallest
// gradient entry off by 1e-3 x scale (50x its absolute bound) are outside.
TEST(SoftmaxXentCheck, BoundsHoldForRoundedOutputsAndCatchErrors) {
  torch::manual_seed(30);
  const auto x = torch::randn({6, 97}, torch::kDouble) * 4.0;
  const auto t = torch::randint(97, {6}, torch::kInt64);
  const double scale = 1.0 / 6.0;
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    const auto [loss, grad] = rbk::softmax_xent_reference(x, t, scale);
    const auto rounded = grad.to(dtype);
    const auto ok = rbk::softmax_xent_errors_vs_fp64(x, t, scale, loss.to(torch::kFloat), rounded);
    EXPECT_LE(ok.loss, rbk::kSoftmaxXentLossTol) << c10::toString(dtype);
    EXPECT_LE(ok.gradient_excess, 0.0) << c10::toString(dtype);
    const auto bad_loss = rbk::softmax_xent_errors_vs_fp64(x, t, scale, loss + 1e-3, rounded);
    EXPECT_GT(bad_loss.loss, rbk::kSoftmaxXentLossTol) << c10::toString(dtype);
    auto off = grad.clone();
    off[3][grad[3].abs().argmin().item<int64_t>()] += 1e-3 * scale;  // where the relative part of the bound is ~0
    const auto bad_grad = rbk::softmax_xent_errors_vs_fp64(x, t, scale, loss, off.to(dtype));
    EXPECT_GT(bad_grad.gradient_excess, 0.0) << c10::toString(dtype);
  }
}

// Only the inputs that require a gradient get one (a frozen weight, then only the weight); without
// grad mode the loss is the plain one and carries no graph.
TEST(FusedHeadLoss, GradientsOnlyWhereRequired) {
  const auto p = make_problem(9, 4, 11, true, torch::kDouble, 2);
  auto f = p.f.clone().requires_grad_(true), b = p.b.clone().requires_grad_(true);
  rbk::fused_linear_cross_entropy(f, p.w, b, p.y, false).backward();
  auto ref_f = p.f.clone().requires_grad_(true), ref_b = p.b.clone().requires_grad_(true);
  torch::nn::functional::cross_entropy(torch::linear(ref_f, p.w, ref_b), p.y).backward();
  expect_close(f.grad(), ref_f.grad(), kFp64RelTol, "dfeatures beside a frozen weight");
  expect_close(b.grad(), ref_b.grad(), kFp64RelTol, "dbias beside a frozen weight");
  auto w = p.w.clone().requires_grad_(true);
  rbk::fused_linear_cross_entropy(p.f, w, p.b, p.y, false).backward();
  auto ref_w = p.w.clone().requires_grad_(true);
  torch::nn::functional::cross_entropy(torch::linear(p.f, ref_w, p.b), p.y).backward();
  expect_close(w.grad(), ref_w.grad(), kFp64RelTol, "dweight alone");
  torch::NoGradGuard ng;
  const auto loss = rbk::fused_linear_cross_entropy(p.f, p.w, p.b, p.y, false);
  EXPECT_FALSE(loss.requires_grad());
  expect_close(loss, torch::nn::functional::cross_entropy(torch::linear(p.f, p.w, p.b), p.y), kFp64RelTol, "no-grad");
}

TEST(FusedHeadLoss, RejectsBadArguments) {
  const auto p = make_problem(4, 3, 5, true, torch::kFloat, 1);
  EXPECT_THROW(rbk::fused_linear_cross_entropy(p.f, p.w.t(), p.b, p.y, false), c10::Error);
  EXPECT_THROW(rbk::fused_linear_cross_entropy(p.f, p.w, p.b.narrow(0, 0, 4), p.y, false), c10::Error);
  EXPECT_THROW(rbk::fused_linear_cross_entropy(p.f, p.w, p.b, p.y.narrow(0, 0, 3), false), c10::Error);
  EXPECT_THROW(rbk::fused_linear_cross_entropy(p.f, p.w, p.b, p.y.to(torch::kInt32), false), c10::Error);
}

rbk::LmConfig arch_config(const std::string& arch, bool tie) {
  auto c = rbk::lm_test::tiny_config(arch);
  c.tie_weights = tie;
  c.dropout = 0.0;
  return c;
}

struct ArchCase {
  std::string arch;
  bool tie;
};
const std::vector<ArchCase> kArchCases = {{"resnet_bk", false}, {"transformer", false}, {"transformer", true},
                                          {"mamba", false},     {"mamba", true},        {"rwkv", false},
                                          {"rwkv", true}};

// forward() after the split computes the logits with the same expression each model used before
// it (the untied biased head through Linear, i.e. torch::linear; RWKV's bias-free head and every
// tied head as h @ W^T): bit-identical, not merely close.
TEST(LanguageModelHead, ForwardIsTheOldHeadOfForwardFeatures) {
  for (const auto& k : kArchCases) {
    const auto c = arch_config(k.arch, k.tie);
    torch::manual_seed(4);
    auto m = rbk::make_language_model(c);
    m->eval();
    torch::NoGradGuard ng;
    const auto ids = torch::randint(c.vocab_size, {2, c.n_seq}, torch::kInt64);
    const auto h = m->forward_features(ids);
    ASSERT_EQ(h.sizes(), (std::vector<int64_t>{2, c.n_seq, c.d_model})) << k.arch;
    Tensor old;
    if (k.tie) {
      old = torch::matmul(h, m->head_weight().t());
      EXPECT_FALSE(m->head_bias().defined()) << k.arch;
      EXPECT_TRUE(m->head_weight().is_same(m->named_parameters()["tok_emb.weight"])) << k.arch;
    } else {
      old = torch::nn::functional::linear(h, m->head_weight(), m->head_bias());
      EXPECT_EQ(m->head_bias().defined(), k.arch != "rwkv") << k.arch;
    }
    EXPECT_TRUE(torch::equal(m->forward(ids), old)) << k.arch << (k.tie ? " tied" : "");
  }
}

// A model loss (fp64 model, CPU) against the fp64 cross-entropy of forward() (language_model_loss's
// plain path would round the logits to fp32): the loss, returned as fp32 as the plain path returns
// it, within 1e-6 relative and every parameter's gradient within kModelRelTol, for each
// architecture and a tied head (whose weight is also the embedding: two gradient paths into one
// parameter). The incoming gradient is 1: Mamba keeps A, D and the dt bias in fp32 even in an fp64
// model, so a scaled backward rounds differently there by up to 1e-3 relative (measured).
using ModelLoss = std::function<Tensor(rbk::LanguageModel&, const Tensor&, const Tensor&)>;
void expect_model_loss_equals_fp64_plain(const ModelLoss& model_loss, uint64_t seed) {
  for (const auto& k : kArchCases) {
    const auto c = arch_config(k.arch, k.tie);
    torch::manual_seed(seed);
    auto m = rbk::make_language_model(c);
    m->to(torch::kDouble);
    const auto x = torch::randint(c.vocab_size, {3, c.n_seq - 1}, torch::kInt64);
    const auto y = torch::randint(c.vocab_size, {3, c.n_seq - 1}, torch::kInt64);
    const std::string tag = k.arch + (k.tie ? " tied" : "");

    m->zero_grad();
    const auto ref_loss = torch::nn::functional::cross_entropy(m->forward(x).reshape({-1, c.vocab_size}), y.reshape({-1}));
    ref_loss.backward();
    std::vector<Tensor> ref_grads;
    for (const auto& p : m->parameters()) ref_grads.push_back(p.grad().defined() ? p.grad().clone() : Tensor());

    m->zero_grad();
    const auto loss = model_loss(*m, x, y);
    EXPECT_EQ(loss.scalar_type(), torch::kFloat) << tag;
    loss.backward();
    EXPECT_NEAR(loss.item<double>(), ref_loss.item<double>(), 1e-6 * std::abs(ref_loss.item<double>())) << tag;
    size_t i = 0;
    for (const auto& p : m->named_parameters()) {
      const auto& ref = ref_grads[i++];
      if (!ref.defined()) continue;
      const double err = (p.value().grad() - ref).norm().item<double>();
      EXPECT_LE(err, kModelRelTol * ref.norm().item<double>() + 1e-300) << tag << " " << p.key();
    }
  }
}

// language_model_loss with chunks (33 tokens: chunks of 5, the last of 3).
TEST(LanguageModelLoss, ChunkedEqualsPlainForEveryArchitectureFp64) {
  expect_model_loss_equals_fp64_plain(
      [](rbk::LanguageModel& m, const Tensor& x, const Tensor& y) { return rbk::language_model_loss(m, x, y, false, 5); }, 8);
}

// language_model_loss_with(fused): the fused head + loss on its CPU path (FusedHeadLoss tests the
// scaling by the incoming gradient). The fused loss with chunks is refused.
TEST(LanguageModelLoss, FusedEqualsPlainForEveryArchitectureFp64) {
  expect_model_loss_equals_fp64_plain(
      [](rbk::LanguageModel& m, const Tensor& x, const Tensor& y) {
        return rbk::language_model_loss_with(m, x, y, false, 0, /*fused=*/true);
      },
      13);
  const auto c = arch_config("transformer", false);
  auto m = rbk::make_language_model(c);
  const auto x = torch::randint(c.vocab_size, {1, 4}, torch::kInt64);
  EXPECT_THROW(rbk::language_model_loss_with(*m, x, x, false, 8, true), c10::Error);
}

// The trainer's 4-argument call is the plain path, unchanged.
TEST(LanguageModelLoss, FourArgumentFormIsThePlainPath) {
  const auto c = arch_config("transformer", false);
  torch::manual_seed(9);
  auto m = rbk::make_language_model(c);
  const auto x = torch::randint(c.vocab_size, {2, 8}, torch::kInt64);
  const auto y = torch::randint(c.vocab_size, {2, 8}, torch::kInt64);
  torch::NoGradGuard ng;
  const auto plain = torch::nn::functional::cross_entropy(m->forward(x).reshape({-1, c.vocab_size}), y.reshape({-1}));
  EXPECT_TRUE(torch::equal(rbk::language_model_loss(*m, x, y, false), plain));
}

// The evaluator's chunked default against its plain path (fp32 model, summation order only).
constexpr double kEvalRelTol = 1e-5;
TEST(Evaluator, ChunkedEqualsPlain) {
  for (const auto& k : kArchCases) {
    const auto c = arch_config(k.arch, k.tie);
    torch::manual_seed(10);
    auto m = rbk::make_language_model(c);
    rbk::TokenStream s;
    s.ids = torch::randint(c.vocab_size, {301}, torch::kInt64);
    s.n_bytes = 900;
    s.source = "synthetic";
    const auto plain = rbk::evaluate_language_model(*m, s, 3, 11, rbk::BatchLayout::Correct, torch::kCPU, "fp32", 0);
    const auto chunked = rbk::evaluate_language_model(*m, s, 3, 11, rbk::BatchLayout::Correct);
    const auto chunk1 = rbk::evaluate_language_model(*m, s, 3, 11, rbk::BatchLayout::Correct, torch::kCPU, "fp32", 1);
    EXPECT_EQ(chunked.tokens, plain.tokens);
    EXPECT_NEAR(chunked.mean_nll, plain.mean_nll, kEvalRelTol * plain.mean_nll) << k.arch;
    EXPECT_NEAR(chunk1.mean_nll, plain.mean_nll, kEvalRelTol * plain.mean_nll) << k.arch;
    EXPECT_NEAR(chunked.bits_per_byte, plain.bits_per_byte, kEvalRelTol * plain.bits_per_byte) << k.arch;
  }
}

}  // namespace
