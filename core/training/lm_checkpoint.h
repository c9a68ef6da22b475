// Checkpoint files of the LM trainer (private to core/training: trainer.cpp and lm_checkpoint.cpp).
// One torch archive holds the model parameters, the AdamW state, the CPU generator state, the
// step losses and a JSON "meta" record with the model config, the trainer position (TrainState)
// and the caller's extra record. Written to <path>.tmp and renamed, so a kill never leaves half a
// checkpoint under the real name.
#pragma once
#include "rbk/trainer.h"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rbk {
namespace detail {

// Trainer position saved in checkpoints.
struct TrainState {
  int64_t epoch = 0, chunk = 0, step = 0;
  double epoch_loss_sum = 0.0;
  int64_t epoch_micro = 0, epoch_steps = 0;
  double epoch_seconds = 0.0, total_seconds = 0.0, ema = 0.0;
  int64_t tokens = 0;
  std::vector<EpochStats> epochs;
  std::vector<double> step_losses;
  double eval_seconds = 0.0;          // validation time inside total_seconds
  std::vector<ValidPoint> valid_curve;
  nlohmann::json divergence_state;    // DivergenceMonitor::state_to_json()
  PeakMemory peak;                    // peak of the segments before this one (resume)
};

nlohmann::json epoch_json(const EpochStats& e);

// Writes the checkpoint atomically; creates the parent directory.
void save_checkpoint(const std::string& path, LanguageModel& model, torch::optim::Optimizer& optim, const TrainState& st,
                     const nlohmann::json& extra);
// Restores model, optimizer, CPU generator and st. A model config that differs from the
// checkpoint's is a std::runtime_error; an unreadable file a CheckpointError.
void load_checkpoint(const std::string& path, LanguageModel& model, torch::optim::Optimizer& optim, TrainState& st,
                     torch::Device device);

}  // namespace detail
}  // namespace rbk
