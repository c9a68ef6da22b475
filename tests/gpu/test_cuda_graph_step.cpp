// A training step captured in a CUDA graph and replayed (rbk::CapturedLmStep, issue 25) against the
// same step issued operator by operator, on the GPU, for the two models exp_lm_throughput compares
// (ResNet-BK causal with the dense MoE dispatch, and the Transformer; ResNet-BK also with the fused
// loss), bf16 autocast as there.
// Three runs from one initialisation: A eager, G captured then replayed, C eager on the batches
// shifted by one. Pass: G's parameters are within 1 % of C's distance from A (a replay that reused
// the captured batch or the captured step's bias corrections would be as far off as C or further),
// and G's losses equal A's within bf16 rounding. Skipped without a CUDA device.
#include "rbk/captured_lm_step.h"
#include "rbk/torch_compat_cuda_graph.h"

#include <gtest/gtest.h>

#include "../lm/lm_test_support.h"
#include "gpu_test_support.h"

#include <cstdio>
#include <string>
#include <vector>

namespace {

constexpr int kWarmup = 2, kSteps = 5;

struct Run {
  std::vector<double> losses;
  std::vector<torch::Tensor> params;
};

Run run(const rbk::LmConfig& c, uint64_t seed, const torch::Tensor& batches, int shift, bool graph, bool fused_loss) {
  const torch::Device cuda(torch::kCUDA, 0);
  torch::manual_seed(seed);
  auto model = rbk::make_language_model(c);
  model->to(cuda);
  model->train();
  rbk::TrainOptions t;
  t.lr = 1e-3;
  t.weight_decay = 0.01;
  t.clip_norm = 1.0;
  if (fused_loss) t.loss_chunk_tokens = 0;  // the fused kernel takes the full logits (the default chunks them)
  rbk::CapturedLmStep step(*model, t, /*bf16=*/true, batches.size(1), c.n_seq, fused_loss);
  Run r;
  if (graph) {
    step.capture(batches.narrow(0, 0, kWarmup));
  } else {
    for (int i = 0; i < kWarmup; ++i) step.run_eager(batches[i]);
  }
  for (int s = kWarmup; s < kWarmup + kSteps; ++s) {
    if (graph) step.run_captured(batches[s + shift]);
    else step.run_eager(batches[s + shift]);
    r.losses.push_back(step.loss().item<double>());
  }
  EXPECT_EQ(step.optimizer().steps_taken(), kWarmup + kSteps);
  for (const auto& p : model->parameters()) r.params.push_back(p.detach().clone());
  return r;
}

double max_distance(const Run& a, const Run& b) {
  double worst = 0;
  for (size_t i = 0; i < a.params.size(); ++i) worst = std::max(worst, (a.params[i] - b.params[i]).abs().max().item<double>());
  return worst;
}

void check_graph_equals_eager(rbk::LmConfig c, bool fused_loss = false) {
  if (!rbk::cuda_graphs_available()) GTEST_SKIP() << "no CUDA device (or no CUDA in this LibTorch)";
  const uint64_t seed = rbk::gpu_test::fresh_seed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  torch::manual_seed(seed + 1);
  const auto batches = torch::randint(c.vocab_size, {kWarmup + kSteps + 1, 4, c.n_seq + 1},
                                      torch::TensorOptions().dtype(torch::kInt64).device(torch::kCUDA, 0));
  const Run a = run(c, seed, batches, 0, false, fused_loss);
  const Run g = run(c, seed, batches, 0, true, fused_loss);
  const Run shifted = run(c, seed, batches, 1, false, fused_loss);
  const double d_graph = max_distance(a, g), d_shifted = max_distance(a, shifted);
  std::printf("%s: max |param| difference: captured %.3g, shifted batches %.3g\n", c.arch.c_str(), d_graph, d_shifted);
  EXPECT_GT(d_shifted, 0.0);
  EXPECT_LE(d_graph, 0.01 * d_shifted);
  // bf16 logits: the loss is a mean over 4 x N tokens of values rounded to ~3 digits.
  for (int s = 0; s < kSteps; ++s) EXPECT_NEAR(g.losses[s], a.losses[s], 1e-3 * std::abs(a.losses[s])) << "step " << s;
}

// The unit tests' tiny model, wider and longer so that the GPU kernels see real tiles.
rbk::LmConfig small(const std::string& arch) {
  rbk::LmConfig c = rbk::lm_test::tiny_config(arch);
  c.vocab_size = 512;
  c.d_model = 64;
  c.n_seq = 128;
  c.moe_dispatch = "dense";
  c.bk_context = "causal";
  return c;
}

TEST(CudaGraphStep, ResNetBkDenseMoeReplayEqualsEager) { check_graph_equals_eager(small("resnet_bk")); }
TEST(CudaGraphStep, ResNetBkGroupedMoeReplayEqualsEager) {
  auto c = small("resnet_bk");
  c.moe_dispatch = "grouped";
  check_graph_equals_eager(c);
}
TEST(CudaGraphStep, TransformerReplayEqualsEager) { check_graph_equals_eager(small("transformer")); }
// The fused softmax cross-entropy (fused_cross_entropy.h) inside the captured step.
TEST(CudaGraphStep, ResNetBkFusedLossReplayEqualsEager) { check_graph_equals_eager(small("resnet_bk"), true); }

}  // namespace
