// exp_lm_throughput's options and their cross-field checks, apart from the measurement (main.cpp)
// so that a unit test can read every GPU preset through them on a machine without a GPU: there
// run_experiment skips a GPU-only experiment (exit 77) before its body, where these checks run.
#pragma once
#include "rbk/config.h"
#include "rbk/experiment.h"
#include "rbk/lm_config.h"
#include "rbk/trainer.h"

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace lm_throughput {

// *_dense_moe, *_grouped_moe: the same ResNet-BK with model.moe_dispatch = dense or grouped (moe.h; issue 25).
extern const std::vector<std::string> kVariants;
extern const std::vector<std::string> kStepModes;

// Name, description, the option schema, GPU-only.
rbk::ExperimentSpec experiment_spec();

// What the run reads from its configuration, after the checks that span several keys: the
// reference model (arch resnet_bk, vocab_size given), train.seq_len = model.n_seq, the lengths
// ascending from model.n_seq, the fused loss only with the full logits (loss_chunk_tokens = 0), at
// least 2 warm-up steps with cuda_graph. device decides only whether bf16 is allowed. ConfigError
// names the keys.
struct CheckedInputs {
  rbk::LmConfig ref;
  rbk::TrainOptions train;
  std::vector<int64_t> lengths;
};
CheckedInputs checked_inputs(const rbk::Config& cfg, torch::Device device);

}  // namespace lm_throughput
