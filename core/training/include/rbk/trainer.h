// Language-model trainer (claim C05 and every later LM experiment): AdamW, constant or cosine
// schedule with linear warm-up, gradient clipping and accumulation, checkpoints with exact resume
// (on the CPU the same seed gives bit-identical losses after a resume), validation every K steps
// (the valid-PPL curve), the divergence rule of divergence.h recorded as a status, peak memory,
// a progress line (step, loss, tokens/s, ETA) and a JSON-lines metrics log.
//
// Batching follows the PoC (upstream-audit §2.1): the train stream is cut to a multiple of B and
// laid out as B contiguous streams (B, T/B); step i takes columns [iN, iN+N) as input and the next
// column range as target; incomplete final chunks are skipped; every epoch visits the chunks in
// order. layout "upstream_time_major" feeds the model the transpose (N, B), reproducing the PoC
// bug where BK-Core runs across the B unrelated streams (targets stay aligned, as upstream).
#pragma once
#include "rbk/corpus.h"
#include "rbk/divergence.h"
#include "rbk/lm_loss.h"
#include "rbk/language_model.h"
#include "rbk/peak_memory.h"
#include "rbk/torch_compat.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace rbk {

enum class BatchLayout { Correct, UpstreamTimeMajor };
BatchLayout parse_batch_layout(const std::string& s);  // "correct" | "upstream_time_major"
std::string to_string(BatchLayout l);

// (B, T/B) int64: stream trimmed to a multiple of B, row b = tokens [b T/B, (b+1) T/B).
torch::Tensor batchify(const torch::Tensor& ids, int64_t batch_size);  // ids (T,) int64
int64_t chunks_per_epoch(const torch::Tensor& grid, int64_t seq_len);   // grid (B, C)

struct TrainOptions {
  int64_t batch_size = 20;
  int64_t seq_len = 128;
  BatchLayout layout = BatchLayout::Correct;
  int64_t epochs = 3;
  int64_t max_steps = 0;           // > 0: stop after this many optimizer steps in total
  double lr = 1e-3;
  double weight_decay = 0.01;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::string schedule = "constant";  // "constant" | "cosine" (to min_lr_ratio * lr)
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.1;
  double clip_norm = 0.5;          // <= 0: off
  int64_t grad_accum = 1;          // micro-batches (chunks) per optimizer step
  // Legacy spike rule, kept beside the divergence rule below only because existing tests pin its
  // step: > 0: a training loss > spike_factor x EMA(loss) after 50 steps diverges. New presets
  // use divergence_factor / divergence_patience.
  double spike_factor = 0.0;
  // Divergence rule (divergence.h, defined once): a non-finite loss or gradient always diverges;
  // divergence_factor > 0 also diverges when the evaluated loss stays above divergence_factor x its
  // running minimum for divergence_patience consecutive evaluations.
  double divergence_factor = 0.0;
  int64_t divergence_patience = 3;
  // Validation during training: every eval_every optimizer steps (0 = never) the model is
  // evaluated on the first eval_tokens tokens of the validation stream (0 = all of it).
  int64_t eval_every = 0;
  int64_t eval_tokens = 0;
  // Memory: per-block activation recompute (block_checkpoint.h), and the head + cross-entropy in
  // chunks of loss_chunk_tokens tokens (lm_loss.h; 0 = the plain full-logits path). Chunked is
  // the default: never holding the (B*N x V) logits made a PoC-size CPU step ~3x faster
  // (experiments/head_loss) and equals the plain loss to fp32 rounding (tests/lm/test_lm_loss.cpp).
  bool checkpoint_blocks = false;
  int64_t loss_chunk_tokens = kDefaultLossChunkTokens;
  uint64_t seed = 0;
  torch::Device device = torch::kCPU;
  std::string checkpoint_path;     // "" = no checkpoints
  int64_t checkpoint_every = 0;    // optimizer steps; 0 = only at the end of each epoch
  int64_t stop_after_steps = 0;    // > 0: checkpoint and return "stopped" there (tests, preemption)
  std::string metrics_path;        // JSON-lines log; "" = none
  int64_t log_every = 50;          // steps between progress lines / metric records
  std::string label;               // prefix of progress lines
  // "fp32" | "bf16": bf16 runs forward and loss under CUDA autocast (rbk::AutocastGuard); the
  // logits are cast to fp32 for the loss, parameters and AdamW state stay fp32. bf16 needs a
  // CUDA device: on the CPU it is an error naming this option (CPU autocast is not used).
  std::string precision = "fp32";
  // Optimizer steps between host reads of the losses (each read waits for the device). 0 = auto:
  // every step on the CPU (free there; divergence is caught before the optimizer step), log_every
  // (50 if that is 0) on CUDA, where a non-finite loss is then caught at the next read and reported
  // at the step where it first appeared.
  int64_t sync_every = 0;
};

