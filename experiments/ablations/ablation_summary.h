// Pure helpers of exp_ablations (claims C06, C09, C14): the arms' option overrides, steps to the
// valid-loss target, and the per-arm aggregates of Table 4. No training here, so the unit tests
// can feed each rule a case that must fail.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace rbk::ablations {

// The components of the full model as the papers describe it, and the value of each key that
// removes it. The full arm sets every "full" value; arm "no_<component>" sets that component's
// "removed" value and keeps the others full.
struct Component {
  std::string arm;      // "no_prime_bump", ...
  std::string key;      // "model.prime_bump", ...
  nlohmann::json full;  // value in the full model
  nlohmann::json removed;
  // Whether removing it changes upstream's own model (efaa555), and why (upstream-audit).
  bool changes_upstream_model = true;
  std::string upstream_note;
};

// full_values: {"prime_bump": "potential", "router": "scattering_phase", "bk_lap": true,
// "semiseparable_rank": -1} (preset keys full_*).
std::vector<Component> components(const nlohmann::json& full_values);
// Flat overrides {"model.x": v} of an arm ("full" or "no_<component>"); throws
// std::invalid_argument naming the arm otherwise.
nlohmann::json arm_overrides(const std::string& arm, const std::vector<Component>& comps);

// A validation curve point (step, valid_loss).
struct CurvePoint {
  double step = 0;
  double valid_loss = 0;
};
// Optimizer steps to reach valid_loss <= target: the first point at or below the target, linearly
// interpolated from the point before it (the curve is sampled every eval_every steps; the
// interpolation removes the sampling grid's step). A first point already below counts its step.
// std::nullopt when the curve never reaches the target.
std::optional<double> steps_to_target(const std::vector<CurvePoint>& curve, double target);

// Mean over seeds where both are present of ratio[i] = num[i] / den[i]; nullopt if none.
std::optional<double> mean_ratio(const std::vector<std::optional<double>>& num,
                                 const std::vector<std::optional<double>>& den);

// Fraction of the given statuses equal to "ok" (a diverged or failed cell is not stable); pending
// cells are left out of both counts. nullopt when no cell finished.
std::optional<double> stable_fraction(const std::vector<std::string>& statuses);

// JSON array with null for missing values.
nlohmann::json to_json_array(const std::vector<std::optional<double>>& v);

}  // namespace rbk::ablations
