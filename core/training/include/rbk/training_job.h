// One training job (issue 17): the unit rbk_train runs once and the sweep runner runs per cell.
// Given the data, a model config, training options and a directory, it builds the model
// (vocabulary from the data), lets the caller adjust the fresh model (the sweep copies paired
// initial weights), trains (resuming from the directory's checkpoint when there is one),
// evaluates valid and test (PPL, bits per byte) and returns one JSON record. Failures are records
// too: a job never throws for a run that went wrong, only the status says so.
//
// Files in out_dir: model.pt (checkpoint: the trained model when the job is ok; a rerun resumes
// from it, or re-evaluates a finished run) and metrics.jsonl (the trainer's log: steps, valid
// curve, divergence).
//
// The record ("schema": "rbk.training_job/1"):
//   status        "ok" | "diverged" | "stopped" (TrainOptions::stop_after_steps) | "oom" | "error"
//   reason        why, for every status but ok ("" then); phase: build | train | evaluate
//   model, train, data        the options as run (data: LmData::summary())
//   parameters    {total, position_table, without_position_table}
//   steps, tokens, epochs, step_losses, valid_curve [{step, tokens, valid_loss, valid_ppl}]
//   divergence    the rule (DivergenceRule::to_json() + evaluated_on), divergence_step
//   valid, test   EvalResult::to_json() (ppl, bits_per_byte, ...) when ok, else null
//   tokens_per_second, train_seconds (all segments), seconds (this call), peak_memory
#pragma once
#include "rbk/lm_data.h"
#include "rbk/language_model.h"
#include "rbk/options.h"
#include "rbk/sweep.h"
#include "rbk/trainer.h"

#include <nlohmann/json.hpp>
#include <functional>
#include <string>

namespace rbk {

// Called once on a freshly initialised model, before training (not when resuming: the
// checkpoint's weights replace whatever it would set).
using ModelInitHook = std::function<void(LanguageModel&)>;

// model.vocab_size 0 takes the data's vocabulary (any other value must equal it). train's
// checkpoint_path and metrics_path are replaced by out_dir/model.pt and out_dir/metrics.jsonl;
// train.device is where the job runs. data must hold the train split, and valid and test (they
// are evaluated; train.eval_every > 0 reads valid during training).
nlohmann::json run_training_job(const LmData& data, const LmConfig& model, const TrainOptions& train,
                                const std::string& out_dir, const ModelInitHook& after_init = {});

// The same, loading the data first (token cache in out_dir/token_cache). A data problem
// (missing directory, malformed corpus) is an "error" record.
nlohmann::json run_training_job(const DataOptions& data, const LmConfig& model, const TrainOptions& train,
                                const std::string& out_dir, const ModelInitHook& after_init = {});

// The after-init hook of one cell of a paired LM sweep (apply_paired_init, sweep.h). When the
// seed's shared init is missing it is built from `reference` seeded with cell.seed, exactly as
// this job seeds its own fresh model. `adjust` (optional) then changes the copied weights (an arm
// whose own initialisation differs from the reference's, e.g. Prime-Bump) and notes it in the
// record; the record goes to cell_dir/paired.json.
ModelInitHook paired_init_hook(const SweepCell& cell, const std::string& sweep_dir, const std::string& cell_dir,
                               const LmConfig& reference,
                               std::function<void(LanguageModel&, nlohmann::json& record)> adjust = {});

// is_out_of_memory (an allocator's failure, recorded as status "oom") is in peak_memory.h.

// The checkpoint and metrics paths of a job directory.
std::string job_checkpoint_path(const std::string& out_dir);
std::string job_metrics_path(const std::string& out_dir);

}  // namespace rbk