// The training loss of one batch (language_model_loss) is declared in lm_loss.h.

// torch::nn::utils::clip_grad_norm_ (2-norm) without its host sync: the same arithmetic, and the
// total norm is returned as a 0-dim tensor on the device instead of a double.
torch::Tensor clip_grad_norm_no_sync(const std::vector<torch::Tensor>& params, double max_norm);

// Validates a precision option ("fp32" | "bf16"); returns true when it asks for CUDA autocast.
// Throws std::invalid_argument naming `option` for unknown values and for bf16 off CUDA.
bool wants_bf16_autocast(const std::string& precision, const torch::Device& device,
                         const std::string& option = "precision");

struct EpochStats {
  int64_t epoch = 0;        // 1-based
  int64_t steps = 0;        // optimizer steps in the epoch
  double mean_loss = 0.0;   // mean training CE over the epoch's micro-batches (nats)
  double train_ppl = 0.0;   // exp(mean_loss): the PoC's reported "Perplexity" (audit §2.1)
  double seconds = 0.0;
};

// One validation during training (TrainOptions::eval_every).
struct ValidPoint {
  int64_t step = 0;        // optimizer steps done when it was measured
  int64_t tokens = 0;      // training tokens seen by then
  double valid_loss = 0.0; // mean NLL (nats per token) on the first eval_tokens validation tokens
  double valid_ppl = 0.0;  // exp(valid_loss)
  nlohmann::json to_json() const;
};

struct TrainResult {
  std::string status = "ok";  // "ok" | "diverged" | "stopped"
  std::string message;
  int64_t steps = 0;
  int64_t tokens = 0;                // training tokens consumed (all segments of a resumed run)
  std::vector<EpochStats> epochs;
  std::vector<double> step_losses;  // one per optimizer step (mean over its micro-batches)
  std::vector<ValidPoint> valid_curve;
  double seconds = 0.0;              // wall time of training, validation included
  double eval_seconds = 0.0;         // of which validation during training
  double tokens_per_second = 0.0;    // tokens / (seconds - eval_seconds)
  // The divergence rule applied (DivergenceRule::to_json() plus "evaluated_on": "valid" when the
  // loss-rise rule reads the validation curve, "train_step" when it reads every step's training
  // loss, and "legacy_spike_factor" when that rule was on).
  nlohmann::json divergence;
  int64_t divergence_step = -1;      // optimizer step (1-based) that diverged, -1 otherwise
  // Peak over every segment of a resumed run (the maximum of the checkpointed and current peaks).
  PeakMemory peak_memory;
  // step_losses are left out (one per step; callers that want them write them themselves).
  nlohmann::json to_json() const;
};

// Trains in place. Seeds torch with opt.seed at the start of a fresh run; a run resumes from
// opt.checkpoint_path when that file exists (and its model config matches). extra_meta is stored
// in the checkpoint (e.g. the tokenizer) and returned by read_checkpoint_meta.
// valid: the validation stream for opt.eval_every > 0 (required then, else unused). Validation
// restores the CPU generator afterwards, so the training losses do not depend on eval_every.
TrainResult train_language_model(LanguageModel& model, const torch::Tensor& train_ids,  // (T,) int64
                                 const TrainOptions& opt, const nlohmann::json& extra_meta = nlohmann::json::object(),
                                 const TokenStream* valid = nullptr);

// Checks the options train_language_model reads before it touches the model: throws
// std::invalid_argument naming the TrainOptions field, its value and what is allowed.
void validate_train_options(const TrainOptions& opt);

// The first n tokens of a stream (n = 0 or n >= length: all of it), its bytes attributed pro
// rata, so bits per byte stay meaningful on the prefix.
TokenStream token_stream_prefix(const TokenStream& s, int64_t n);

// Checkpoint files: model parameters, optimizer state, trainer state and RNG state in one
// torch archive, plus a JSON "meta" record (model config, trainer position, extra_meta).
// A file that is missing, empty, truncated or not such an archive throws CheckpointError with one
// line naming the file (never LibTorch's stack trace); tools turn it into exit 2.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
nlohmann::json read_checkpoint_meta(const std::string& path);
// Builds the model described by a checkpoint and loads its parameters (CheckpointError as above).
std::shared_ptr<LanguageModel> load_model_from_checkpoint(const std::string& path, torch::Device device = torch::kCPU);

// Learning rate at optimizer step s (0-based) of total_steps.
double scheduled_lr(const TrainOptions& opt, int64_t step, int64_t total_steps);

}  // namespace rbk
