// The divergence rule of every training run (issue #17), defined once: the trainer applies it, the
// sweep runner records it beside each result, so a "diverged" cell always means the same thing.
//
//   1. A non-finite loss or gradient norm (NaN, +-Inf) diverges at once, whatever the parameters.
//   2. With factor > 0: an evaluated loss above factor x the running minimum of the evaluated
//      losses seen before it, for `patience` consecutive evaluations, diverges at the last of them.
//      A spike that falls back to <= factor x minimum before `patience` evaluations is forgiven.
//   factor = 0 turns rule 2 off (only non-finite values diverge).
//
// The fields mirror TrainOptions::divergence_factor / divergence_patience (trainer.h).
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <string>

namespace rbk {

struct DivergenceRule {
  double factor = 0.0;    // 0 = off, else >= 1: loss > factor x running minimum counts as "above"
  int64_t patience = 3;   // consecutive "above" evaluations that make a divergence (>= 1)

  // Throws std::invalid_argument naming the field, its value and what is allowed.
  void validate() const;
  // The rule in words and its parameters, for result files:
  //   {"rule": "...", "factor": f, "patience": k, "non_finite": "always diverges"}
  nlohmann::json to_json() const;
  // The rule in one sentence (also to_json()["rule"]).
  std::string describe() const;
};

// Applies a DivergenceRule to a run's sequence of evaluations. Once diverged it stays diverged
// (later observations are ignored, the first reason is kept).
class DivergenceMonitor {
 public:
  explicit DivergenceMonitor(DivergenceRule rule = {});

  // One evaluation of the loss at optimizer step `step`: applies rules 1 and 2. Returns diverged().
  bool observe(int64_t step, double loss);
  // The same, also checking the gradient norm of that step for non-finite values (rule 1).
  bool observe(int64_t step, double loss, double grad_norm);
  // Rule 1 only, for values that are not evaluations (every training step's loss and gradient
  // norm when rule 2 is applied to validation losses): does not touch the running minimum.
  bool check_finite(int64_t step, double loss, double grad_norm);

  bool diverged() const { return diverged_; }
  int64_t divergence_step() const { return divergence_step_; }  // -1 while not diverged
  // "step S: <why>", empty while not diverged.
  const std::string& reason() const { return reason_; }
  // Minimum of the finite evaluated losses so far (+inf before the first).
  double running_minimum() const { return running_min_; }
  // Consecutive evaluations above factor x minimum up to now (0 when the last one was not).
  int64_t consecutive_above() const { return consecutive_above_; }
  const DivergenceRule& rule() const { return rule_; }

  // Monitor state for checkpoints, so a resumed run continues the same count.
  nlohmann::json state_to_json() const;
  void load_state(const nlohmann::json& state);  // throws std::invalid_argument on a bad record

 private:
  void mark_diverged(int64_t step, const std::string& why);

  DivergenceRule rule_;
  double running_min_;
  int64_t consecutive_above_ = 0;
  int64_t first_above_step_ = -1;
  bool diverged_ = false;
  int64_t divergence_step_ = -1;
  std::string reason_;
};

}  // namespace rbk
