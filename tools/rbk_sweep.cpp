// rbk_sweep: trains a grid of language models (named arms of option overrides x optional grid axes
// x seeds) with the training job of rbk_train, resumably, and writes per-seed arrays for
// validation/ (issue 17: every "compare architectures or settings over seeds" claim runs here).
//   rbk_sweep (--preset NAME | --preset-file FILE) [--out DIR] [--select GLOB[,GLOB...]]
//             [--shard i/n] [--max-cells K] [--stop-after-steps S] [--list]
//   rbk_sweep --merge --out DIR SWEEP_DIR...
// NAME is tools/presets/NAME.json. A sweep preset:
//   {"name": "...",                     result name (default: the preset file's stem)
//    "base": {data.*, model.*, train.*, device, threads},   as in rbk_train (flat or nested keys)
//    "arms": [{"name": "mamba", "overrides": {"model.arch": "mamba"}}, ...],
//    "axes": [{"key": "train.lr", "values": [0.001, 0.003]}],   optional, multiplies the arms
//    "seeds": [0, 1, 2],                train.seed of each cell; the order of the per-seed arrays
//    "select": ["mamba.*"], "shard": "0/2"}                     optional; the command line wins
// Output DIR (default sweeps/<name>): plan.json, cells/<arm>.seed<k>/ (model.pt checkpoint,
// metrics.jsonl, outcome.json), init/seed<k>.pt (paired initial weights), summary.json (a result
// document: summary/seeds/<arm>_valid_ppl, _test_ppl, ... ordered by seed, per-cell rows, the
// divergence rule). Rerunning the same command skips finished cells and resumes an interrupted
// one from its checkpoint; --stop-after-steps S makes each cell checkpoint and stop at step S (a
// rerun without it continues the cell), --max-cells K returns after K cells.
// Exit codes: 0 ran (cells may be diverged / oom / skipped, or the run stopped as asked), 1 a cell
// ended in error, 2 bad preset or arguments (one message naming the key; nothing written).
//
// Sharded over processes (issue 23, core/training/include/rbk/distributed.h): launched by torchrun or
// scripts/launch_local.sh (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), rank r runs
// shard r/WORLD_SIZE of the cells (--shard is then refused) on its own device (cuda:LOCAL_RANK on
// GPUs), all ranks in the same DIR: every cell's files are written by the rank that runs it, the
// cells are disjoint. When every rank has finished (reported through c10d's TCPStore on rank 0),
// rank 0 writes summary.json from all the cells' outcomes: the same document as a single-process
// run. Exit code of rank 0: 1 when any cell of the sweep ended in error.
#include "rbk/distributed.h"
#include "rbk/divergence.h"
#include "rbk/experiment.h"
#include "rbk/lm_data.h"
#include "rbk/log_line.h"
#include "rbk/options.h"
#include "rbk/results.h"
#include "rbk/sweep.h"
#include "rbk/training_job.h"

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kExitBadInput = 2;

rbk::ConfigSchema cell_schema() {
  rbk::ConfigSchema s;
  rbk::add_data_options(s, "data.");
  rbk::add_lm_config_options(s, "model.");
  rbk::add_train_options(s, "train.");
  rbk::ParamSpec device;
  device.key = "device";
  device.type = rbk::ParamType::String;
  device.help = "auto = CUDA when visible, else the CPU";
  device.choices = {"auto", "cpu", "cuda"};
  device.default_value = "auto";
  rbk::ParamSpec threads;
  threads.key = "threads";
  threads.type = rbk::ParamType::Int;
  threads.help = "CPU threads (0 = LibTorch's default)";
  threads.min = 0;
  threads.max = 1024;
  threads.default_value = 0;
  return s.add(device).add(threads);
}

// The seed of a cell comes from the preset's "seeds", never from its options.
void take_options(const rbk::ConfigSchema& schema, const json& obj, const std::string& where, json& values) {
  if (obj.is_object() && obj.contains("seed"))
    throw rbk::ConfigError(where + ": 'seed' is set per cell by the preset's 'seeds'");
  rbk::apply_option_object(schema, obj, where, values);
}

