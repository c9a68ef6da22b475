#include "throughput_config.h"

#include "rbk/options.h"

#include <algorithm>

namespace lm_throughput {

const std::vector<std::string> kVariants{"resnet_bk_bidirectional", "resnet_bk_causal", "resnet_bk_bidirectional_dense_moe",
                                         "resnet_bk_causal_dense_moe", "resnet_bk_causal_grouped_moe", "transformer", "mamba", "rwkv"};
const std::vector<std::string> kStepModes{"eager", "eager_device_step", "cuda_graph"};

rbk::ExperimentSpec experiment_spec() {
  rbk::ExperimentSpec spec{"lm_throughput", {},
                           "Training tokens/s and peak memory of ResNet-BK (bidirectional, causal) and Transformer / "
                           "Mamba / RWKV baselines sized to the same parameter count (issue 7 performance target)",
                           {}};
  // model.*: the reference ResNet-BK (vocab_size = V of every model, random token ids; n_heads: the
  // Transformer baseline's heads). train.*: batch_size, seq_len (= model.n_seq here), lr,
  // weight_decay, beta1, beta2, eps, clip_norm, loss_chunk_tokens and precision (bf16: CUDA autocast,
  // the target's configuration) are used; the step loop is this program's, so the trainer's other
  // options are not.
  rbk::add_lm_config_options(spec.schema, "model.");
  rbk::add_train_options(spec.schema, "train.");
  spec.schema.add_string_list("variants", kVariants, "models to time")
      .add_string("loss_kernel", {"aten", "fused"}, "the loss: aten (language_model_loss, as the trainer) or fused "
                                                    "(the head and the fused softmax cross-entropy kernel: fused_cross_entropy.h; needs "
                                                    "train.loss_chunk_tokens = 0)")
      .add_string_list("step_modes", kStepModes, "how each model's step is issued (eager: the trainer's; eager_device_step, "
                                                 "cuda_graph: rbk::CapturedLmStep, eager or captured and replayed)")
      .add_real("size_tolerance", 0.0, 1.0, "baselines: |params / reference params - 1| must be <= this")
      .add_int("width_multiple", 1, 512, "baseline widths are searched over multiples of this")
      .add_int("warmup_steps", 0, 10000, "untimed training steps per model")
      .add_int("timed_steps", 1, 100000, "timed training steps per model")
      .add_int("phase_steps", 0, 100000, "steps after the timed ones with a synchronisation after each phase (0 = none)")
      .add_int("busy_steps", 0, 100000, "steps after the phase steps run under the profiler for the GPU busy fraction, after one profiled alone as the profiler's warm-up (0 = none)")
      .add_int("attribution_steps", 0, 1000, "eager steps after the final loss, profiled with the host's operators: the "
                                             "operator stacks that launch the step's kernels (0 = none)")
      .add_int_list("lengths", 1, 1 << 24, "sequence lengths timed, ascending, the first = model.n_seq (the tokens/s curve)")
      .add_int("threads", 0, 256, "CPU threads (0 = RBK_THREADS or all cores)")
      .add_string("device", {"auto", "cpu", "cuda"}, "where to train");
  // GPU-only (issue 16): the target is a CUDA measurement; the cpu preset's toy models only check
  // the pipeline (summary.is_target_configuration = false) and measure nothing a table uses, and
  // training every architecture on the CPU is covered by the unit tests (tests/lm, tests/baselines).
  spec.requires_cuda = true;

  return spec;
}

namespace {

std::vector<int64_t> checked_lengths(const rbk::Config& cfg, int64_t n_seq) {
  const std::vector<int64_t> lengths = cfg.get_int_list("lengths");
  if (lengths[0] != n_seq)
    throw rbk::ConfigError("lengths starts at " + std::to_string(lengths[0]) + "; expected model.n_seq = " +
                           std::to_string(n_seq) + " first (the length the baselines are sized at)");
  for (size_t i = 1; i < lengths.size(); ++i)
    if (lengths[i] <= lengths[i - 1])
      throw rbk::ConfigError("lengths: " + std::to_string(lengths[i]) + " follows " + std::to_string(lengths[i - 1]) +
                             "; expected ascending lengths");
  return lengths;
}

}  // namespace

CheckedInputs checked_inputs(const rbk::Config& cfg, torch::Device device) {
  CheckedInputs in;
  in.ref = rbk::lm_config_from(cfg, "model.");
  rbk::check_lm_config(in.ref, "model.", true);  // V comes from the preset here, not a tokenizer
  in.train = rbk::train_options_from(cfg, "train.", device);
  rbk::check_model_and_training(in.ref, in.train, "model.", "train.");
  if (in.train.seq_len != in.ref.n_seq)
    throw rbk::ConfigError("train.seq_len = " + std::to_string(in.train.seq_len) + " differs from model.n_seq = " +
                           std::to_string(in.ref.n_seq) + "; this experiment times steps of the full length: set both equal");
  if (in.ref.arch != "resnet_bk")
    throw rbk::ConfigError("model.arch = '" + in.ref.arch + "': the reference of this experiment is resnet_bk (the "
                           "baselines are sized to it); allowed: resnet_bk");
  in.lengths = checked_lengths(cfg, in.ref.n_seq);
  if (cfg.get_string("loss_kernel") == "fused" && in.train.loss_chunk_tokens > 0)
    throw rbk::ConfigError("loss_kernel = fused with train.loss_chunk_tokens = " + std::to_string(in.train.loss_chunk_tokens) +
                           ": the fused kernel takes the full logits; set train.loss_chunk_tokens = 0");
  const std::vector<std::string> modes = cfg.get_string_list("step_modes");
  if (std::find(modes.begin(), modes.end(), "cuda_graph") != modes.end() && cfg.get_int("warmup_steps") < 2)
    throw rbk::ConfigError("warmup_steps = " + std::to_string(cfg.get_int("warmup_steps")) +
                           " with step mode cuda_graph: expected >= 2 (eager warm-up steps before the capture, "
                           "then the first replay)");
  return in;
}

}  // namespace lm_throughput
