#include "rbk/sweep_options.h"

namespace rbk {

void add_sweep_options(ConfigSchema& schema) {
  ParamSpec dir;
  dir.key = "sweep_dir";
  dir.type = ParamType::String;
  dir.help = "sweep directory ('' = under the run's checkpoint directory, removed when the run ends); a persistent one "
             "lets a run split over time-limited calls add its cells (finished cells are skipped, a cut one resumes)";
  dir.default_value = "";
  schema.add(dir);
  ParamSpec max_cells;
  max_cells.key = "max_cells";
  max_cells.type = ParamType::Int;
  max_cells.help = "cells this call trains (0 = all); the result covers the cells finished so far";
  max_cells.min = 0;
  max_cells.max = 1 << 20;
  max_cells.default_value = 0;
  schema.add(max_cells);
}

std::string prepared_sweep_dir(const Config& cfg, const SweepPlan& plan, const std::string& checkpoint_dir) {
  const std::string named = cfg.get_string("sweep_dir");
  const std::string dir = named.empty() ? checkpoint_dir + "/sweep" : named;
  try {
    prepare_sweep_dir(plan, dir);
  } catch (const SweepError& e) {
    throw ConfigError("sweep_dir = '" + dir + "': " + e.what());
  }
  return dir;
}

SweepRunOptions sweep_run_options(const Config& cfg) {
  SweepRunOptions options;
  options.max_cells = cfg.get_int("max_cells");
  return options;
}

}  // namespace rbk