struct CellSetup {
  rbk::DataOptions data;
  rbk::LmConfig model;
  rbk::TrainOptions train;
  int64_t threads = 0;
};

struct SweepPreset {
  rbk::SweepPlan plan;
  rbk::SweepSelector selector;
  std::map<std::string, CellSetup> setups;  // by cell id
};

SweepPreset read_preset(const std::string& path, const std::string& stem) {
  const std::string where = "sweep preset '" + path + "'";
  json raw;
  {
    std::ifstream in(path);
    if (!in) throw rbk::ConfigError(where + ": cannot be opened");
    try {
      in >> raw;
    } catch (const std::exception& e) {
      throw rbk::ConfigError(where + ": not valid JSON (" + std::string(e.what()) + ")");
    }
  }
  if (!raw.is_object()) throw rbk::ConfigError(where + ": expected a JSON object");
  for (const auto& [key, value] : raw.items()) {
    static const std::set<std::string> known{"name", "base", "arms", "axes", "seeds", "select", "shard"};
    if (key.rfind('_', 0) != 0 && !known.count(key))
      throw rbk::ConfigError(where + ": unknown key '" + key + "' (expected name, base, arms, axes, seeds, select, shard)");
  }
  SweepPreset p;
  rbk::SweepPlan& plan = p.plan;
  plan.name = raw.value("name", stem);
  if (raw.contains("name") && !raw["name"].is_string()) throw rbk::ConfigError(where + ": 'name' must be a string");
  plan.base = raw.value("base", json::object());
  if (!raw.contains("arms") || !raw["arms"].is_array())
    throw rbk::ConfigError(where + ": 'arms' must be an array of {\"name\", \"overrides\"}");
  for (size_t i = 0; i < raw["arms"].size(); ++i) {
    const json& a = raw["arms"][i];
    const std::string key = "arms[" + std::to_string(i) + "]";
    if (!a.is_object() || !a.contains("name") || !a["name"].is_string())
      throw rbk::ConfigError(where + ": " + key + " needs a string 'name'");
    plan.grid.arms.push_back({a["name"].get<std::string>(), a.value("overrides", json::object())});
  }
  if (raw.contains("axes")) {
    if (!raw["axes"].is_array()) throw rbk::ConfigError(where + ": 'axes' must be an array");
    for (size_t i = 0; i < raw["axes"].size(); ++i) {
      const json& a = raw["axes"][i];
      if (!a.is_object() || !a.contains("key") || !a["key"].is_string() || !a.contains("values") || !a["values"].is_array())
        throw rbk::ConfigError(where + ": axes[" + std::to_string(i) + "] needs a string 'key' and an array 'values'");
      plan.grid.axes.push_back({a["key"].get<std::string>(), a.value("label", std::string()),
                                a["values"].get<std::vector<json>>()});
    }
  }
  if (!raw.contains("seeds") || !raw["seeds"].is_array()) throw rbk::ConfigError(where + ": 'seeds' must be an array of integers >= 0");
  for (const auto& s : raw["seeds"]) {
    if (!s.is_number_unsigned()) throw rbk::ConfigError(where + ": seeds: " + s.dump() + " is not an integer >= 0");
    plan.grid.seeds.push_back(s.get<uint64_t>());
  }
  if (raw.contains("select")) {
    if (!raw["select"].is_array()) throw rbk::ConfigError(where + ": 'select' must be an array of cell-id globs");
    for (const auto& s : raw["select"]) p.selector.patterns.push_back(s.get<std::string>());
  }
  try {
    if (raw.contains("shard")) rbk::parse_shard(raw["shard"].get<std::string>(), p.selector, "shard");
    rbk::validate_grid(plan.grid);
  } catch (const std::exception& e) {
    throw rbk::ConfigError(where + ": " + e.what());
  }

  // Every cell's options, resolved and checked now: a bad value exits 2 before anything runs.
  const rbk::ConfigSchema schema = cell_schema();
  json base_values = json::object();
  take_options(schema, plan.base, where + ": base", base_values);
  rbk::fill_option_defaults(schema, where + ": base", base_values);
  for (const auto& cell : rbk::enumerate_cells(plan.grid)) {
    json values = base_values;
    const std::string cell_where = where + ": cell " + cell.id + " (arm '" + cell.base_arm + "' overrides and axes)";
    take_options(schema, cell.overrides, cell_where, values);
    const rbk::Config cfg(values, plan.name);
    CellSetup setup;
    try {
      setup.data = rbk::data_options_from(cfg, "data.");
      setup.model = rbk::lm_config_from(cfg, "model.");
      setup.train = rbk::train_options_from(cfg, "train.", rbk::experiment_device(cfg));
      rbk::check_model_and_training(setup.model, setup.train, "model.", "train.");
      rbk::validate_train_options(setup.train);
    } catch (const std::exception& e) {
      throw rbk::ConfigError(cell_where + ": " + e.what());
    }
    setup.threads = cfg.get_int("threads");
    setup.train.seed = cell.seed;
    setup.train.label = cell.id + ": ";
    p.setups.emplace(cell.id, std::move(setup));
  }
  // The base's rule; an arm that overrides train.divergence_* has its own in its row (details.divergence).
  const auto& first = p.setups.at(rbk::enumerate_cells(plan.grid).front().id).train;
  plan.divergence_rule = rbk::DivergenceRule{first.divergence_factor, first.divergence_patience}.to_json();
  return p;
}

