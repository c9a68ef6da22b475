// exp_lm_throughput's GPU configurations through its cross-field checks (throughput_config.h), on
// any machine: each preset with the overrides of a scripts/run_device.sh stage is accepted, and a
// bad combination is a ConfigError naming its keys (so the test can fail).
#include "throughput_config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

lm_throughput::CheckedInputs read(const std::string& preset, const std::vector<std::string>& overrides) {
  rbk::ExperimentSpec spec = lm_throughput::experiment_spec();
  spec.schema.add_int("seed", 0, 2147483647, "the key run_experiment adds to every schema");
  const rbk::Config cfg = rbk::load_config(spec.schema, rbk::preset_path("lm_throughput", preset), preset, overrides);
  return lm_throughput::checked_inputs(cfg, torch::Device(torch::kCUDA));
}

std::string error_of(const std::string& preset, const std::vector<std::string>& overrides) {
  try {
    read(preset, overrides);
  } catch (const rbk::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(LmThroughputConfig, EveryRunDeviceStageConfigurationIsAccepted) {
  // The stages lm_throughput, _fp32, _chunked_loss, _fused_loss, _lengths, _lengths_fused.
  const std::vector<std::pair<std::string, std::vector<std::string>>> stages{
      {"gpu", {}},
      {"gpu", {"train.precision=fp32"}},
      {"gpu", {"train.loss_chunk_tokens=8192"}},
      {"gpu", {"loss_kernel=fused"}},
      {"gpu_lengths", {}},
      {"gpu_lengths", {"loss_kernel=fused", "train.loss_chunk_tokens=0"}},
      // NOTES, session 23: the next length curve (LM_THROUGHPUT_ARGS on lm_throughput_lengths_fused).
      {"gpu_lengths", {"loss_kernel=fused", "train.loss_chunk_tokens=0", "step_modes=cuda_graph",
                       "variants=resnet_bk_causal_dense_moe,transformer,mamba"}}};
  for (const auto& [preset, overrides] : stages) {
    SCOPED_TRACE(preset + " with " + std::to_string(overrides.size()) + " overrides");
    const auto in = read(preset, overrides);
    EXPECT_EQ(in.ref.arch, "resnet_bk");
    EXPECT_EQ(in.lengths.front(), in.ref.n_seq);
  }
}

TEST(LmThroughputConfig, BadCombinationsNameTheirKeys) {
  const std::string fused_chunked = error_of("gpu", {"loss_kernel=fused", "train.loss_chunk_tokens=8192"});
  EXPECT_NE(fused_chunked.find("train.loss_chunk_tokens"), std::string::npos) << "'" << fused_chunked << "'";
  const std::string graph_warmup = error_of("gpu", {"warmup_steps=1"});  // the gpu preset runs cuda_graph
  EXPECT_NE(graph_warmup.find("warmup_steps = 1"), std::string::npos) << "'" << graph_warmup << "'";
  const std::string lengths = error_of("gpu", {"lengths=[4096]"});
  EXPECT_NE(lengths.find("expected model.n_seq"), std::string::npos) << "'" << lengths << "'";
  const std::string seq_len = error_of("gpu", {"train.seq_len=1024"});
  EXPECT_NE(seq_len.find("train.seq_len = 1024"), std::string::npos) << "'" << seq_len << "'";
}

}  // namespace
