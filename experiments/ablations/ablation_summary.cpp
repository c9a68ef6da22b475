// Pure helpers of exp_ablations (see ablation_summary.h).
#include "ablation_summary.h"

#include <stdexcept>

namespace rbk::ablations {

std::vector<Component> components(const nlohmann::json& f) {
  std::vector<Component> c;
  c.push_back({"no_prime_bump", "model.prime_bump", f.at("prime_bump"), "none", true,
               "upstream's prime_bump_init adds +0.02 to prime rows of the position table (or V(x) with the "
               "Birman-Schwinger core); removing it changes the initial weights (audit §4.2)"});
  c.push_back({"no_scattering_router", "model.router", f.at("router"), "learned_topk", true,
               "upstream's use_scattering_router swaps the gate Linear(D, E) for routing by arg G_ii (audit §3.3)"});
  c.push_back({"no_lap", "model.bk_lap", f.at("bk_lap"), false, false,
               "upstream applies LAP weights only to R0 in the explicit Birman-Schwinger path (path B), which no "
               "model reaches; its models (default and use_birman_schwinger, path A) compute the same G with or "
               "without use_lap (audit §5.1)"});
  c.push_back({"no_semiseparable", "model.semiseparable_rank", f.at("semiseparable_rank"), 0, false,
               "upstream's U, V are zero buffers nothing fills at paper time, so the low-rank correction is 0 "
               "and the default LanguageModel does not build the structure at all (audit §5.1, §6.1)"});
  return c;
}

nlohmann::json arm_overrides(const std::string& arm, const std::vector<Component>& comps) {
  nlohmann::json o = nlohmann::json::object();
  bool found = arm == "full";
  for (const auto& c : comps) {
    o[c.key] = c.full;
    if (c.arm == arm) {
      o[c.key] = c.removed;
      found = true;
    }
  }
  if (!found) {
    std::string allowed = "full";
    for (const auto& c : comps) allowed += ", " + c.arm;
    throw std::invalid_argument("arms: '" + arm + "' is not an arm; allowed: " + allowed);
  }
  return o;
}

std::optional<double> steps_to_target(const std::vector<CurvePoint>& curve, double target) {
  for (size_t i = 0; i < curve.size(); ++i) {
    if (!(curve[i].valid_loss <= target)) continue;
    if (i == 0) return curve[i].step;
    const auto& a = curve[i - 1];
    const auto& b = curve[i];
    const double t = (a.valid_loss - target) / (a.valid_loss - b.valid_loss);  // in (0, 1]: a > target >= b
    return a.step + t * (b.step - a.step);
  }
  return std::nullopt;
}

std::optional<double> mean_ratio(const std::vector<std::optional<double>>& num,
                                 const std::vector<std::optional<double>>& den) {
  double sum = 0;
  int n = 0;
  for (size_t i = 0; i < num.size() && i < den.size(); ++i) {
    if (!num[i] || !den[i] || *den[i] == 0.0) continue;
    sum += *num[i] / *den[i];
    ++n;
  }
  if (n == 0) return std::nullopt;
  return sum / n;
}

std::optional<double> stable_fraction(const std::vector<std::string>& statuses) {
  int finished = 0, ok = 0;
  for (const auto& s : statuses) {
    if (s == "pending") continue;
    ++finished;
    ok += s == "ok";
  }
  if (finished == 0) return std::nullopt;
  return static_cast<double>(ok) / finished;
}

nlohmann::json to_json_array(const std::vector<std::optional<double>>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& x : v) a.push_back(x ? nlohmann::json(*x) : nlohmann::json(nullptr));
  return a;
}

}  // namespace rbk::ablations
