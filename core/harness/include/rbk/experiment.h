// The shape every experiment executable shares (house style):
//   config  = preset + overrides, validated        context = RunContext::capture()
//   output  = run(config)                          write JSON (+ HDF5) atomically
// Command line:  exp_<name> [--preset smoke|cpu|gpu|auto] [--preset-file PATH (names the output after its stem unless --preset is given)] [--out DIR]
//                           [--help] [key=value ...]
// Exit codes: 0 ran (claims are judged in validation/), 1 the run failed, 2 bad configuration,
//             77 skipped (spec.requires_cuda and no CUDA device visible; nothing written).
#pragma once
#include "rbk/config.h"
#include "rbk/results.h"
#include "rbk/run_context.h"

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace rbk {

// ctest's SKIP_RETURN_CODE (cmake/RbkTest.cmake registers it on every test).
constexpr int kExitSkipped = 77;

struct ExperimentSpec {
  std::string name;                 // "bk_numerics": executable exp_bk_numerics, results/<name>/
  std::vector<std::string> claims;  // {"C01"}
  std::string description;
  ConfigSchema schema;              // "seed" is added automatically; an int key "threads" (> 0)
                                    // pins LibTorch's CPU thread count for the run
  // GPU-only: without a visible CUDA device run_experiment (after validating the config, so a bad
  // configuration still exits 2) prints one line and exits 77, writing nothing; ctest reports
  // such a test as Skipped instead of Passed with every row skipped.
  bool requires_cuda = false;
};

struct ExperimentOutput {
  nlohmann::json rows = nlohmann::json::array();  // one object per measured point; each has "status"
  nlohmann::json summary = nlohmann::json::object();
  std::vector<ArrayRecord> arrays;               // written to <name>.<preset>.h5 when non-empty
  // Scratch directory for checkpoints of long runs (created by run_experiment, kept on failure).
  std::string checkpoint_dir;
};

using ExperimentBody = std::function<void(const Config&, ExperimentOutput&)>;

// Parses argv, loads the preset, captures the context, runs the body and writes
// <out>/<name>.<preset>.json (+ .h5). Returns the process exit code.
int run_experiment(int argc, char** argv, ExperimentSpec spec, const ExperimentBody& body);

// "auto" resolves to RBK_PRESET if set, else "gpu" when CUDA is available, else "cpu".
std::string resolve_preset_name(const std::string& requested);

// Directory holding experiments/<name>/presets/*.json (RBK_SOURCE_DIR at build time, or
// RBK_PRESET_DIR in the environment).
std::string preset_path(const std::string& experiment, const std::string& preset);

// Counts rows by status; "ok" if every row is ok, else "partial" or "failed".
std::string overall_status(const nlohmann::json& rows);

// The device of an experiment with a "device" config key ("auto" | "cpu" | "cuda"): "auto" takes
// CUDA when a device is visible; "cuda" without one is a ConfigError (exit 2, nothing written).
torch::Device experiment_device(const Config& cfg);

}  // namespace rbk
