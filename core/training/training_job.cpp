// One training job: build, train (or resume), evaluate, one JSON record (see training_job.h;
// issue 17).
#include "rbk/training_job.h"

#include "rbk/distributed.h"
#include "rbk/evaluator.h"
#include "rbk/lm_loss.h"
#include "rbk/position_encoding.h"
#include "rbk/results.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <new>

namespace rbk {
namespace {

using Clock = std::chrono::steady_clock;

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// A user-facing one-line message: c10::Error's what() carries a C++ stack trace.
std::string exception_message(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return first_line(c->what_without_backtrace());
  return first_line(e.what());
}

nlohmann::json eval_json(LanguageModel& model, const TokenStream& s, const TrainOptions& o) {
  // Evaluation always takes the chunked head: it never needs the full logits, and it matches the
  // plain path up to fp32 summation order (evaluator.h).
  const int64_t chunk = o.loss_chunk_tokens > 0 ? o.loss_chunk_tokens : kDefaultLossChunkTokens;
  auto j = evaluate_language_model(model, s, o.batch_size, o.seq_len, o.layout, o.device, o.precision, chunk).to_json();
  j["source"] = s.source;
  j["bytes"] = s.n_bytes;
  return j;
}

}  // namespace

std::string job_checkpoint_path(const std::string& out_dir) { return out_dir + "/model.pt"; }
std::string job_metrics_path(const std::string& out_dir) { return out_dir + "/metrics.jsonl"; }

nlohmann::json run_training_job(const LmData& data, const LmConfig& model_config, const TrainOptions& train,
                                const std::string& out_dir, const ModelInitHook& after_init) {
  const auto t0 = Clock::now();
  TrainOptions o = train;
  o.checkpoint_path = job_checkpoint_path(out_dir);
  o.metrics_path = job_metrics_path(out_dir);
  LmConfig c = model_config;
  nlohmann::json rec{{"schema", "rbk.training_job/1"}, {"status", "error"}, {"reason", ""}, {"phase", "build"},
                     {"out_dir", out_dir}, {"checkpoint", o.checkpoint_path}, {"train", train_options_to_json(o)},
                     {"data", data.summary()}, {"valid", nullptr}, {"test", nullptr}};
  const std::string memory_scope = reset_peak_memory(o.device);
  std::shared_ptr<LanguageModel> model;
  TrainResult tr;
  bool trained = false;
  // Data parallel (distributed.h): the shards of every rank are recorded; a checkpoint resumes
  // only at the world size that wrote it.
  TrainSync* const sync = active_train_sync();
  const int world_size = sync ? sync->world_size() : 1;
  if (sync) {
    nlohmann::json shards = nlohmann::json::array();
    for (int r = 0; r < world_size; ++r) shards.push_back(train_shard(data.train.ids.numel(), o.batch_size, r, world_size).to_json());
    rec["distributed"] = {{"world_size", world_size}, {"rank", sync->rank()}, {"train_shards", shards}};
    rec["data"]["shard"] = shards[sync->rank()];
  }
  if (std::filesystem::exists(o.checkpoint_path)) {
    int64_t recorded = 1;
    try {
      const auto meta = read_checkpoint_meta(o.checkpoint_path);
      const auto& extra = meta.value("extra", nlohmann::json::object());
      if (extra.contains("distributed")) recorded = extra["distributed"].value("world_size", int64_t(1));
    } catch (const CheckpointError&) {
      recorded = world_size;  // an unreadable checkpoint is reported by the trainer as before
    }
    if (recorded != world_size)
      throw DistributedConfigError(o.checkpoint_path + " was written by a run with WORLD_SIZE = " + std::to_string(recorded) +
                                   "; this run has WORLD_SIZE = " + std::to_string(world_size) +
                                   ": resume with the same number of processes, or train into a fresh directory");
  }
  try {
    if (c.vocab_size == 0) c.vocab_size = data.vocab_size();
    if (c.vocab_size != data.vocab_size())
      throw std::invalid_argument("model.vocab_size = " + std::to_string(c.vocab_size) + ": the data's tokenizer has " +
                                  std::to_string(data.vocab_size()) + " tokens (use 0 to take it from the data)");
    c.validate();
    rec["model"] = c.to_json();
    const bool resume = std::filesystem::exists(o.checkpoint_path);
    torch::manual_seed(o.seed);
    model = make_language_model(c);
    if (after_init && !resume) after_init(*model);
    const int64_t total = count_parameters(*model), table = position_parameters(c);
    rec["parameters"] = {{"total", total}, {"position_table", table}, {"without_position_table", total - table}};
    std::filesystem::create_directories(out_dir);
    nlohmann::json extra{{"tokenizer", data.tokenizer_meta}, {"layout", to_string(o.layout)}, {"batch_size", o.batch_size},
                         {"seq_len", o.seq_len}, {"precision", o.precision}, {"data", data_options_to_json(data.options)},
                         {"train", rec["train"]}};
    if (sync) extra["distributed"] = {{"world_size", world_size}};
    rec["phase"] = "train";
    tr = train_language_model(*model, data.train.ids, o, extra, &data.valid);
    trained = true;
    if (tr.status == "ok") {
      rec["phase"] = "evaluate";
      rec["valid"] = eval_json(*model, data.valid, o);
      rec["test"] = eval_json(*model, data.test, o);
    }
    rec["status"] = tr.status;
    rec["reason"] = tr.status == "ok" ? "" : tr.message;
  } catch (const DistributedError&) {
    throw;  // a dead or hung rank ends the whole job: no record, no result (distributed.h)
  } catch (const DistributedConfigError&) {
    throw;
  } catch (const std::exception& e) {
    rec["status"] = is_out_of_memory(e) ? "oom" : "error";
    rec["reason"] = exception_message(e);
  }
  if (trained) {
    rec["steps"] = tr.steps;
    rec["tokens"] = tr.tokens;
    const auto trj = tr.to_json();
    rec["epochs"] = trj.at("epochs");
    rec["valid_curve"] = trj.at("valid_curve");
    rec["step_losses"] = tr.step_losses;
    rec["divergence"] = tr.divergence;
    rec["divergence_step"] = trj.at("divergence_step");
    rec["tokens_per_second"] = tr.tokens_per_second;
    rec["train_seconds"] = tr.seconds;
    rec["eval_seconds"] = tr.eval_seconds;
  }
  // The job's own span (build and evaluation included) merged with the trainer's, which carries
  // the peaks of earlier segments of a resumed run.
  auto peak = read_peak_memory(o.device, memory_scope);
  if (trained) {
    peak.cuda_peak_allocated_bytes = std::max(peak.cuda_peak_allocated_bytes, tr.peak_memory.cuda_peak_allocated_bytes);
    peak.cpu_peak_rss_bytes = std::max(peak.cpu_peak_rss_bytes, tr.peak_memory.cpu_peak_rss_bytes);
  }
  rec["peak_memory"] = peak.to_json();
  if (sync) rec["distributed"]["reducer"] = sync->stats();
  if (rec["status"] == "ok") rec.erase("phase");
  rec["seconds"] = std::chrono::duration<double>(Clock::now() - t0).count();
  return rec;
}

nlohmann::json run_training_job(const DataOptions& data, const LmConfig& model, const TrainOptions& train,
                                const std::string& out_dir, const ModelInitHook& after_init) {
  LmData loaded;
  try {
    loaded = load_lm_data(data, out_dir + "/token_cache", LmSplits::TrainValidTest);
  } catch (const std::exception& e) {
    return {{"schema", "rbk.training_job/1"}, {"status", is_out_of_memory(e) ? "oom" : "error"},
            {"reason", exception_message(e)}, {"phase", "data"}, {"out_dir", out_dir},
            {"data", data_options_to_json(data)}, {"train", train_options_to_json(train)}, {"model", model.to_json()}};
  }
  return run_training_job(loaded, model, train, out_dir, after_init);
}

ModelInitHook paired_init_hook(const SweepCell& cell, const std::string& sweep_dir, const std::string& cell_dir,
                               const LmConfig& reference,
                               std::function<void(LanguageModel&, nlohmann::json& record)> adjust) {
  return [cell, sweep_dir, cell_dir, reference, adjust](LanguageModel& model) {
    const auto build_reference = [&]() -> std::shared_ptr<torch::nn::Module> {
      torch::manual_seed(cell.seed);  // as run_training_job seeds the reference cell's fresh model
      return make_language_model(reference);
    };
    nlohmann::json record = apply_paired_init(cell, sweep_dir, model, build_reference);
    if (adjust) adjust(model, record);
    write_json_atomic(cell_dir + "/paired.json", record);
  };
}

}  // namespace rbk
