// The options the experiments with a resumable sweep share (ablations, act_flops, train_poc,
// quantization):
// where the sweep directory lives and how many cells one call runs. A sweep too long for one
// time-limited command (a GPU call) runs over several: each call names the same persistent
// sweep_dir, adds its cells (max_cells at most) and writes the result of the cells finished so far.
// long_context keeps its own option (its directory holds two sweeps).
#pragma once
#include "rbk/config.h"
#include "rbk/sweep.h"

#include <string>

namespace rbk {

// sweep_dir ('' = under the run's checkpoint directory, removed when the run ends) and max_cells
// (0 = every cell), both with defaults: a preset that runs its sweep in one go need not name them.
void add_sweep_options(ConfigSchema& schema);

// The sweep directory of this run: sweep_dir, else <checkpoint_dir>/sweep; prepared for plan. A
// directory that holds another plan is a configuration error (ConfigError naming sweep_dir).
std::string prepared_sweep_dir(const Config& cfg, const SweepPlan& plan, const std::string& checkpoint_dir);

// SweepRunOptions with this call's max_cells.
SweepRunOptions sweep_run_options(const Config& cfg);

}  // namespace rbk
