// The resumable multi-seed sweep runner (issue #17): a grid of cells = named arms (option
// overrides) x optional grid axes x seeds, each trained and evaluated by a caller-supplied
// CellRunner, each outcome written atomically when it completes. Every claim that compares
// architectures or settings over seeds (long context, quantization, ablations, memory) runs here.
//
// Sweep directory layout:
//   plan.json                     the grid, base options and divergence rule (refused if it differs)
//   cells/<cell id>/              the runner's scratch: checkpoint, metrics log (kept for resume)
//   cells/<cell id>/outcome.json  written atomically when the cell completes
//   init/seed<k>.pt (+ .json)     paired design: the seed's shared initial parameters
//   summary.json                  per-seed arrays + per-cell rows (write_sweep_summary)
//
// Outcome statuses: ok | diverged (divergence.step, divergence.reason) | oom (reason) | skipped
// (reason) are final: a re-run skips the cell. error (reason) is recorded but retried by a re-run.
// A runner returning "stopped" (it checkpointed and returned, e.g. preempted) writes no outcome and
// ends the sweep run; the next run calls the runner for that cell again, which resumes from the
// checkpoint it left in the cell directory.
#pragma once
#include "rbk/paired_init.h"
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace rbk {

// Bad sweep definitions, selectors, plans and merges; the message names the key or file.
struct SweepError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A named arm: a set of option overrides, keys as the program's options ("model.arch").
struct SweepArm {
  std::string name;                                     // [A-Za-z0-9_-]+, unique
  nlohmann::json overrides = nlohmann::json::object();  // flat {"model.arch": "mamba", ...}
};

// A grid axis multiplies the arms: every arm is run at every value of every axis. The expanded
// arm is named "<arm>-<label><value>" per axis (label defaults to the key's last component), e.g.
// "mamba-lr0.001".
struct SweepAxis {
  std::string key;                  // option key, e.g. "train.lr"
  std::string label;                // "" = the part of key after its last '.'
  std::vector<nlohmann::json> values;
};

struct SweepGrid {
  std::vector<SweepArm> arms;
  std::vector<SweepAxis> axes;
  std::vector<uint64_t> seeds;      // in the order of the summary's per-seed arrays
};

struct SweepCell {
  int64_t index = 0;        // position in the enumeration (seed-major, then arm, then axes)
  std::string id;           // "<expanded arm>.seed<seed>"
  std::string arm;          // expanded arm name
  std::string base_arm;     // the arm it came from (before axes)
  uint64_t seed = 0;
  int64_t seed_index = 0;   // position of seed in grid.seeds
  int64_t arm_index = 0;    // position among the expanded arms; 0 = the seed's reference arm
  std::string reference_cell;  // id of arm 0 at this seed (paired design: its init is shared)
  nlohmann::json overrides = nlohmann::json::object();  // arm's overrides, then the axes' values
};

// Checks names, duplicates and emptiness (SweepError naming the offending arm/axis/seed).
void validate_grid(const SweepGrid& grid);
// Deterministic: the same grid always gives the same cells in the same order.
std::vector<SweepCell> enumerate_cells(const SweepGrid& grid);

// Which cells one command runs: id globs (fnmatch) and a shard "i/n" (cell index mod n == i,
// 0 <= i < n). Shards 0..n-1 partition the grid.
struct SweepSelector {
  std::vector<std::string> patterns;  // empty = every cell; a cell matches if any pattern does
  int64_t shard_index = 0;
  int64_t shard_count = 1;
  bool selects(const SweepCell& cell) const;
  nlohmann::json to_json() const;
};
// "i/n" -> shard; "key" names the option in messages.
void parse_shard(const std::string& text, SweepSelector& selector, const std::string& key = "shard");
// Cells selected; throws SweepError when a pattern matches no cell of the grid (a typo would
// otherwise silently run nothing).
std::vector<SweepCell> select_cells(const std::vector<SweepCell>& cells, const SweepSelector& selector);

// Everything that defines what a sweep computes; a sweep directory holds exactly one.
struct SweepPlan {
  std::string name;                                  // the result's experiment name
  SweepGrid grid;
  nlohmann::json base = nlohmann::json::object();    // the options every cell starts from
  nlohmann::json divergence_rule = nlohmann::json::object();  // DivergenceRule::to_json()
  nlohmann::json to_json() const;
  static SweepPlan from_json(const nlohmann::json& j);  // SweepError naming the field
};

// Outcome statuses.
bool is_final_status(const std::string& status);  // ok, diverged, oom, skipped
// Checks a runner's outcome (status known; diverged has divergence.step and .reason; oom,
// skipped and error have reason; metrics, if present, an object). Throws SweepError.
void check_cell_outcome(const nlohmann::json& outcome, const std::string& cell_id);

// The status part of a cell outcome from a training job's record (training_job.h): {"status"}
// for a stopped job (the runner returns it as is: the cell resumes later); otherwise status,
// reason (every status but ok) and, for a diverged job, divergence {step (-1 when unknown),
// reason}. Callers add "metrics" and whatever else the cell reports.
nlohmann::json cell_outcome_from_job(const nlohmann::json& job_record);

// A cell's work. Returns {"status": ..., "metrics": {"valid_ppl": ..., ...}, "reason"?,
// "divergence"?, anything else}. May throw: an exception becomes an "error" outcome, or "oom"
// when its message says out of memory.
using CellRunner = std::function<nlohmann::json(const SweepCell& cell, const std::string& cell_dir)>;

struct SweepRunOptions {
  SweepSelector selector;
  int64_t max_cells = 0;        // > 0: return after running this many cells (resume tests, budgets)
  bool retry_errors = true;     // re-run cells whose recorded outcome is "error"
  std::ostream* progress = nullptr;  // nullptr = std::cerr
  nlohmann::json context = nlohmann::json::object();  // RunContext::to_json() for the summary
};

struct SweepRunReport {
  int64_t selected = 0;
  int64_t already_finished = 0;
  int64_t ran = 0;              // cells whose outcome this run wrote
  bool interrupted = false;     // a runner returned "stopped", or max_cells was reached
  std::string interrupted_at;   // cell id
  nlohmann::json to_json() const;
};

// Paths inside a sweep directory.
std::string sweep_cell_dir(const std::string& sweep_dir, const std::string& cell_id);
std::string sweep_outcome_path(const std::string& sweep_dir, const std::string& cell_id);
std::string sweep_summary_path(const std::string& sweep_dir);
std::string sweep_init_path(const std::string& sweep_dir, uint64_t seed);  // .pt; names in .pt.json

// Writes plan.json, or checks that the directory's plan equals this one (SweepError otherwise).
void prepare_sweep_dir(const SweepPlan& plan, const std::string& sweep_dir);
// Runs the selected unfinished cells in enumeration order, rewriting the summary after each (so it
// is current even when the command is killed) and at the end. Progress:
// "cell i of n: <id>" before each selected cell (i counts the selected cells).
SweepRunReport run_sweep(const SweepPlan& plan, const std::string& sweep_dir, const CellRunner& runner,
                         const SweepRunOptions& options = {});

// Recorded outcomes, keyed by cell id (cells without outcome.json are absent).
std::map<std::string, nlohmann::json> read_cell_outcomes(const SweepPlan& plan, const std::string& sweep_dir);

// The summary object of a result document:
//   seeds/seed                       the grid's seeds, in order
//   seeds/<arm>_<metric>             per seed, null where the cell is not ok or lacks the metric
//   seeds/<arm>_status               per seed, "pending" where no outcome
//   cells                            one row per cell: id, arm, seed, overrides, status, metrics, ...
//   counts                           cells per status;  divergence_rule;  paired
nlohmann::json sweep_summary(const SweepPlan& plan, const std::map<std::string, nlohmann::json>& outcomes);
// Writes <sweep_dir>/summary.json atomically: a result document (schema rbk.result/1, experiment
// = plan.name, context, config = plan, rows = the cell rows, summary, status).
void write_sweep_summary(const SweepPlan& plan, const std::string& sweep_dir, const nlohmann::json& context);

// Combines the outcomes of several sweep directories of one plan into out_dir (plan.json, cell
// outcomes, summary). Refuses (SweepError naming the cell and both directories) a cell finished
// in two directories with different status or metrics, and directories with different plans.
void merge_sweeps(const std::vector<std::string>& sweep_dirs, const std::string& out_dir, const nlohmann::json& context);

// ---- Paired design: the same initial weights across the arms of a seed (paired_init.h) --------
// A module's named parameters, to a file (atomic: temporary + rename) and back.
void save_parameter_file(const std::string& path, const torch::nn::Module& module);
std::map<std::string, torch::Tensor> load_parameter_file(const std::string& path);

// The paired-design step for one cell's freshly initialised model (training_job.h's after-init
// hook). The seed's shared init is sweep_init_path(sweep_dir, cell.seed): when it is missing it is
// written first, from `model` itself for the reference cell, else from build_reference() (which
// must build the reference arm's model exactly as its own cell would: seeded with cell.seed); the
// default CPU generator's state is saved and restored around it, so the cell's own random stream
// does not depend on whether the file already existed. Then every cell copies the parameters
// whose name and shape match. Returns {"reference_cell", "init_file", copied...} (the same whichever cell wrote the file).
nlohmann::json apply_paired_init(const SweepCell& cell, const std::string& sweep_dir, torch::nn::Module& model,
                                 const std::function<std::shared_ptr<torch::nn::Module>()>& build_reference);

}  // namespace rbk
