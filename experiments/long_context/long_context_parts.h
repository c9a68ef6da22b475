// The pieces of exp_long_context besides the keyed summary: the rows (model configurations), the
// probe cells and the C19 measurement at N = 4096 (issue 19).
#pragma once
#include "rbk/config.h"
#include "rbk/context_probes.h"
#include "rbk/language_model.h"
#include "rbk/sweep.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace rbk::long_context {

// Rows of the sweep:
//   bk           ResNet-BK, causal context, stable BK-Core, exact gradient (corrected; the method as described)
//   bk_compat    ResNet-BK as the authors ran it: paper-time compat forward, hybrid gradient,
//                bidirectional context, learned positions (compat; leak: sees its targets)
//   mamba, transformer, rwkv   baselines (transformer position: the preset's transformer_position)
const std::vector<std::string>& row_choices();
// Whether a row's held-out PPL is a language-model number (false: the bidirectional compat row).
bool held_out_meaningful(const std::string& row);
// base with the row's architecture, BK options and position mode; vocab_size and n_seq unchanged.
LmConfig row_config(const std::string& row, const LmConfig& base, const std::string& bk_position,
                    const std::string& transformer_position);
// The row's configuration at vocabulary V, width chosen by size_to_parameter_count to budget
// parameters (sized at n_seq 16, i.e. the position table left out; the training job reports the
// count with and without it). ConfigError naming budget_key when no width fits.
LmConfig sized_row_config(const std::string& row, const LmConfig& base, const std::string& bk_position,
                          const std::string& transformer_position, int64_t vocab_size, int64_t budget,
                          double tolerance, const std::string& budget_key);

// Why a (row, N) cell is not run, or "" when it is: the attention row past attention_max_len
// (dense N x N scores; the projected bytes of one layer's scores are in the message) and the
// compat row past compat_max_len (the paper-time recursion is a scalar loop of 2N steps per
// call). batch = tokens_per_step / N.
// The mamba and rwkv rows past scan_max_len are skipped for time (their reference scans are
// sequential in N over a batch that shrinks as 1/N); the sweep adds the projected time.
std::string skip_reason(const std::string& row, int64_t n, int64_t batch, const LmConfig& config, int64_t attention_max_len,
                        int64_t compat_max_len, int64_t scan_max_len);

// ---- Probes ------------------------------------------------------------------------------------
struct ProbeSettings {
  std::vector<std::string> rows;
  std::vector<std::string> kinds;        // passkey, assoc_recall
  std::vector<int64_t> train_lengths;
  std::vector<int64_t> eval_multipliers; // evaluated at N * m
  std::vector<double> depths;            // passkey depths evaluated separately
  ProbeSpec base;                        // vocabulary, pairs, queries
  ProbeTrainOptions train;
  int64_t eval_batch_size = 64;
  int64_t param_budget = 0;
  double size_tolerance = 0.05;
  int64_t attention_max_len = 0, compat_max_len = 0, scan_max_len = 0;
  std::string bk_position, transformer_position;
  LmConfig base_model;
};
// The probe sweep's grid: arms <row>_<probe>_n<N> (rows x kinds x train_lengths).
SweepGrid probe_grid(const ProbeSettings& s, const std::vector<uint64_t>& seeds);
// One probe cell: trains the row's model at N on fresh batches, evaluates at N * m (a uniform-depth
// batch and, for passkey, one batch per depth), with eval seeds disjoint from the training seeds.
// Outcome metrics: acc_eval<M>, acc_eval<M>_depth<100 d>, final_loss; details: train record,
// parameters, chance accuracy, evaluations skipped (with reason).
nlohmann::json run_probe_cell(const ProbeSettings& s, const SweepCell& cell);

// ---- C19 at N = 4096 ---------------------------------------------------------------------------
struct C19Settings {
  int64_t seq_len = 4096;
  int64_t batch_size = 2;
  int64_t repeats = 3;
  std::vector<std::string> precisions;  // fp32, bf16 (bf16: CUDA only)
  std::vector<std::string> attention;   // math (dense N x N), fused (SDPA's flash / memory-efficient: CUDA only)
  uint64_t seed = 0;
};
// Forward time (median ms, no grad), training step time and tokens/s (AdamW step, median), peak
// memory of the forward and of a training step, for the bk model and the Transformer per
// attention kernel and precision. One row per measurement; summary keys under c19/ and
// bk_over_attention_memory_n4096 (training-step peak, fp32, bk / math attention).
void measure_c19(const C19Settings& s, const LmConfig& bk, const LmConfig& attention, torch::Device device,
                 nlohmann::json& rows, nlohmann::json& summary);

}  // namespace rbk::long_context
