// The training job behind rbk_train and the sweep runner (issue 17): one record per job with the
// valid/test evaluation and the validation curve; a rerun of a finished job or a resumed job gives
// the same record; the init hook runs on fresh models only; failures are statuses (diverged,
// error), never exceptions; out-of-memory is recognised in both LibTorch generations' forms.
#include "rbk/lm_data.h"
#include "rbk/results.h"
#include "rbk/training_job.h"
#include "../lm/lm_test_support.h"

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <filesystem>

namespace {
namespace fs = std::filesystem;

rbk::DataOptions sample_data() {
  rbk::DataOptions d;
  d.data_dir = std::string(RBK_TEST_DATA_DIR) + "/sotu_sample";
  return d;
}

rbk::LmConfig tiny_model(const std::string& arch) {
  auto c = rbk::lm_test::tiny_config(arch);
  c.vocab_size = 0;  // from the data
  c.n_seq = 16;
  c.d_state = 4;
  c.dropout = 0.1;  // the resume must restore the random stream
  return c;
}

rbk::TrainOptions tiny_training() {
  rbk::TrainOptions o;
  o.batch_size = 4;
  o.seq_len = 16;
  o.epochs = 2;     // 21 steps per epoch on the sample: the cap stops inside epoch 2
  o.max_steps = 24;
  o.lr = 3e-3;
  o.eval_every = 6;
  o.eval_tokens = 256;
  o.log_every = 0;
  o.seed = 7;
  return o;
}

std::string scratch(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("rbk_job_" + name + "_" + std::to_string(::getpid()));
  rbk::remove_directory_tree(dir.string());
  return dir.string();
}

const rbk::LmData& data() {
  static const rbk::LmData d = rbk::load_lm_data(sample_data(), "", rbk::LmSplits::TrainValidTest);
  return d;
}

TEST(TrainingJob, RecordsEvaluationCurveAndResumesToTheSameRecord) {
  const auto dir_a = scratch("straight"), dir_b = scratch("resumed");
  int hook_calls = 0;
  auto hook = [&](rbk::LanguageModel&) { ++hook_calls; };
  const auto a = rbk::run_training_job(data(), tiny_model("resnet_bk"), tiny_training(), dir_a, hook);
  std::printf("straight: %s valid PPL %s curve %s\n", a.at("status").dump().c_str(), a.at("valid").at("ppl").dump().c_str(),
              a.at("valid_curve").dump().c_str());
  ASSERT_EQ(a.at("status"), "ok") << a.at("reason");
  EXPECT_EQ(hook_calls, 1);
  ASSERT_EQ(a.at("valid_curve").size(), 4u);  // steps 6, 12, 18, 24
  EXPECT_EQ(a.at("valid_curve")[3].at("step"), 24);
  EXPECT_EQ(a.at("valid_curve")[3].at("tokens"), 24 * 4 * 16);
  EXPECT_LT(a.at("valid_curve")[3].at("valid_loss").get<double>(), a.at("valid_curve")[0].at("valid_loss").get<double>());
  EXPECT_EQ(a.at("step_losses").size(), 24u);
  EXPECT_GT(a.at("test").at("bits_per_byte").get<double>(), 0.0);
  EXPECT_EQ(a.at("model").at("vocab_size"), data().vocab_size());
  EXPECT_TRUE(fs::exists(rbk::job_checkpoint_path(dir_a)));
  EXPECT_GT(a.at("peak_memory").at("cpu_peak_rss_bytes").get<int64_t>(), 0);

  // Stopped inside the run, then resumed: the same losses, curve and evaluation, bit for bit.
  auto o = tiny_training();
  o.stop_after_steps = 9;  // between two validations
  const auto b1 = rbk::run_training_job(data(), tiny_model("resnet_bk"), o, dir_b, hook);
  ASSERT_EQ(b1.at("status"), "stopped");
  EXPECT_EQ(b1.at("valid").is_null(), true);
  EXPECT_EQ(hook_calls, 2);
  const auto b = rbk::run_training_job(data(), tiny_model("resnet_bk"), tiny_training(), dir_b, hook);
  ASSERT_EQ(b.at("status"), "ok") << b.at("reason");
  EXPECT_EQ(hook_calls, 2);  // resumed: the checkpoint's weights, not the hook's
  EXPECT_EQ(a.at("step_losses"), b.at("step_losses"));
  EXPECT_EQ(a.at("valid_curve"), b.at("valid_curve"));
  EXPECT_EQ(a.at("valid"), b.at("valid"));
  EXPECT_EQ(a.at("test"), b.at("test"));

  // A finished job run again re-evaluates the checkpoint: the same record.
  const auto a2 = rbk::run_training_job(data(), tiny_model("resnet_bk"), tiny_training(), dir_a, hook);
  ASSERT_EQ(a2.at("status"), "ok");
  EXPECT_EQ(a.at("valid"), a2.at("valid"));
  EXPECT_EQ(a.at("step_losses"), a2.at("step_losses"));
  rbk::remove_directory_tree(dir_a);
  rbk::remove_directory_tree(dir_b);
}

TEST(TrainingJob, HookSetsTheInitialWeights) {
  // Jobs of different seeds whose hook writes the same weights train identically (no dropout, so
  // the seed only draws the initialisation): what the sweep's paired designs rely on.
  auto model = tiny_model("transformer");
  model.dropout = 0.0;
  model.vocab_size = data().vocab_size();
  torch::manual_seed(3);
  auto ref = rbk::make_language_model(model);
  auto copy_ref = [&](rbk::LanguageModel& m) {
    torch::NoGradGuard ng;
    auto dst = m.named_parameters();
    for (const auto& p : ref->named_parameters()) dst[p.key()].copy_(p.value());
  };
  auto o = tiny_training();
  o.eval_every = 0;
  o.max_steps = 5;
  auto run = [&](uint64_t seed, const rbk::ModelInitHook& hook) {
    auto oo = o;
    oo.seed = seed;
    const auto dir = scratch("hook" + std::to_string(seed) + (hook ? "h" : ""));
    auto r = rbk::run_training_job(data(), model, oo, dir, hook);
    rbk::remove_directory_tree(dir);
    EXPECT_EQ(r.at("status"), "ok") << r.at("reason");
    return r.at("step_losses");
  };
  const auto a = run(1, copy_ref), b = run(2, copy_ref), c = run(2, nullptr);
  std::printf("hook seed 1 %s\nhook seed 2 %s\nno hook seed 2 %s\n", a.dump().c_str(), b.dump().c_str(), c.dump().c_str());
  EXPECT_EQ(a, b);
  EXPECT_NE(b, c);
}

TEST(TrainingJob, FailuresAreRecordsNotExceptions) {
  auto model = tiny_model("resnet_bk");
  model.vocab_size = 12345;  // not the data's vocabulary
  const auto dir = scratch("error");
  const auto e = rbk::run_training_job(data(), model, tiny_training(), dir);
  std::printf("%s: %s\n", e.at("status").dump().c_str(), e.at("reason").dump().c_str());
  EXPECT_EQ(e.at("status"), "error");
  EXPECT_NE(e.at("reason").get<std::string>().find("model.vocab_size"), std::string::npos);
  EXPECT_EQ(e.at("phase"), "build");

  // A learning rate far too large, and the loss-rise rule on every step's training loss.
  auto o = tiny_training();
  o.lr = 10.0;
  o.clip_norm = 0.0;
  o.eval_every = 0;
  o.divergence_factor = 1.5;
  o.divergence_patience = 2;
  const auto d = rbk::run_training_job(data(), tiny_model("resnet_bk"), o, dir);
  std::printf("%s: %s\n", d.at("status").dump().c_str(), d.at("reason").dump().c_str());
  EXPECT_EQ(d.at("status"), "diverged");
  EXPECT_GT(d.at("divergence_step").get<int64_t>(), 0);
  EXPECT_EQ(d.at("divergence").at("factor"), 1.5);
  EXPECT_EQ(d.at("divergence").at("evaluated_on"), "train_step");
  EXPECT_TRUE(d.at("valid").is_null());

  auto bad = sample_data();
  bad.data_dir = "/nonexistent/corpus";
  const auto m = rbk::run_training_job(bad, tiny_model("resnet_bk"), tiny_training(), dir);
  EXPECT_EQ(m.at("status"), "error");
  EXPECT_EQ(m.at("phase"), "data");
  EXPECT_NE(m.at("reason").get<std::string>().find("data.data_dir"), std::string::npos);
  rbk::remove_directory_tree(dir);
}

TEST(TrainingJob, OutOfMemoryIsRecognised) {
  const c10::SourceLocation here{__func__, __FILE__, static_cast<uint32_t>(__LINE__)};
  EXPECT_TRUE(rbk::is_out_of_memory(c10::OutOfMemoryError(here, "CUDA out of memory. Tried to allocate 2.00 GiB")));
  EXPECT_TRUE(rbk::is_out_of_memory(c10::Error(here, "CUDA out of memory. Tried to allocate 2.00 GiB")));  // 1.13
  EXPECT_TRUE(rbk::is_out_of_memory(c10::Error(here, "DefaultCPUAllocator: can't allocate memory: you tried ...")));
  EXPECT_TRUE(rbk::is_out_of_memory(std::bad_alloc()));
  EXPECT_FALSE(rbk::is_out_of_memory(c10::Error(here, "shape mismatch")));
  EXPECT_FALSE(rbk::is_out_of_memory(std::runtime_error("out of memory")));  // not an allocator's
}

}  // namespace
