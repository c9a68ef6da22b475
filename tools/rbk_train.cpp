// rbk_train: trains one language model of the library (ResNet-BK in every BK-Core, router and
// initialisation option, the Transformer, Mamba or RWKV baseline), fp32 or bf16 autocast (CUDA),
// on a corpus directory, from a JSON preset plus key=value overrides (claim C05 and the later LM
// experiments; issue 17).
//   rbk_train (--preset NAME | --preset-file FILE) [--out DIR] [key=value ...]
// NAME is a file tools/presets/NAME.json. Keys: data.* (corpus, tokenizer), model.* (every
// LmConfig field), train.* (every TrainOptions field) from the field tables of options.h, plus
// seed, device (auto|cpu|cuda) and threads; a preset lists only what differs from the defaults.
// Writes into DIR: model.pt (checkpoint; rerunning the same command resumes from it),
// metrics.jsonl (steps, the validation curve of train.eval_every), and rbk_train.<preset>.json
// (run_experiment's provenance context, the resolved config, one row = the training job's record:
// status, valid/test PPL and bits per byte, valid curve, parameters, tokens/s, peak memory).
// Exit codes: 0 trained (the row's status may still be diverged / oom), 1 failed, 2 bad
// configuration or data (nothing written).
#include "rbk/experiment.h"
#include "rbk/lm_data.h"
#include "rbk/options.h"
#include "rbk/training_job.h"

#include <filesystem>
#include <iostream>

namespace fs = std::filesystem;

namespace {

rbk::ConfigSchema schema() {
  rbk::ConfigSchema s;
  rbk::add_data_options(s, "data.");
  rbk::add_lm_config_options(s, "model.");
  rbk::add_train_options(s, "train.");
  rbk::ParamSpec device, threads;
  device.key = "device";
  device.type = rbk::ParamType::String;
  device.help = "auto = CUDA when visible, else the CPU";
  device.choices = {"auto", "cpu", "cuda"};
  device.default_value = "auto";
  threads.key = "threads";
  threads.type = rbk::ParamType::Int;
  threads.help = "CPU threads (0 = RBK_THREADS or every core)";
  threads.min = 0;
  threads.max = 1024;
  threads.default_value = 0;
  return s.add(device).add(threads);
}

// Every check that needs no data, so that a bad value exits 2 before anything is read or written.
struct Plan {
  rbk::DataOptions data;
  rbk::LmConfig model;
  rbk::TrainOptions train;
};

Plan plan_of(const rbk::Config& cfg) {
  Plan p;
  p.data = rbk::data_options_from(cfg, "data.");
  p.model = rbk::lm_config_from(cfg, "model.");
  p.train = rbk::train_options_from(cfg, "train.", rbk::experiment_device(cfg));
  rbk::check_model_and_training(p.model, p.train, "model.", "train.");
  try {
    rbk::validate_train_options(p.train);
  } catch (const std::invalid_argument& e) {
    throw rbk::ConfigError(e.what());
  }
  p.train.seed = static_cast<uint64_t>(cfg.get_int("seed"));
  p.train.label = "rbk_train: ";
  return p;
}

// --preset NAME (without --preset-file) names a file of tools/presets; run_experiment itself would
// look under experiments/rbk_train/.
std::vector<std::string> with_preset_file(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  bool has_file = false;
  for (const auto& a : args) has_file = has_file || a == "--preset-file";
  for (size_t i = 1; i + 1 < args.size() && !has_file; ++i)
    if (args[i] == "--preset") {
      args.push_back("--preset-file");
      args.push_back(std::string(RBK_REPO_DIR) + "/tools/presets/" + args[i + 1] + ".json");
      break;
    }
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = with_preset_file(argc, argv);
  bool has_preset = false, help = false;
  for (const auto& a : args) {
    has_preset = has_preset || a == "--preset-file";
    help = help || a == "--help" || a == "-h";
  }
  if (!has_preset && !help) {
    std::cerr << "rbk_train: --preset NAME (tools/presets/NAME.json) or --preset-file FILE is required\n";
    return 2;
  }
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());

  rbk::ExperimentSpec spec{"rbk_train", {"C05"},
                           "train one language model (resnet_bk, transformer, mamba, rwkv) with validation, "
                           "checkpoints and resume",
                           schema()};
  return rbk::run_experiment(static_cast<int>(cargs.size()), cargs.data(), spec,
                             [](const rbk::Config& cfg, rbk::ExperimentOutput& out) {
    const Plan p = plan_of(cfg);
    // run_experiment names its scratch directory <out>/checkpoints.<preset> and deletes it after a
    // good run; rbk_train's checkpoint is its product, so it lives in <out> itself.
    const std::string dir = fs::path(out.checkpoint_dir).parent_path().string();
    out.checkpoint_dir.clear();
    // Missing directories are ConfigErrors (exit 2) raised before the token cache is written.
    const auto data = rbk::load_lm_data(p.data, dir + "/token_cache", rbk::LmSplits::TrainValidTest);
    std::cerr << "rbk_train: " << p.model.arch << ", V = " << data.vocab_size() << ", train tokens "
              << data.train.ids.numel() << ", device " << p.train.device.str() << ", precision " << p.train.precision
              << "\n";
    auto rec = rbk::run_training_job(data, p.model, p.train, dir);
    const std::string status = rec.at("status");
    if (status == "error") throw std::runtime_error(rec.at("reason").get<std::string>());
    if (status == "ok") {
      std::cerr << "rbk_train: valid PPL " << rec["valid"]["ppl"] << " (" << rec["valid"]["bits_per_byte"]
                << " bits/byte), test PPL " << rec["test"]["ppl"] << "\n";
      out.summary = {{"valid_ppl", rec["valid"]["ppl"]}, {"valid_bits_per_byte", rec["valid"]["bits_per_byte"]},
                     {"test_ppl", rec["test"]["ppl"]}, {"test_bits_per_byte", rec["test"]["bits_per_byte"]}};
    } else {
      std::cerr << "rbk_train: " << status << ": " << rec.at("reason").get<std::string>() << "\n";
    }
    out.summary["status"] = status;
    out.summary["checkpoint"] = rec.at("checkpoint");
    out.rows.push_back(std::move(rec));
  });
}