// The part of a training-job record that is a cell's result; metrics are what the per-seed arrays
// hold (deterministic given the seed), details what varies from run to run (timings, memory).
json outcome_of_job(const json& rec, const std::string& cell_dir) {
  json out = rbk::cell_outcome_from_job(rec);
  const std::string status = out["status"];
  if (status == "stopped") return out;
  json metrics = json::object();
  if (status == "ok") {
    for (const char* split : {"valid", "test"}) {
      if (!rec.contains(split) || !rec[split].is_object()) continue;
      metrics[std::string(split) + "_ppl"] = rec[split].value("ppl", json(nullptr));
      metrics[std::string(split) + "_bits_per_byte"] = rec[split].value("bits_per_byte", json(nullptr));
    }
    if (rec.contains("step_losses") && !rec["step_losses"].empty()) metrics["final_train_loss"] = rec["step_losses"].back();
  }
  if (rec.contains("steps")) metrics["steps"] = rec["steps"];
  out["metrics"] = metrics;
  json details = rec;
  // Thousands of numbers per cell: kept beside the outcome, not in it (nor in the summary).
  if (rec.contains("step_losses")) rbk::write_json_atomic(cell_dir + "/step_losses.json", rec["step_losses"]);
  details.erase("step_losses");
  out["details"] = details;
  const std::string paired = cell_dir + "/paired.json";
  if (fs::exists(paired)) out["paired"] = rbk::read_json_file(paired);
  return out;
}

