// Trainer and evaluator (claim C05): exact resume from a checkpoint on the CPU, divergence
// recorded as a status, the learning-rate schedule, the PoC batching and layout bug, and the
// count-based references against hand-computed values.
#include "rbk/results.h"
#include "rbk/corpus.h"
#include "rbk/evaluator.h"
#include "rbk/tokenizer.h"
#include "rbk/trainer.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace {
namespace fs = std::filesystem;

struct Data {
  rbk::WordTokenizer tok;
  rbk::TokenStream train, valid;
};

Data sample() {
  const std::string dir = std::string(RBK_TEST_DATA_DIR) + "/sotu_sample";
  auto text = rbk::read_corpus(rbk::find_split_file(dir, "train"));
  Data d{rbk::WordTokenizer::build(text.lines, 0), {}, {}};
  d.train = rbk::load_token_stream(rbk::find_split_file(dir, "train"), d.tok, "");
  d.valid = rbk::load_token_stream(rbk::find_split_file(dir, "valid"), d.tok, "");
  return d;
}

rbk::LmConfig small_model(int64_t V) {
  rbk::LmConfig c;
  c.vocab_size = V;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_seq = 16;
  c.num_experts = 2;
  c.block = "poc";
  c.router = "gumbel_hard";  // random routing: the resume must restore the RNG too
  c.dropout = 0.1;
  return c;
}

rbk::TrainOptions small_opts() {
  rbk::TrainOptions o;
  o.batch_size = 4;
  o.seq_len = 16;
  o.epochs = 5;
  o.max_steps = 40;  // stops inside epoch 4: the partial-epoch path is exercised too
  o.lr = 5e-3;
  o.schedule = "cosine";
  o.warmup_steps = 5;
  o.grad_accum = 2;
  o.seed = 123;
  o.log_every = 0;
  return o;
}

TEST(Trainer, ResumeGivesBitIdenticalLosses) {
  auto d = sample();
  const auto dir = fs::temp_directory_path() / ("rbk_resume_" + std::to_string(::getpid()));
  rbk::remove_directory_tree(dir.string());
  auto o = small_opts();
  torch::manual_seed(1);
  auto a = rbk::make_language_model(small_model(d.tok.vocab_size()));
  auto ra = rbk::train_language_model(*a, d.train.ids, o);
  ASSERT_EQ(ra.status, "ok");

  torch::manual_seed(1);
  auto b = rbk::make_language_model(small_model(d.tok.vocab_size()));
  o.checkpoint_path = (dir / "ck.pt").string();
  o.stop_after_steps = 17;
  auto rb1 = rbk::train_language_model(*b, d.train.ids, o);
  ASSERT_EQ(rb1.status, "stopped");
  ASSERT_EQ(rb1.steps, 17);
  // A fresh model with different initial weights: everything must come from the checkpoint.
  torch::manual_seed(999);
  auto c = rbk::make_language_model(small_model(d.tok.vocab_size()));
  torch::rand({1000});  // disturb the global RNG
  o.stop_after_steps = 0;
  auto rb = rbk::train_language_model(*c, d.train.ids, o);
  ASSERT_EQ(rb.status, "ok");
  ASSERT_EQ(ra.step_losses.size(), rb.step_losses.size());
  int differ = 0;
  for (size_t i = 0; i < ra.step_losses.size(); ++i) {
    if (i % 8 == 0 || ra.step_losses[i] != rb.step_losses[i])
      std::printf("step %2zu straight %.17g resumed %.17g\n", i + 1, ra.step_losses[i], rb.step_losses[i]);
    differ += ra.step_losses[i] != rb.step_losses[i];
  }
  EXPECT_EQ(differ, 0);
  for (size_t e = 0; e < ra.epochs.size(); ++e) EXPECT_EQ(ra.epochs[e].mean_loss, rb.epochs[e].mean_loss);
  // The losses must actually move (a trainer that does nothing would also "resume exactly").
  std::printf("first %.4f last %.4f\n", ra.step_losses.front(), ra.step_losses.back());
  EXPECT_LT(ra.step_losses.back(), ra.step_losses.front() - 0.3);
  auto meta = rbk::read_checkpoint_meta(o.checkpoint_path);
  EXPECT_EQ(meta.at("model_config"), small_model(d.tok.vocab_size()).to_json());
  auto loaded = rbk::load_model_from_checkpoint(o.checkpoint_path);
  auto ev1 = rbk::evaluate_language_model(*c, d.valid, 4, 16, rbk::BatchLayout::Correct);
  auto ev2 = rbk::evaluate_language_model(*loaded, d.valid, 4, 16, rbk::BatchLayout::Correct);
  std::printf("valid PPL trained %.3f, reloaded %.3f\n", ev1.ppl, ev2.ppl);
  EXPECT_EQ(ev1.mean_nll, ev2.mean_nll);
  rbk::remove_directory_tree(dir.string());
}

