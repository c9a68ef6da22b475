// The common main() of every experiment: arguments, preset, provenance, run, atomic write.
#include "rbk/experiment.h"

#include "rbk/torch_compat.h"

#include <cstdlib>
#include <filesystem>
#include <iostream>

namespace rbk {
namespace fs = std::filesystem;

std::string resolve_preset_name(const std::string& requested) {
  if (requested != "auto") return requested;
  if (const char* env = std::getenv("RBK_PRESET"))
    if (*env) return env;
  return cuda_available() ? "gpu" : "cpu";
}

std::string preset_path(const std::string& experiment, const std::string& preset) {
  std::string dir = std::string(RBK_SOURCE_DIR) + "/experiments";
  if (const char* env = std::getenv("RBK_PRESET_DIR"))
    if (*env) dir = env;
  return dir + "/" + experiment + "/presets/" + preset + ".json";
}

std::string overall_status(const nlohmann::json& rows) {
  size_t ok = 0;
  for (const auto& r : rows)
    if (r.value("status", std::string("missing")) == "ok") ++ok;
  if (rows.empty()) return "failed";
  if (ok == rows.size()) return "ok";
  return ok == 0 ? "failed" : "partial";
}

namespace {

void print_usage(const ExperimentSpec& spec) {
  std::cout << "exp_" << spec.name << ": " << spec.description << "\n"
            << "usage: exp_" << spec.name
            << " [--preset smoke|cpu|gpu|auto] [--preset-file PATH] [--out DIR] [key=value ...]\n"
            << "  auto = $RBK_PRESET, else gpu with a CUDA device, else cpu\n"
            << "keys (every preset sets all of them):\n"
            << spec.schema.describe();
}

}  // namespace

int run_experiment(int argc, char** argv, ExperimentSpec spec, const ExperimentBody& body) {
  if (!spec.schema.find("seed")) spec.schema.add_int("seed", 0, 2147483647, "random seed of every draw in the run");
  std::string preset = "auto", preset_file, out_dir = "results/" + spec.name;
  std::vector<std::string> overrides;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "exp_" << spec.name << ": " << flag << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      print_usage(spec);
      return 0;
    } else if (a == "--preset") {
      preset = next("--preset");
    } else if (a == "--preset-file") {
      preset_file = next("--preset-file");
    } else if (a == "--out") {
      out_dir = next("--out");
    } else if (a.rfind("--", 0) == 0) {
      std::cerr << "exp_" << spec.name << ": unknown option '" << a << "' (see --help)\n";
      return 2;
    } else {
      overrides.push_back(a);
    }
  }
  if (!preset_file.empty() && preset == "auto") preset = fs::path(preset_file).stem().string();  // names the output
  preset = resolve_preset_name(preset);
  if (preset_file.empty()) preset_file = preset_path(spec.name, preset);

  Config config;
  try {
    config = load_config(spec.schema, preset_file, preset, overrides);
  } catch (const ConfigError& e) {
    std::cerr << "exp_" << spec.name << ": configuration error: " << e.what() << "\n";
    return 2;
  }

  // After the configuration is validated (a bad one still exits 2 on any machine), before
  // anything is measured or written: a GPU-only experiment has nothing to say without a device.
  if (spec.requires_cuda && !cuda_available()) {
    std::cout << "exp_" << spec.name << ": needs a CUDA device; none visible — skipped (exit "
              << kExitSkipped << ")\n";
    return kExitSkipped;
  }

  RunContext context = RunContext::capture(argc, argv, static_cast<uint64_t>(config.get_int("seed")));
  if (spec.schema.find("threads")) {
    // Timing experiments pin their thread count: on a shared machine each OpenMP parallel region
    // can wait a whole scheduling quantum for a descheduled worker (NOTES.md). 0 = RBK_THREADS or
    // every core.
    if (config.get_int("threads") > 0) at::set_num_threads(static_cast<int>(config.get_int("threads")));
    else configure_cpu_threads();
    context.cpu_threads = at::get_num_threads();
  }
  // The BLAS follows the run's thread count and its rate is measured at it: a CPU timing of
  // record says which BLAS it ran on and what that machine's sgemm did (issue 16).
  context.probe_compute();
  torch::manual_seed(config.get_int("seed"));
  std::cout << "exp_" << spec.name << " preset=" << preset << " commit=" << context.git_commit.substr(0, 12)
            << (context.git_dirty == "true" ? "+dirty" : "") << " device=" << context.device
            << " threads=" << context.cpu_threads << "\n"
            << "exp_" << spec.name << " blas=" << context.blas << " sgemm="
            << (context.sgemm_gflops > 0 ? std::to_string(static_cast<int>(context.sgemm_gflops + 0.5)) : "?")
            << " GFLOP/s\n";

  ExperimentOutput output;
  output.checkpoint_dir = out_dir + "/checkpoints." + preset;
  int exit_code = 0;
  std::string error;
  try {
    body(config, output);
  } catch (const ConfigError& e) {
    std::cerr << "exp_" << spec.name << ": configuration error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    error = e.what();
    exit_code = 1;
    std::cerr << "exp_" << spec.name << ": run failed: " << error << "\n";
  }
  context.finish();

  // A failed run never replaces a good result of record: it goes beside it as *.failed.json.
  const std::string stem = out_dir + "/" + spec.name + "." + preset + (exit_code ? ".failed" : "");
  nlohmann::json doc = {{"schema", "rbk.result/1"},
                        {"experiment", spec.name},
                        {"claims", spec.claims},
                        {"description", spec.description},
                        {"preset", preset},
                        {"context", context.to_json()},
                        {"config", config.values()},
                        {"rows", output.rows},
                        {"summary", output.summary},
                        {"arrays_file", nullptr}};
  doc["status"] = exit_code ? "failed" : overall_status(output.rows);
  if (!error.empty()) doc["error"] = error;
  try {
    if (!output.arrays.empty()) {
      write_hdf5_atomic(stem + ".h5", output.arrays,
                        {{"experiment", spec.name},
                         {"context", context.to_json().dump()},
                         {"config", config.values().dump()},
                         {"git_commit", context.git_commit}});
      doc["arrays_file"] = fs::path(stem + ".h5").filename().string();
    }
    write_json_atomic(stem + ".json", doc);
  } catch (const std::exception& e) {
    std::cerr << "exp_" << spec.name << ": cannot write results: " << e.what() << "\n";
    return 1;
  }
  std::cout << "exp_" << spec.name << ": wrote " << stem << ".json (status " << doc["status"].get<std::string>()
            << ")\n";
  if (exit_code == 0 && !output.checkpoint_dir.empty()) {
    remove_directory_tree(output.checkpoint_dir);  // finished: checkpoints are only for resuming
  }
  return exit_code;
}

torch::Device experiment_device(const Config& cfg) {
  const std::string d = cfg.get_string("device");
  if (d == "cuda" && !cuda_available()) throw ConfigError("device = 'cuda' but no CUDA device is available");
  if (d == "cuda" || (d == "auto" && cuda_available())) return torch::kCUDA;
  if (d == "cpu" || d == "auto") return torch::kCPU;
  throw ConfigError("device = '" + d + "': expected 'auto', 'cpu' or 'cuda'");
}

}  // namespace rbk
