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
//
// Data parallel (issue 23, core/training/include/rbk/distributed.h): launched by torchrun or
// scripts/launch_local.sh (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), every rank runs
// this program; train.batch_size is the global batch, split over the ranks; dist.backend
// (gloo | nccl | auto), dist.timeout_s (c10d's), dist.bucket_mib and dist.overlap set the
// gradient all-reduce. Rank 0 alone writes (the token cache, model.pt, metrics.jsonl, the result);
// the others write nothing. A dead or hung rank ends every rank with one message naming the rank
// and step, exit 1, no result written. Bad or partial launch variables: exit 2.
#include "rbk/distributed.h"
#include "rbk/experiment.h"
#include "rbk/lm_data.h"
#include "rbk/log_line.h"
#include "rbk/options.h"
#include "rbk/training_job.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>

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
  s.add(device).add(threads);
  const auto spec = [](const char* key, rbk::ParamType type, const char* help) {
    rbk::ParamSpec p;
    p.key = key;
    p.type = type;
    p.help = help;
    return p;
  };
  auto backend = spec("dist.backend", rbk::ParamType::String,
                      "data-parallel collectives when launched by torchrun / scripts/launch_local.sh: nccl (CUDA), "
                      "gloo (CPU), auto = nccl on CUDA else gloo");
  backend.choices = {"auto", "gloo", "nccl"};
  backend.default_value = "auto";
  auto timeout = spec("dist.timeout_s", rbk::ParamType::Real,
                      "c10d timeout of every collective and of the rendezvous: a dead or hung rank ends the job "
                      "within it");
  timeout.min = 0.1;
  timeout.max = 86400;
  timeout.default_value = rbk::kDefaultDistributedTimeoutSeconds;
  auto bucket = spec("dist.bucket_mib", rbk::ParamType::Real, "gradient all-reduce bucket size (MiB)");
  bucket.min = 0.0;
  bucket.max = 4096;
  bucket.default_value = rbk::kDefaultBucketMiB;
  auto overlap = spec("dist.overlap", rbk::ParamType::Bool,
                      "launch each bucket's all-reduce from gradient hooks during backward (false: all after it)");
  overlap.default_value = true;
  return s.add(backend).add(timeout).add(bucket).add(overlap);
}

rbk::DistributedOptions distributed_options_of(const rbk::Config& cfg) {
  rbk::DistributedOptions d;
  d.backend = cfg.get_string("dist.backend");
  d.timeout_s = cfg.get_real("dist.timeout_s");
  d.bucket_mib = cfg.get_real("dist.bucket_mib");
  d.overlap = cfg.get_bool("dist.overlap");
  return d;
}