TEST(Trainer, DivergenceIsAStatusNotACrash) {
  auto d = sample();
  auto o = small_opts();
  o.epochs = 10;
  o.max_steps = 80;
  o.spike_factor = 0.5;  // any loss above half its running mean counts as a spike
  torch::manual_seed(1);
  auto m = rbk::make_language_model(small_model(d.tok.vocab_size()));
  auto r = rbk::train_language_model(*m, d.train.ids, o);
  std::printf("status %s: %s\n", r.status.c_str(), r.message.c_str());
  EXPECT_EQ(r.status, "diverged");
  EXPECT_EQ(r.steps, 50);
  EXPECT_NE(r.message.find("spike"), std::string::npos);
}

TEST(Trainer, CosineScheduleEndpoints) {
  rbk::TrainOptions o;
  o.lr = 1e-3; o.schedule = "cosine"; o.warmup_steps = 10; o.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(rbk::scheduled_lr(o, 0, 110), 1e-4);
  EXPECT_DOUBLE_EQ(rbk::scheduled_lr(o, 9, 110), 1e-3);
  EXPECT_NEAR(rbk::scheduled_lr(o, 10, 110), 1e-3, 1e-15);
  EXPECT_NEAR(rbk::scheduled_lr(o, 60, 110), 0.55e-3, 1e-15);
  EXPECT_NEAR(rbk::scheduled_lr(o, 110, 110), 1e-4, 1e-15);
}

TEST(Batching, PocLayoutAndChunks) {
  auto ids = torch::arange(103, torch::kInt64);
  auto g = rbk::batchify(ids, 4);  // 25 columns; tokens 100..102 dropped
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{4, 25}));
  EXPECT_EQ(g[1][0].item<int64_t>(), 25);  // row b is a contiguous stream
  EXPECT_EQ(rbk::chunks_per_epoch(g, 8), 3);  // (25 - 1) / 8: inputs 0..23, targets 1..24
  EXPECT_EQ(rbk::chunks_per_epoch(g, 24), 1);
  EXPECT_EQ(rbk::chunks_per_epoch(g, 25), 0);
}

TEST(Evaluator, NgramReferencesByHand) {
  // train: a b a b c  (V = 4, id 3 unseen);  eval: a b d
  auto train = torch::tensor(std::vector<int64_t>{0, 1, 0, 1, 2});
  rbk::TokenStream ev{torch::tensor(std::vector<int64_t>{0, 1, 3}), 30, "hand"};
  auto u = rbk::unigram_reference(train, ev, 4);
  // p(b) = 3/9, p(d) = 1/9
  const double want_u = -(std::log(3.0 / 9) + std::log(1.0 / 9)) / 2;
  auto b = rbk::bigram_reference(train, ev, 4, 0.7);
  // p(b|a) = 1 (2 of 2), p(d|b) = 0: mixed with the unigram.
  const double want_b = -(std::log(0.7 * 1.0 + 0.3 * 3.0 / 9) + std::log(0.7 * 0.0 + 0.3 * 1.0 / 9)) / 2;
  std::printf("unigram nll %.12f want %.12f; bigram %.12f want %.12f; bpb %.6f\n", u.mean_nll, want_u, b.mean_nll, want_b,
              u.bits_per_byte);
  EXPECT_NEAR(u.mean_nll, want_u, 1e-12);
  EXPECT_NEAR(b.mean_nll, want_b, 1e-12);
  EXPECT_EQ(u.tokens, 2);
  // bits per byte: total bits over the scored share (2/3) of 30 bytes.
  EXPECT_NEAR(u.bits_per_byte, want_u * 2 / std::log(2.0) / 20.0, 1e-12);
}

TEST(Evaluator, UpstreamLayoutScoresTheSameTokens) {
  auto d = sample();
  torch::manual_seed(2);
  auto m = rbk::make_language_model(small_model(d.tok.vocab_size()));
  auto a = rbk::evaluate_language_model(*m, d.valid, 4, 16, rbk::BatchLayout::Correct);
  auto b = rbk::evaluate_language_model(*m, d.valid, 4, 16, rbk::BatchLayout::UpstreamTimeMajor);
  std::printf("untrained valid PPL correct %.2f, time-major %.2f, V %lld, tokens %lld/%lld\n", a.ppl, b.ppl,
              (long long)d.tok.vocab_size(), (long long)a.tokens, (long long)b.tokens);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_TRUE(std::isfinite(a.ppl) && std::isfinite(b.ppl));
  EXPECT_NE(a.mean_nll, b.mean_nll);  // the model sees different sequences
}

}  // namespace
