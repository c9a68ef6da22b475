// Keyed summary, memory fit and probe tables of exp_long_context (long_context_summary.h).
#include "long_context_summary.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <set>

namespace rbk::long_context {

using nlohmann::json;

const char* const kStabilityRule =
    "stable/<row>_n<N> is false when any seed's cell diverged (a non-finite loss or gradient, or the sweep's "
    "divergence_factor rule); true when no cell diverged, at least one seed's cell finished ok and every cell that "
    "ran finished ok (cells not run by this preset's selection, e.g. the single seed at 512k and 1M on the GPU, "
    "are left out; stable_seeds/<row>_n<N> counts the ok seeds); absent (reason in stable_undetermined) when a "
    "cell is oom, skipped or error, or no cell ran";

std::string arm_name(const std::string& row, int64_t n) { return row + "_n" + std::to_string(n); }

bool parse_arm(const std::string& arm, std::string& row, int64_t& n) {
  const auto at = arm.rfind("_n");
  if (at == std::string::npos || at == 0 || at + 2 >= arm.size()) return false;
  const std::string digits = arm.substr(at + 2);
  if (!std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) return false;
  row = arm.substr(0, at);
  n = std::stoll(digits);
  return true;
}

std::string probe_arm_name(const std::string& row, const std::string& probe, int64_t n) {
  return row + "_" + probe + "_n" + std::to_string(n);
}

bool parse_probe_arm(const std::string& arm, std::string& row, std::string& probe, int64_t& n) {
  std::string head;
  if (!parse_arm(arm, head, n)) return false;
  for (const char* p : {"passkey", "assoc_recall"}) {
    const std::string tail = std::string("_") + p;
    if (head.size() > tail.size() && head.compare(head.size() - tail.size(), tail.size(), tail) == 0) {
      row = head.substr(0, head.size() - tail.size());
      probe = p;
      return true;
    }
  }
  return false;
}

json MemoryFit::to_json() const {
  const auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  return {{"points", points},
          {"intercept_bytes", num(intercept_bytes)},
          {"bytes_per_token", num(bytes_per_token)},
          {"loglog_exponent", num(loglog_exponent)},
          {"r2", num(r2)},
          {"model", "bytes = intercept_bytes + bytes_per_token * N (least squares over the row's lengths); "
                    "loglog_exponent = slope of log bytes on log N"}};
}

namespace {

// Ordinary least squares y = a + b x; returns false when x has no spread.
bool least_squares(const std::vector<double>& x, const std::vector<double>& y, double& a, double& b, double& r2) {
  const double n = static_cast<double>(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i], my += y[i];
  mx /= n;
  my /= n;
  double sxx = 0, sxy = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (!(sxx > 0)) return false;
  b = sxy / sxx;
  a = my - b * mx;
  // A constant y has no variance to explain: r2 is undefined (NaN, JSON null), not a perfect 1.
  r2 = syy > 0 ? (sxy * sxy) / (sxx * syy) : std::numeric_limits<double>::quiet_NaN();
  return true;
}

double median(std::vector<double> v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

const json* outcome_of(const std::map<std::string, json>& outcomes, const std::string& id) {
  const auto it = outcomes.find(id);
  return it == outcomes.end() ? nullptr : &it->second;
}

json number_or_null(const json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && obj[key].is_number() ? obj[key] : json(nullptr);
}

}  // namespace

MemoryFit fit_memory_slope(const std::vector<double>& n, const std::vector<double>& bytes) {
  MemoryFit f;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> x, y, lx, ly;
  std::set<double> distinct;
  for (size_t i = 0; i < std::min(n.size(), bytes.size()); ++i) {
    if (!(std::isfinite(n[i]) && n[i] > 0 && std::isfinite(bytes[i]) && bytes[i] > 0)) continue;
    x.push_back(n[i]);
    y.push_back(bytes[i]);
    lx.push_back(std::log(n[i]));
    ly.push_back(std::log(bytes[i]));
    distinct.insert(n[i]);
  }
  f.points = static_cast<int64_t>(x.size());
  double a = nan, b = nan, r2 = nan, la = nan, lb = nan, lr2 = nan;
  if (distinct.size() < 2 || !least_squares(x, y, a, b, r2) || !least_squares(lx, ly, la, lb, lr2)) {
    f.points = std::min<int64_t>(f.points, 1);
    f.intercept_bytes = f.bytes_per_token = f.loglog_exponent = f.r2 = nan;
    return f;
  }
  f.intercept_bytes = a;
  f.bytes_per_token = b;
  f.loglog_exponent = lb;
  f.r2 = r2;
  return f;
}

json keyed_sweep_summary(const SweepPlan& plan, const std::map<std::string, json>& outcomes,
                         const std::vector<std::string>& rows, const std::vector<int64_t>& lengths) {
  const auto cells = enumerate_cells(plan.grid);
  const size_t n_seeds = plan.grid.seeds.size();
  // Cell ids by (arm, seed index).
  std::map<std::string, std::vector<std::string>> ids;
  for (const auto& c : cells) {
    auto& v = ids[c.arm];
    v.resize(n_seeds);
    v[static_cast<size_t>(c.seed_index)] = c.id;
  }
  json seeds{{"seed", plan.grid.seeds}}, stable = json::object(), undetermined = json::object(), stable_seeds = json::object(),
      by_row = json::object(), fits = json::object();
  for (const auto& row : rows) {
    std::vector<double> fit_n, fit_bytes;
    int64_t not_per_cell = 0;  // cells whose peak is not their own (the process's since its start)
    for (const int64_t N : lengths) {
      const std::string arm = arm_name(row, N);
      if (!ids.count(arm)) continue;  // not part of this grid
      const std::string key = row + "_n" + std::to_string(N);
      json ppl = json::array(), ppl_short = json::array(), loss = json::array();
      json cell{{"status", json::array()}, {"divergence_step", json::array()}, {"reason", json::array()}};
      const char* detail_keys[] = {"tokens_per_second", "peak_memory_bytes", "seconds", "unique_train_tokens",
                                   "epochs", "parameters", "parameters_without_position"};
      for (const char* k : detail_keys) cell[k] = json::array();
      int64_t n_ok = 0, n_diverged = 0;
      std::set<std::string> other;
      std::vector<double> mem;
      for (const auto& id : ids[arm]) {
        const json* o = outcome_of(outcomes, id);
        const std::string status = o ? (*o)["status"].get<std::string>() : "pending";
        const bool ok = status == "ok";
        n_ok += ok;
        n_diverged += status == "diverged";
        if (!ok && status != "diverged") other.insert(status);
        const json metrics = ok && o->contains("metrics") ? (*o)["metrics"] : json::object();
        ppl.push_back(number_or_null(metrics, "valid_ppl"));
        ppl_short.push_back(number_or_null(metrics, "valid_ppl_short"));
        loss.push_back(number_or_null(metrics, "final_train_loss"));
        cell["status"].push_back(status);
        cell["divergence_step"].push_back(o && o->contains("divergence") ? (*o)["divergence"]["step"] : json(nullptr));
        cell["reason"].push_back(o && o->contains("reason") ? (*o)["reason"] : json(nullptr));
        const json details = o && o->contains("details") ? (*o)["details"] : json::object();
        for (const char* k : detail_keys) cell[k].push_back(number_or_null(details, k));
        if (details.contains("peak_memory_bytes") && details["peak_memory_bytes"].is_number()) {
          if (details.value("peak_memory_per_cell", true))
            mem.push_back(details["peak_memory_bytes"].get<double>());
          else
            ++not_per_cell;
        }
      }
      seeds[row + "_ppl_n" + std::to_string(N)] = ppl;
      seeds[row + "_ppl_short_n" + std::to_string(N)] = ppl_short;
      seeds[row + "_final_train_loss_n" + std::to_string(N)] = loss;
      other.erase("pending");
      stable_seeds[key] = n_ok;
      if (n_diverged > 0) {
        stable[key] = false;
      } else if (n_ok > 0 && other.empty()) {
        stable[key] = true;
      } else {
        std::string why;
        for (const auto& s : other) why += (why.empty() ? "" : ", ") + s;
        undetermined[key] = n_ok == 0 && other.empty()
                                ? std::string("no cell has run")
                                : "no seed diverged, but cells are " + why + " (" + std::to_string(n_ok) + " of " +
                                      std::to_string(n_seeds) + " ok)";
      }
      by_row[row]["n" + std::to_string(N)] = cell;
      if (!mem.empty()) {
        fit_n.push_back(static_cast<double>(N));
        fit_bytes.push_back(median(mem));
      }
    }
    fits[row] = fit_memory_slope(fit_n, fit_bytes).to_json();
    if (not_per_cell > 0)
      fits[row]["cells_without_per_cell_peak"] = not_per_cell;
    if (fit_n.size() < 2)
      fits[row]["why_no_fit"] = not_per_cell > 0
                                    ? "the cells' peak memory is not per cell (the process's resident-set peak since its "
                                      "start: the reset of /proc/self/clear_refs was refused), so it cannot be fitted against N"
                                    : "fewer than two lengths with a measured peak";
    fits[row]["n"] = fit_n;
    fits[row]["median_peak_bytes"] = fit_bytes;
  }
  // Keys the ledger may read that this grid cannot hold (registry and tables read the paper's
  // lengths, seed 002 Table 1), and stability flags left undetermined: declared not measured, with
  // the reason, so the ledger says why instead of reporting a missing key (verdict.h).
  json not_measured = json::array();
  std::string grid_lengths;
  for (const int64_t N : lengths) grid_lengths += (grid_lengths.empty() ? "" : ", ") + std::to_string(N);
  for (const auto& row : rows) {
    for (const int64_t N : kPaperLengths) {
      if (ids.count(arm_name(row, N))) continue;
      const std::string why = "row " + row + " is not run at N = " + std::to_string(N) + " in this preset (its lengths: " +
                              grid_lengths + ")";
      not_measured.push_back({{"pattern", "/summary/seeds/" + row + "_*_n" + std::to_string(N)}, {"why", why}});
      not_measured.push_back({{"pattern", "/summary/stable/" + row + "_n" + std::to_string(N)}, {"why", why}});
    }
  }
  for (const auto& [key, why] : undetermined.items())
    not_measured.push_back({{"pattern", "/summary/stable/" + key}, {"why", "stability undetermined: " + why.get<std::string>()}});
  return {{"seeds", seeds},          {"stable", stable},   {"stable_undetermined", undetermined},
          {"not_measured", not_measured},
          {"stable_seeds", stable_seeds},
          {"cells_by_row", by_row},  {"memory_fit", fits}, {"stability_rule", kStabilityRule}};
}

json probe_summary(const SweepPlan& plan, const std::map<std::string, json>& outcomes) {
  const auto cells = enumerate_cells(plan.grid);
  const size_t n_seeds = plan.grid.seeds.size();
  json probes = json::object(), seeds = json::object();
  std::map<std::string, std::vector<const SweepCell*>> by_arm;
  std::vector<std::string> arms;
  for (const auto& c : cells) {
    if (!by_arm.count(c.arm)) arms.push_back(c.arm);
    auto& v = by_arm[c.arm];
    v.resize(n_seeds, nullptr);
    v[static_cast<size_t>(c.seed_index)] = &c;
  }
  for (const auto& arm : arms) {
    std::string row, probe;
    int64_t N = 0;
    if (!parse_probe_arm(arm, row, probe, N)) continue;
    std::set<std::string> metric_names;
    json status = json::array();
    for (const SweepCell* c : by_arm[arm]) {
      const json* o = outcome_of(outcomes, c->id);
      status.push_back(o ? (*o)["status"] : json("pending"));
      if (o && (*o)["status"] == "ok" && o->contains("metrics"))
        for (const auto& [k, v] : (*o)["metrics"].items())
          if (v.is_number()) metric_names.insert(k);
    }
    json entry{{"status", status}};
    for (const auto& m : metric_names) {
      json values = json::array();
      for (const SweepCell* c : by_arm[arm]) {
        const json* o = outcome_of(outcomes, c->id);
        const bool usable = o && (*o)["status"] == "ok" && (*o)["metrics"].contains(m) && (*o)["metrics"][m].is_number();
        values.push_back(usable ? (*o)["metrics"][m] : json(nullptr));
      }
      entry[m] = values;
      // acc_eval<M> (all depths): the ledger's per-seed array.
      if (m.rfind("acc_eval", 0) == 0 && m.find("_depth") == std::string::npos)
        seeds[row + "_" + probe + "_acc_n" + std::to_string(N) + "_" + m.substr(4)] = values;
    }
    probes[row][probe]["n" + std::to_string(N)] = entry;
  }
  return {{"probes", probes}, {"seeds", seeds}};
}

json part_rows(const json& cells, const std::set<std::string>& selected_ids, const std::string& part, json& not_selected) {
  json rows = json::array();
  for (json row : cells) {
    const std::string id = row.at("cell").get<std::string>();
    if (row.value("status", std::string("pending")) == "pending" && !selected_ids.count(id)) {
      not_selected.push_back(id);
      continue;
    }
    row["part"] = part;
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace rbk::long_context