int merge_main(const std::vector<std::string>& args, int argc, char** argv) {
  std::string out;
  std::vector<std::string> dirs;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--merge") continue;
    if (args[i] == "--out" && i + 1 < args.size()) {
      out = args[++i];
    } else {
      dirs.push_back(args[i]);
    }
  }
  if (out.empty() || dirs.empty()) {
    std::cerr << "rbk_sweep --merge: usage: rbk_sweep --merge --out DIR SWEEP_DIR...\n";
    return kExitBadInput;
  }
  try {
    rbk::merge_sweeps(dirs, out, rbk::RunContext::capture(argc, argv, 0).to_json());
  } catch (const std::exception& e) {
    std::cerr << "rbk_sweep --merge: " << e.what() << "\n";
    return kExitBadInput;
  }
  std::cerr << "rbk_sweep: merged " << dirs.size() << " sweep directories into " << rbk::sweep_summary_path(out) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (const auto& a : args)
    if (a == "--merge") return merge_main(args, argc, argv);

  std::string preset_file, out, select, shard;
  int64_t max_cells = 0, stop_after_steps = 0;
  bool list = false;
  try {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      const auto next = [&]() -> std::string {
        if (i + 1 >= args.size()) throw rbk::ConfigError("option " + a + " needs a value");
        return args[++i];
      };
      const auto count = [&](const std::string& text) {
        try {
          size_t used = 0;
          const int64_t v = std::stoll(text, &used);
          if (used == text.size() && v > 0) return v;
        } catch (const std::exception&) {
        }
        throw rbk::ConfigError("option " + a + " = '" + text + "': expected an integer > 0");
      };
      if (a == "--preset") preset_file = std::string(RBK_REPO_DIR) + "/tools/presets/" + next() + ".json";
      else if (a == "--preset-file") preset_file = next();
      else if (a == "--out") out = next();
      else if (a == "--select") select = next();
      else if (a == "--shard") shard = next();
      else if (a == "--max-cells") max_cells = count(next());
      else if (a == "--stop-after-steps") stop_after_steps = count(next());
      else if (a == "--list") list = true;
      else throw rbk::ConfigError("unknown argument '" + a + "' (see the top of tools/rbk_sweep.cpp)");
    }
    if (preset_file.empty()) throw rbk::ConfigError("--preset NAME or --preset-file FILE is required");
  } catch (const std::exception& e) {
    std::cerr << "rbk_sweep: " << e.what() << "\n";
    return kExitBadInput;
  }

  SweepPreset preset;
  std::vector<rbk::SweepCell> cells, selected;
  try {
    preset = read_preset(preset_file, fs::path(preset_file).stem().string());
    if (!select.empty()) {
      preset.selector.patterns.clear();
      std::stringstream ss(select);
      for (std::string part; std::getline(ss, part, ',');)
        if (!part.empty()) preset.selector.patterns.push_back(part);
    }
    if (!shard.empty()) rbk::parse_shard(shard, preset.selector, "--shard");
    cells = rbk::enumerate_cells(preset.plan.grid);
    selected = rbk::select_cells(cells, preset.selector);
  } catch (const std::exception& e) {
    std::cerr << "rbk_sweep: " << e.what() << "\n";
    return kExitBadInput;
  }
  rbk::LaunchEnv env;
  try {
    env = rbk::read_launch_env();
    if (env.active) {
      if (preset.selector.shard_count != 1)
        throw rbk::ConfigError("--shard / the preset's 'shard' cannot be combined with a distributed launch: rank r runs "
                               "shard r/WORLD_SIZE itself");
      preset.selector.shard_index = env.rank;
      preset.selector.shard_count = env.world_size;
      selected = rbk::select_cells(cells, preset.selector);
    }
  } catch (const std::exception& e) {
    std::cerr << "rbk_sweep: " << e.what() << "\n";
    return kExitBadInput;
  }
  if (out.empty()) out = "sweeps/" + preset.plan.name;
  if (list) {
    for (const auto& c : cells)
      std::cout << (preset.selector.selects(c) ? "* " : "  ") << c.id << " " << c.overrides.dump() << "\n";
    return 0;
  }

  const rbk::RunContext context = rbk::RunContext::capture(argc, argv, preset.plan.grid.seeds.front());
  std::shared_ptr<rbk::DistributedContext> dist;  // the store only: cells need no collectives
  if (env.active) {
    try {
      dist = rbk::DistributedContext::connect(env, rbk::DistributedOptions{}, "");
    } catch (const std::exception& e) {
      std::cerr << "rbk_sweep: " << e.what() << "\n";
      return dynamic_cast<const rbk::DistributedConfigError*>(&e) ? kExitBadInput : 1;
    }
    rbk::write_log_line(std::cerr, "rbk_sweep[rank " + std::to_string(env.rank) + "]: " + std::to_string(selected.size()) +
                                       " of " + std::to_string(cells.size()) + " cells (shard " + std::to_string(env.rank) +
                                       "/" + std::to_string(env.world_size) + ")");
  }
  // Data of every selected cell and of its reference cell (paired init), loaded once per distinct
  // data options. A missing corpus directory is a ConfigError raised before anything is written.
  std::map<std::string, std::shared_ptr<rbk::LmData>> data_by_options;
  const auto data_of = [&](const std::string& cell_id) -> const rbk::LmData& {
    const auto& opts = preset.setups.at(cell_id).data;
    const std::string key = rbk::data_options_to_json(opts).dump();
    auto& slot = data_by_options[key];
    if (!slot)
      slot = std::make_shared<rbk::LmData>(rbk::load_lm_data(opts, out + "/token_cache", rbk::LmSplits::TrainValidTest));
    return *slot;
  };
  try {
    for (const auto& c : selected) {
      data_of(c.id);
      data_of(c.reference_cell);
    }
    rbk::prepare_sweep_dir(preset.plan, out);
  } catch (const std::exception& e) {
    std::cerr << "rbk_sweep: " << e.what() << "\n";
    return kExitBadInput;
  }

  const auto runner = [&](const rbk::SweepCell& cell, const std::string& cell_dir) -> json {
    CellSetup setup = preset.setups.at(cell.id);
    if (env.active && setup.train.device.is_cuda()) {
      setup.train.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
      rbk::set_current_device(setup.train.device);
    }
    if (setup.threads > 0) at::set_num_threads(static_cast<int>(setup.threads));
    if (stop_after_steps > 0) setup.train.stop_after_steps = stop_after_steps;
    const rbk::LmData& data = data_of(cell.id);
    rbk::LmConfig reference = preset.setups.at(cell.reference_cell).model;
    if (reference.vocab_size == 0) reference.vocab_size = data_of(cell.reference_cell).vocab_size();
    const auto after_init = rbk::paired_init_hook(cell, out, cell_dir, reference, [&](rbk::LanguageModel&, const json& record) {
      rbk::write_log_line(std::cerr, cell.id + ": paired init from " + cell.reference_cell + ": " +
                                         record["n_copied"].dump() + " parameters copied, " +
                                         record["n_not_copied"].dump() + " not");
    });
    return outcome_of_job(rbk::run_training_job(data, setup.model, setup.train, cell_dir, after_init), cell_dir);
  };

  rbk::SweepRunOptions options;
  options.selector = preset.selector;
  options.max_cells = max_cells;
  options.context = context.to_json();
  rbk::SweepRunReport report;
  const std::string done_key = "rbk/rbk_sweep/done/";
  try {
    report = rbk::run_sweep(preset.plan, out, runner, options);
  } catch (const std::exception& e) {
    std::cerr << "rbk_sweep: " << e.what() << "\n";
    if (dist) dist->store().set(done_key + std::to_string(env.rank), std::string("failed: ") + e.what());
    return 1;
  }
  if (dist) {
    // Every rank reports; rank 0 waits for all of them (cells take hours: no c10d timeout here; a
    // rank that dies is ended by the launcher, which ends this one too), then writes the summary
    // of every cell's outcome: the merge of the ranks' cells.
    dist->store().set(done_key + std::to_string(env.rank), report.to_json().dump());
    if (dist->is_writer()) {
      auto last_note = std::chrono::steady_clock::now();
      for (int r = 1; r < env.world_size;) {
        const auto state = dist->store().try_get(done_key + std::to_string(r));
        if (state) {
          if (state->rfind("failed: ", 0) == 0) rbk::write_log_line(std::cerr, "rbk_sweep: rank " + std::to_string(r) + " " + *state);
          ++r;
          continue;
        }
        if (std::chrono::steady_clock::now() - last_note > std::chrono::minutes(1)) {
          rbk::write_log_line(std::cerr, "rbk_sweep[rank 0]: waiting for rank " + std::to_string(r) + " to finish its cells");
          last_note = std::chrono::steady_clock::now();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      rbk::write_sweep_summary(preset.plan, out, context.to_json());
      selected = cells;  // rank 0 reports on the whole sweep
    }
  }
  const auto outcomes = rbk::read_cell_outcomes(preset.plan, out);
  int64_t errors = 0;
  for (const auto& c : selected) {
    const auto it = outcomes.find(c.id);
    if (it != outcomes.end() && it->second["status"] == "error") ++errors;
  }
  rbk::write_log_line(std::cerr, "rbk_sweep: " + std::to_string(report.ran) + " cells run, " +
                                     std::to_string(report.already_finished) + " already finished of " +
                                     std::to_string(report.selected) + " selected" +
                                     (report.interrupted ? " (stopped before finishing; rerun to continue)" : "") +
                                     "; summary " + rbk::sweep_summary_path(out));
  return errors > 0 ? 1 : 0;
}
