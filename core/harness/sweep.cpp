// The sweep runner (sweep.h): runs the selected unfinished cells of a plan through a CellRunner,
// writes each outcome atomically, resumes, merges shards and writes the per-seed summary.
#include "rbk/sweep.h"
#include "rbk/peak_memory.h"

#include "rbk/experiment.h"
#include "rbk/log_line.h"
#include "rbk/results.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iostream>
#include <new>
#include <set>

namespace rbk {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string>& known_statuses() {
  static const std::vector<std::string> s{"ok", "diverged", "oom", "skipped", "error"};
  return s;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

bool has_reason(const nlohmann::json& o) { return o.contains("reason") && o["reason"].is_string(); }

}  // namespace

bool is_final_status(const std::string& status) {
  return status == "ok" || status == "diverged" || status == "oom" || status == "skipped";
}

nlohmann::json cell_outcome_from_job(const nlohmann::json& rec) {
  using json = nlohmann::json;
  const std::string status = rec.at("status");
  if (status == "stopped") return {{"status", "stopped"}};
  json out{{"status", status}};
  if (status != "ok") out["reason"] = rec.value("reason", "");
  if (status == "diverged") {
    const json step = rec.value("divergence_step", json(nullptr));
    out["divergence"] = {{"step", step.is_number_integer() ? step.get<int64_t>() : int64_t(-1)},
                         {"reason", rec.value("reason", "")}};
  }
  return out;
}

void check_cell_outcome(const nlohmann::json& o, const std::string& cell_id) {
  const std::string where = "cell " + cell_id + " outcome: ";
  if (!o.is_object() || !o.contains("status") || !o["status"].is_string())
    throw SweepError(where + "expected an object with a string 'status'");
  const std::string status = o["status"].get<std::string>();
  const auto& known = known_statuses();
  if (std::find(known.begin(), known.end(), status) == known.end())
    throw SweepError(where + "status '" + status + "': expected ok, diverged, oom, skipped or error");
  if (status == "diverged") {
    const bool ok = o.contains("divergence") && o["divergence"].is_object() && o["divergence"].contains("step") &&
                    o["divergence"]["step"].is_number_integer() && o["divergence"].contains("reason") &&
                    o["divergence"]["reason"].is_string();
    if (!ok) throw SweepError(where + "status 'diverged' needs divergence.step (integer) and divergence.reason");
  }
  if ((status == "oom" || status == "skipped" || status == "error") && !has_reason(o))
    throw SweepError(where + "status '" + status + "' needs a 'reason' string");
  if (o.contains("metrics") && !o["metrics"].is_object()) throw SweepError(where + "'metrics' must be an object");
}

std::string sweep_cell_dir(const std::string& sweep_dir, const std::string& cell_id) {
  return (fs::path(sweep_dir) / "cells" / cell_id).string();
}
std::string sweep_outcome_path(const std::string& sweep_dir, const std::string& cell_id) {
  return (fs::path(sweep_cell_dir(sweep_dir, cell_id)) / "outcome.json").string();
}
std::string sweep_summary_path(const std::string& sweep_dir) { return (fs::path(sweep_dir) / "summary.json").string(); }
std::string sweep_init_path(const std::string& sweep_dir, uint64_t seed) {
  return (fs::path(sweep_dir) / "init" / ("seed" + std::to_string(seed) + ".pt")).string();
}

namespace {

std::string plan_path(const std::string& sweep_dir) { return (fs::path(sweep_dir) / "plan.json").string(); }

SweepPlan read_plan(const std::string& sweep_dir) {
  const std::string path = plan_path(sweep_dir);
  if (!fs::exists(path)) throw SweepError("sweep directory '" + sweep_dir + "': no plan.json (not a sweep directory)");
  try {
    return SweepPlan::from_json(read_json_file(path));
  } catch (const SweepError& e) {
    throw SweepError("'" + path + "': " + e.what());
  } catch (const std::exception& e) {
    throw SweepError("'" + path + "': " + first_line(e.what()));
  }
}

// The part of an outcome that must agree when one cell was finished twice (timings may differ).
nlohmann::json outcome_identity(const nlohmann::json& o) {
  return {{"status", o.value("status", "")}, {"metrics", o.value("metrics", nlohmann::json::object())}};
}

}  // namespace

void prepare_sweep_dir(const SweepPlan& plan, const std::string& sweep_dir) {
  validate_grid(plan.grid);
  const std::string path = plan_path(sweep_dir);
  if (fs::exists(path)) {
    const SweepPlan existing = read_plan(sweep_dir);
    if (existing.to_json() != plan.to_json())
      throw SweepError("sweep directory '" + sweep_dir +
                       "' holds a different plan (plan.json: arms, axes, seeds, base options or divergence "
                       "rule differ); re-run with the same preset or choose another output directory");
    return;
  }
  write_json_atomic(path, plan.to_json());
}

std::map<std::string, nlohmann::json> read_cell_outcomes(const SweepPlan& plan, const std::string& sweep_dir) {
  std::map<std::string, nlohmann::json> out;
  for (const auto& cell : enumerate_cells(plan.grid)) {
    const std::string path = sweep_outcome_path(sweep_dir, cell.id);
    if (!fs::exists(path)) continue;
    nlohmann::json o;
    try {
      o = read_json_file(path);
      check_cell_outcome(o, cell.id);
    } catch (const std::exception& e) {
      throw SweepError("outcome file '" + path + "': " + first_line(e.what()));
    }
    out.emplace(cell.id, std::move(o));
  }
  return out;
}

nlohmann::json SweepRunReport::to_json() const {
  return {{"selected", selected}, {"already_finished", already_finished}, {"ran", ran},
          {"interrupted", interrupted}, {"interrupted_at", interrupted_at}};
}

SweepRunReport run_sweep(const SweepPlan& plan, const std::string& sweep_dir, const CellRunner& runner,
                         const SweepRunOptions& options) {
  std::ostream& log = options.progress ? *options.progress : std::cerr;
  prepare_sweep_dir(plan, sweep_dir);
  const auto selected = select_cells(enumerate_cells(plan.grid), options.selector);
  SweepRunReport report;
  report.selected = static_cast<int64_t>(selected.size());
  const std::string n = std::to_string(selected.size());
  for (size_t i = 0; i < selected.size(); ++i) {
    const SweepCell& cell = selected[i];
    const std::string outcome_path = sweep_outcome_path(sweep_dir, cell.id);
    if (fs::exists(outcome_path)) {
      const nlohmann::json old = read_json_file(outcome_path);
      const std::string status = old.value("status", "");
      if (is_final_status(status) || (status == "error" && !options.retry_errors)) {
        write_log_line(log, "cell " + std::to_string(i + 1) + " of " + n + ": " + cell.id + " already finished (" + status + ")");
        ++report.already_finished;
        continue;
      }
    }
    if (options.max_cells > 0 && report.ran >= options.max_cells) {
      report.interrupted = true;
      report.interrupted_at = cell.id;
      write_log_line(log, "sweep: stopping before " + cell.id + " (max_cells = " + std::to_string(options.max_cells) + ")");
      break;
    }
    write_log_line(log, "cell " + std::to_string(i + 1) + " of " + n + ": " + cell.id);
    const std::string cell_dir = sweep_cell_dir(sweep_dir, cell.id);
    fs::create_directories(cell_dir);
    nlohmann::json outcome;
    try {
      outcome = runner(cell, cell_dir);
    } catch (const std::bad_alloc&) {
      outcome = {{"status", "oom"}, {"reason", "std::bad_alloc (host memory exhausted)"}};
    } catch (const std::exception& e) {
      const std::string what = first_line(e.what());
      outcome = {{"status", is_out_of_memory(e) || message_says_out_of_memory(e.what()) ? "oom" : "error"}, {"reason", what}};
    }
    if (outcome.is_object() && outcome.value("status", "") == "stopped") {
      report.interrupted = true;
      report.interrupted_at = cell.id;
      write_log_line(log, "sweep: cell " + cell.id + " stopped inside (checkpoint in " + cell_dir + "); a re-run resumes it");
      break;
    }
    try {
      check_cell_outcome(outcome, cell.id);
    } catch (const SweepError& e) {
      outcome = {{"status", "error"}, {"reason", e.what()}, {"returned", outcome}};
    }
    outcome["cell"] = cell.id;
    outcome["arm"] = cell.arm;
    outcome["base_arm"] = cell.base_arm;
    outcome["seed"] = cell.seed;
    outcome["overrides"] = cell.overrides;
    write_json_atomic(outcome_path, outcome);
    ++report.ran;
    std::string done = "cell " + std::to_string(i + 1) + " of " + n + ": " + cell.id + " -> " + outcome["status"].get<std::string>();
    if (has_reason(outcome)) done += " (" + outcome["reason"].get<std::string>() + ")";
    if (outcome.contains("divergence")) done += " (" + outcome["divergence"]["reason"].get<std::string>() + ")";
    write_log_line(log, done);
    write_sweep_summary(plan, sweep_dir, options.context);
  }
  write_sweep_summary(plan, sweep_dir, options.context);
  return report;
}

nlohmann::json sweep_summary(const SweepPlan& plan, const std::map<std::string, nlohmann::json>& outcomes) {
  const auto cells = enumerate_cells(plan.grid);
  const size_t n_seeds = plan.grid.seeds.size();
  nlohmann::json seeds = nlohmann::json::object();
  seeds["seed"] = plan.grid.seeds;

  // Expanded arms in enumeration order, each with its cells by seed position.
  std::vector<std::string> arms;
  std::map<std::string, std::vector<const SweepCell*>> by_arm;
  for (const auto& c : cells) {
    if (!by_arm.count(c.arm)) arms.push_back(c.arm);
    auto& v = by_arm[c.arm];
    v.resize(n_seeds, nullptr);
    v[c.seed_index] = &c;
  }
  const auto outcome_of = [&](const SweepCell* c) -> const nlohmann::json* {
    const auto it = outcomes.find(c->id);
    return it == outcomes.end() ? nullptr : &it->second;
  };
  for (const auto& arm : arms) {
    std::set<std::string> metric_names;
    nlohmann::json status = nlohmann::json::array();
    for (const SweepCell* c : by_arm[arm]) {
      const auto* o = outcome_of(c);
      status.push_back(o ? (*o)["status"] : nlohmann::json("pending"));
      if (o && (*o)["status"] == "ok" && o->contains("metrics"))
        for (const auto& [k, v] : (*o)["metrics"].items())
          if (v.is_number() || v.is_null()) metric_names.insert(k);
    }
    seeds[arm + "_status"] = status;
    for (const auto& m : metric_names) {
      nlohmann::json values = nlohmann::json::array();
      for (const SweepCell* c : by_arm[arm]) {
        const auto* o = outcome_of(c);
        const bool usable = o && (*o)["status"] == "ok" && o->contains("metrics") && (*o)["metrics"].contains(m) &&
                            (*o)["metrics"][m].is_number();
        values.push_back(usable ? (*o)["metrics"][m] : nlohmann::json(nullptr));
      }
      seeds[arm + "_" + m] = values;
    }
  }

  nlohmann::json rows = nlohmann::json::array();
  nlohmann::json counts = nlohmann::json::object();
  nlohmann::json shared = nlohmann::json::object();
  for (const auto& c : cells) {
    const auto* o = outcome_of(&c);
    nlohmann::json row = o ? *o : nlohmann::json{{"status", "pending"}};
    row["cell"] = c.id;
    row["arm"] = c.arm;
    row["base_arm"] = c.base_arm;
    row["seed"] = c.seed;
    row["overrides"] = c.overrides;
    row["reference_cell"] = c.reference_cell;
    const std::string st = row["status"].get<std::string>();
    counts[st] = counts.value(st, 0) + 1;
    if (o && o->contains("paired")) shared[c.id] = (*o)["paired"];
    rows.push_back(std::move(row));
  }
  const std::string reference_arm = arms.empty() ? "" : arms.front();
  return {{"n_cells", cells.size()},
          {"n_seeds", n_seeds},
          {"arms", arms},
          {"seeds", seeds},
          {"cells", rows},
          {"counts", counts},
          {"divergence_rule", plan.divergence_rule},
          {"paired",
           {{"reference_arm", reference_arm},
            {"same_initial_weights",
             "for each seed the reference arm saves its initial parameters; every other arm of that seed copies "
             "each parameter whose name and shape match (per cell: 'by_cell')"},
            {"same_data_order",
             "every arm of a seed trains on the same train stream in the same chunk order (the trainer visits "
             "chunks in order) unless the arm overrides data.* options"},
            {"by_cell", shared}}}};
}

void write_sweep_summary(const SweepPlan& plan, const std::string& sweep_dir, const nlohmann::json& context) {
  const nlohmann::json summary = sweep_summary(plan, read_cell_outcomes(plan, sweep_dir));
  const nlohmann::json doc = {{"schema", "rbk.result/1"},
                              {"experiment", plan.name},
                              {"context", context},
                              {"config", plan.to_json()},
                              {"rows", summary["cells"]},
                              {"summary", summary},
                              {"status", overall_status(summary["cells"])}};
  write_json_atomic(sweep_summary_path(sweep_dir), doc);
}

void merge_sweeps(const std::vector<std::string>& sweep_dirs, const std::string& out_dir, const nlohmann::json& context) {
  if (sweep_dirs.empty()) throw SweepError("merge: no sweep directories given");
  const SweepPlan plan = read_plan(sweep_dirs.front());
  for (size_t k = 1; k < sweep_dirs.size(); ++k)
    if (read_plan(sweep_dirs[k]).to_json() != plan.to_json())
      throw SweepError("merge: '" + sweep_dirs[k] + "' holds a different plan from '" + sweep_dirs.front() +
                       "' (arms, axes, seeds, base options or divergence rule differ)");
  // Decide everything before writing anything, so a refused merge leaves out_dir untouched.
  std::map<std::string, std::pair<nlohmann::json, std::string>> merged;  // id -> (outcome, its dir)
  for (const auto& dir : sweep_dirs) {
    for (auto& [id, o] : read_cell_outcomes(plan, dir)) {
      auto it = merged.find(id);
      if (it == merged.end()) {
        merged.emplace(id, std::make_pair(o, dir));
        continue;
      }
      const bool old_final = is_final_status(it->second.first["status"]);
      const bool new_final = is_final_status(o["status"]);
      if (old_final && new_final) {
        if (outcome_identity(it->second.first) != outcome_identity(o))
          throw SweepError("merge: cell " + id + " finished in both '" + it->second.second + "' (" +
                           outcome_identity(it->second.first).dump() + ") and '" + dir + "' (" +
                           outcome_identity(o).dump() + "); remove the outcome that is wrong and merge again");
      } else if (new_final) {
        it->second = std::make_pair(o, dir);  // a finished outcome supersedes an error
      }
    }
  }
  prepare_sweep_dir(plan, out_dir);
  for (const auto& [id, entry] : merged) {
    const std::string dest = sweep_outcome_path(out_dir, id);
    if (fs::exists(dest) && fs::equivalent(dest, sweep_outcome_path(entry.second, id))) continue;
    write_json_atomic(dest, entry.first);
  }
  write_sweep_summary(plan, out_dir, context);
}

}  // namespace rbk
