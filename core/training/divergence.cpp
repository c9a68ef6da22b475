// The divergence rule (divergence.h): non-finite values always diverge; with factor > 0, a loss
// above factor x the running minimum for `patience` consecutive evaluations diverges.
#include "rbk/divergence.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace rbk {

namespace {

std::string format_number(double v) {
  std::ostringstream s;
  s.precision(6);
  s << v;
  return s.str();
}

}  // namespace

void DivergenceRule::validate() const {
  // factor in (0, 1) would call a run that merely holds its minimum "above"; it is a typo.
  if (!std::isfinite(factor) || factor < 0.0 || (factor > 0.0 && factor < 1.0))
    throw std::invalid_argument("divergence factor: got " + format_number(factor) +
                                ", expected 0 (off) or a finite number >= 1");
  if (patience < 1)
    throw std::invalid_argument("divergence patience: got " + std::to_string(patience) +
                                ", expected an integer >= 1");
}

std::string DivergenceRule::describe() const {
  std::string text = "a non-finite loss or gradient norm diverges at once";
  if (factor > 0.0) {
    text += "; an evaluated loss above " + format_number(factor) +
            " x the running minimum of the earlier evaluated losses for " + std::to_string(patience) +
            " consecutive evaluations diverges at the last of them";
  } else {
    text += "; the loss-rise rule is off (factor 0)";
  }
  return text;
}

nlohmann::json DivergenceRule::to_json() const {
  return {{"rule", describe()},
          {"factor", factor},
          {"patience", patience},
          {"non_finite", "always diverges"}};
}

DivergenceMonitor::DivergenceMonitor(DivergenceRule rule)
    : rule_(rule), running_min_(std::numeric_limits<double>::infinity()) {
  rule_.validate();
}

void DivergenceMonitor::mark_diverged(int64_t step, const std::string& why) {
  diverged_ = true;
  divergence_step_ = step;
  reason_ = "step " + std::to_string(step) + ": " + why;
}

bool DivergenceMonitor::check_finite(int64_t step, double loss, double grad_norm) {
  if (diverged_) return true;
  if (!std::isfinite(loss)) {
    mark_diverged(step, "non-finite loss (" + format_number(loss) + ")");
  } else if (!std::isfinite(grad_norm)) {
    mark_diverged(step, "non-finite gradient norm (" + format_number(grad_norm) + ")");
  }
  return diverged_;
}

bool DivergenceMonitor::observe(int64_t step, double loss, double grad_norm) {
  if (check_finite(step, loss, grad_norm)) return true;
  return observe(step, loss);
}

bool DivergenceMonitor::observe(int64_t step, double loss) {
  if (diverged_) return true;
  if (!std::isfinite(loss)) {
    mark_diverged(step, "non-finite loss (" + format_number(loss) + ")");
    return true;
  }
  // The comparison is against the minimum of the evaluations *before* this one, so a new minimum
  // is never "above" itself; the minimum is then updated (rising losses leave it unchanged).
  const bool have_minimum = std::isfinite(running_min_);
  if (rule_.factor > 0.0 && have_minimum && loss > rule_.factor * running_min_) {
    if (consecutive_above_ == 0) first_above_step_ = step;
    ++consecutive_above_;
    if (consecutive_above_ >= rule_.patience) {
      mark_diverged(step, "loss " + format_number(loss) + " above " + format_number(rule_.factor) +
                              " x running minimum " + format_number(running_min_) + " for " +
                              std::to_string(consecutive_above_) + " consecutive evaluations (since step " +
                              std::to_string(first_above_step_) + ")");
      return true;
    }
  } else {
    consecutive_above_ = 0;
    first_above_step_ = -1;
  }
  if (loss < running_min_) running_min_ = loss;
  return false;
}

nlohmann::json DivergenceMonitor::state_to_json() const {
  nlohmann::json s{{"consecutive_above", consecutive_above_},
                   {"first_above_step", first_above_step_},
                   {"diverged", diverged_},
                   {"divergence_step", divergence_step_},
                   {"reason", reason_}};
  // JSON has no infinity: "no evaluation yet" is null.
  s["running_minimum"] = std::isfinite(running_min_) ? nlohmann::json(running_min_) : nlohmann::json(nullptr);
  return s;
}

void DivergenceMonitor::load_state(const nlohmann::json& state) {
  try {
    const auto& m = state.at("running_minimum");
    running_min_ = m.is_null() ? std::numeric_limits<double>::infinity() : m.get<double>();
    consecutive_above_ = state.at("consecutive_above").get<int64_t>();
    first_above_step_ = state.at("first_above_step").get<int64_t>();
    diverged_ = state.at("diverged").get<bool>();
    divergence_step_ = state.at("divergence_step").get<int64_t>();
    reason_ = state.at("reason").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("divergence monitor state: ") + e.what());
  }
}

}  // namespace rbk