// A dead or hung peer: one message, and the process ends at once, writing nothing (c10d's
// threads may be blocked on the dead peer, so no destructor runs).
[[noreturn]] void end_job(const rbk::DistributedError& e) {
  std::cerr << "rbk_train: distributed job failed: " << e.what() << std::endl;
  std::fflush(stderr);
  std::_Exit(1);
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

// The job itself, the same on every rank; env.active = false: single process, as before issue 23.
void train_body(const rbk::Config& cfg, rbk::ExperimentOutput& out, const rbk::LaunchEnv& env) {
  Plan p = plan_of(cfg);
  // run_experiment names its scratch directory <out>/checkpoints.<preset> and deletes it after a
  // good run; rbk_train's checkpoint is its product, so it lives in <out> itself.
  const std::string dir = fs::path(out.checkpoint_dir).parent_path().string();
  out.checkpoint_dir.clear();
  std::shared_ptr<rbk::DistributedContext> ctx;
  std::unique_ptr<rbk::TrainSync> reducer;
  if (env.active) {
    const auto dopt = distributed_options_of(cfg);
    if (p.train.device.is_cuda()) {
      p.train.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
      rbk::set_current_device(p.train.device);
    }
    std::string backend;
    try {
      rbk::check_data_parallel_options(p.train, env.world_size);
      backend = rbk::resolve_backend(dopt.backend, p.train.device);
      ctx = rbk::DistributedContext::connect(env, dopt, backend);
    } catch (const rbk::DistributedConfigError& e) {
      throw rbk::ConfigError(e.what());
    } catch (const rbk::DistributedError& e) {
      end_job(e);
    }
    reducer = rbk::make_gradient_reducer(ctx, p.train.device);
    p.train.label = "rbk_train[rank " + std::to_string(env.rank) + "]: ";
    std::ostringstream line;
    line << p.train.label << "world size " << env.world_size << ", backend " << backend << ", device "
         << p.train.device.str() << ", c10d timeout " << dopt.timeout_s << " s";
    rbk::write_log_line(std::cerr, line.str());
  }
  // Missing directories are ConfigErrors (exit 2) raised before the token cache is written. Rank 0
  // alone writes the cache; the others wait for it, then read it.
  const std::string data_ready_key = "rbk/rbk_train/data_ready";
  rbk::LmData data;
  try {
    if (!ctx || ctx->is_writer()) {
      try {
        data = rbk::load_lm_data(p.data, dir + "/token_cache", rbk::LmSplits::TrainValidTest);
      } catch (const std::exception& e) {
        if (ctx) ctx->store().set(data_ready_key, std::string("failed: ") + e.what());
        throw;
      }
      if (ctx) ctx->store().set(data_ready_key, "ok");
    } else {
      ctx->store().wait({data_ready_key}, std::chrono::milliseconds(static_cast<int64_t>(ctx->options().timeout_s * 1000)));
      const auto state = ctx->store().try_get(data_ready_key).value_or("");
      if (state != "ok") throw rbk::ConfigError("rank 0 could not load the data: " + state);
      data = rbk::load_lm_data(p.data, dir + "/token_cache", rbk::LmSplits::TrainValidTest);
    }
  } catch (const rbk::ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    if (!ctx || dynamic_cast<const rbk::CorpusError*>(&e)) throw;
    end_job(ctx->collective_failure("waiting for rank 0's data", 0, e.what()));
  }
  {
    std::ostringstream line;
    line << p.train.label << p.model.arch << ", V = " << data.vocab_size() << ", train tokens "
         << data.train.ids.numel() << ", device " << p.train.device.str() << ", precision " << p.train.precision;
    rbk::write_log_line(std::cerr, line.str());
  }
  if (ctx)
    rbk::write_log_line(std::cerr, p.train.label + "train shard " +
                                       rbk::train_shard(data.train.ids.numel(), p.train.batch_size, env.rank, env.world_size)
                                           .to_json()
                                           .dump());
  nlohmann::json rec;
  {
    rbk::ScopedTrainSync installed(reducer.get());
    try {
      rec = rbk::run_training_job(data, p.model, p.train, dir);
    } catch (const rbk::DistributedConfigError& e) {
      throw rbk::ConfigError(e.what());
    } catch (const rbk::DistributedError& e) {
      end_job(e);
    }
  }
  const std::string status = rec.at("status");
  if (status == "error") throw std::runtime_error(rec.at("reason").get<std::string>());
  if (status == "ok") {
    rbk::write_log_line(std::cerr, p.train.label + "valid PPL " + rec["valid"]["ppl"].dump() + " (" +
                                       rec["valid"]["bits_per_byte"].dump() + " bits/byte), test PPL " +
                                       rec["test"]["ppl"].dump());
    out.summary = {{"valid_ppl", rec["valid"]["ppl"]}, {"valid_bits_per_byte", rec["valid"]["bits_per_byte"]},
                   {"test_ppl", rec["test"]["ppl"]}, {"test_bits_per_byte", rec["test"]["bits_per_byte"]}};
  } else {
    rbk::write_log_line(std::cerr, p.train.label + status + ": " + rec.at("reason").get<std::string>());
  }
  out.summary["status"] = status;
  out.summary["checkpoint"] = rec.at("checkpoint");
  if (ctx) out.summary["world_size"] = env.world_size;
  out.rows.push_back(std::move(rec));
}

// Ranks other than 0: the same configuration and job as run_experiment would run, writing nothing.
int run_worker_rank(const std::vector<std::string>& args, rbk::ExperimentSpec spec, const rbk::LaunchEnv& env) {
  if (!spec.schema.find("seed")) spec.schema.add_int("seed", 0, 2147483647, "random seed of every draw in the run");
  std::string preset = "auto", preset_file, out_dir = "results/" + spec.name;
  std::vector<std::string> overrides;
  for (size_t i = 1; i < args.size(); ++i) {
    const auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw rbk::ConfigError(args[i] + " needs a value");
      return args[++i];
    };
    if (args[i] == "--preset") preset = value();
    else if (args[i] == "--preset-file") preset_file = value();
    else if (args[i] == "--out") out_dir = value();
    else if (args[i].rfind("--", 0) == 0) throw rbk::ConfigError("unknown option '" + args[i] + "' (see --help)");
    else overrides.push_back(args[i]);
  }
  if (preset == "auto") preset = fs::path(preset_file).stem().string();
  const rbk::Config config = rbk::load_config(spec.schema, preset_file, preset, overrides);
  if (config.get_int("threads") > 0) at::set_num_threads(static_cast<int>(config.get_int("threads")));
  else rbk::configure_cpu_threads();
  torch::manual_seed(config.get_int("seed"));
  rbk::ExperimentOutput output;
  output.checkpoint_dir = out_dir + "/checkpoints." + preset;
  train_body(config, output, env);
  return 0;
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
  rbk::LaunchEnv env;
  try {
    env = rbk::read_launch_env();
  } catch (const rbk::DistributedConfigError& e) {
    std::cerr << "rbk_train: " << e.what() << "\n";
    return 2;
  }
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());

  rbk::ExperimentSpec spec{"rbk_train", {"C05"},
                           "train one language model (resnet_bk, transformer, mamba, rwkv) with validation, "
                           "checkpoints and resume",
                           schema()};
  if (env.active && env.rank != 0 && !help) {
    try {
      return run_worker_rank(args, spec, env);
    } catch (const rbk::ConfigError& e) {
      rbk::write_log_line(std::cerr, "rbk_train[rank " + std::to_string(env.rank) + "]: configuration error: " + e.what());
      return 2;
    } catch (const std::exception& e) {
      rbk::write_log_line(std::cerr, "rbk_train[rank " + std::to_string(env.rank) + "]: run failed: " + e.what());
      return 1;
    }
  }
  return rbk::run_experiment(static_cast<int>(cargs.size()), cargs.data(), spec,
                             [&env](const rbk::Config& cfg, rbk::ExperimentOutput& out) { train_body(cfg, out, env); });
}
