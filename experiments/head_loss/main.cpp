// exp_head_loss: issue 17's benchmark of the chunked LM head + cross-entropy (rbk/lm_loss.h; a
// performance measurement, not a paper claim). Three parts, in one run:
//  1. training_step rows: the trainer's step (loss, backward, gradient clipping, AdamW) of each
//     architecture in `archs` at the configured size, the plain path (full logits) against the
//     chunked path (train.loss_chunk_tokens tokens per chunk; 0 = rbk::kDefaultLossChunkTokens).
//     Two copies of the model with the same initial weights, one per path. Before timing, both
//     paths' loss and gradients on the same batch must agree within `check_tolerance` (fp32
//     summation order), else the row is "mismatch" and is not timed. Then `repeats` interleaved
//     repeats (the order alternates: plain first in even repeats, chunked first in odd ones), each
//     `steps_per_repeat` steps per path; tokens/s per repeat and path, and their ratio per repeat.
//  2. head_loss rows: the head + loss alone (forward + backward of features (B N x D) through a
//     (V x D) biased head), plain against every chunk size of `chunk_sweep` under both gradient
//     schedules (median of `sweep_repeats`): the evidence for the default chunk size.
//  3. long_memory rows: the peak memory of one training step of a ResNet-BK model at
//     long_seq_len tokens (batch 1, vocabulary long_vocab_size), chunked and plain (chunked first).
//     On the CPU: the process's peak resident set (VmHWM after a /proc/self/clear_refs reset,
//     rbk/peak_memory.h) minus the resident set at the reset, with free heap pages returned to the
//     system (malloc_trim) just before it; LibTorch 1.13 keeps no CPU allocator statistics. On
//     CUDA: the caching allocator's peak of allocated bytes, reset before the step.
// Inputs are uniform random token ids (throughput and memory do not depend on the text), drawn
// once before timing.
#include "rbk/experiment.h"
#include "rbk/lm_loss.h"
#include "rbk/language_model.h"
#include "rbk/options.h"
#include "rbk/peak_memory.h"
#include "rbk/timing.h"
#include "rbk/torch_compat.h"
#include "rbk/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <memory>
#include <string>
#include <vector>

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using torch::Tensor;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Returns the allocator's free pages to the system (glibc malloc_trim), so that the resident set
// at a peak-memory reset holds live data only and the step's allocations show up as growth even
// where they reuse memory an earlier part of the run freed.
void release_free_heap_pages() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

// One model with its optimizer, trained with one loss path (chunk 0 = plain).
struct Trainee {
  std::shared_ptr<rbk::LanguageModel> model;
  std::unique_ptr<torch::optim::AdamW> optim;
  std::vector<Tensor> params;
  int64_t chunk = 0;
  Tensor loss;
};

Trainee make_trainee(const rbk::LmConfig& mc, const rbk::TrainOptions& to, uint64_t seed, int64_t chunk,
                     const torch::Device& device) {
  Trainee t;
  torch::manual_seed(seed);
  t.model = rbk::make_language_model(mc);
  t.model->to(device);
  t.model->train();
  t.params = t.model->parameters();
  t.optim = std::make_unique<torch::optim::AdamW>(
      t.params, torch::optim::AdamWOptions(to.lr).weight_decay(to.weight_decay).betas({to.beta1, to.beta2}).eps(to.eps));
  t.chunk = chunk;
  return t;
}

// The trainer's step: loss (forward under autocast when bf16), backward, clipping, AdamW.
void train_step(Trainee& t, const Tensor& batch, int64_t N, const rbk::TrainOptions& to, bool bf16) {
  t.optim->zero_grad();
  t.loss = rbk::language_model_loss(*t.model, batch.narrow(1, 0, N), batch.narrow(1, 1, N), bf16, t.chunk);
  t.loss.backward();
  if (to.clip_norm > 0) rbk::clip_grad_norm_no_sync(t.params, to.clip_norm);
  t.optim->step();
}

// Loss and gradients of both paths on one batch, before any step: relative differences.
json check_paths_agree(Trainee& plain, Trainee& chunked, const Tensor& batch, int64_t N, bool bf16) {
  std::vector<Tensor> grads[2];
  double losses[2];
  Trainee* ts[2] = {&plain, &chunked};
  for (int i = 0; i < 2; ++i) {
    ts[i]->optim->zero_grad();
    auto loss = rbk::language_model_loss(*ts[i]->model, batch.narrow(1, 0, N), batch.narrow(1, 1, N), bf16, ts[i]->chunk);
    loss.backward();
    losses[i] = loss.item<double>();
    for (const auto& p : ts[i]->params) grads[i].push_back(p.grad().defined() ? p.grad().clone() : Tensor());
    ts[i]->optim->zero_grad();
  }
  double worst = 0.0;
  // Nothing is timed unless both paths computed something: finite losses above zero, every
  // gradient finite, and some gradient non-zero (a NaN difference would compare as "within").
  bool finite_nontrivial = std::isfinite(losses[0]) && std::isfinite(losses[1]) && losses[0] > 0 && losses[1] > 0;
  bool any_nonzero = false;
  for (size_t k = 0; k < grads[0].size(); ++k) {
    if (!grads[0][k].defined() || !grads[1][k].defined()) continue;
    for (int i = 0; i < 2; ++i) {
      finite_nontrivial = finite_nontrivial && torch::isfinite(grads[i][k]).all().item<bool>();
      any_nonzero = any_nonzero || grads[i][k].ne(0).any().item<bool>();
    }
    const double ref = grads[0][k].norm().item<double>();
    const double diff = (grads[1][k] - grads[0][k]).norm().item<double>();
    if (ref > 0) worst = std::max(worst, diff / ref);
  }
  return {{"loss_plain", losses[0]}, {"loss_chunked", losses[1]},
          {"loss_relative_difference", std::abs(losses[1] - losses[0]) / std::max(1e-30, std::abs(losses[0]))},
          {"gradient_relative_difference_max", worst}, {"finite_and_nontrivial", finite_nontrivial && any_nonzero}};
}

// Part 1: plain vs chunked training steps of one architecture, interleaved.
json training_step_row(const rbk::Config& cfg, rbk::LmConfig mc, const rbk::TrainOptions& to, int64_t chunk,
                       const torch::Device& device, bool bf16, rbk::ExperimentOutput& out) {
  const int64_t B = to.batch_size, N = mc.n_seq;
  const int64_t repeats = cfg.get_int("repeats"), per = cfg.get_int("steps_per_repeat"), warmup = cfg.get_int("warmup_steps");
  const uint64_t seed = static_cast<uint64_t>(cfg.get_int("seed"));
  json row{{"kind", "training_step"}, {"arch", mc.arch}, {"batch_size", B}, {"seq_len", N}, {"vocab_size", mc.vocab_size},
           {"d_model", mc.d_model}, {"n_layers", mc.n_layers}, {"chunk_tokens", chunk}, {"repeats", repeats},
           {"steps_per_repeat", per}, {"warmup_steps", warmup}, {"device", device.str()}, {"precision", to.precision}};
  Trainee plain = make_trainee(mc, to, seed, 0, device);
  Trainee chunked = make_trainee(mc, to, seed, chunk, device);
  row["parameters"] = rbk::count_parameters(*plain.model);
  torch::manual_seed(seed + 1);
  const auto ids = torch::randint(mc.vocab_size, {1 + warmup + repeats * per, B, N + 1},
                                  torch::TensorOptions().dtype(torch::kInt64).device(device));
  row["check"] = check_paths_agree(plain, chunked, ids[0], N, bf16);
  const double tol = cfg.get_real("check_tolerance");
  if (!row["check"]["finite_and_nontrivial"].get<bool>()) {
    row["status"] = "nonfinite_output";
    row["message"] = "a path's loss or gradients are non-finite or all zero; not timed";
    std::fprintf(stderr, "%s: NON-FINITE OR TRIVIAL %s\n", mc.arch.c_str(), row["check"].dump().c_str());
    return row;
  }
  if (row["check"]["loss_relative_difference"].get<double>() > tol ||
      row["check"]["gradient_relative_difference_max"].get<double>() > tol) {
    row["status"] = "mismatch";
    row["message"] = "plain and chunked loss or gradients differ by more than check_tolerance; not timed";
    std::fprintf(stderr, "%s: MISMATCH %s\n", mc.arch.c_str(), row["check"].dump().c_str());
    return row;
  }
  int64_t next[2] = {1, 1};
  Trainee* ts[2] = {&plain, &chunked};
  for (int i = 0; i < 2; ++i)
    for (int64_t s = 0; s < warmup; ++s) train_step(*ts[i], ids[next[i]++], N, to, bf16);
  rbk::synchronize_device(device);
  std::vector<double> tps[2], ratio;
  for (int64_t r = 0; r < repeats; ++r) {
    const int first = static_cast<int>(r % 2);  // ABBA: plain first in even repeats
    double rep_tps[2] = {0, 0};
    for (int k = 0; k < 2; ++k) {
      const int i = (first + k) % 2;
      const auto t0 = Clock::now();
      for (int64_t s = 0; s < per; ++s) train_step(*ts[i], ids[next[i]++], N, to, bf16);
      rbk::synchronize_device(device);
      rep_tps[i] = static_cast<double>(B * N * per) / seconds_since(t0);
      tps[i].push_back(rep_tps[i]);
    }
    ratio.push_back(rep_tps[1] / rep_tps[0]);
    std::fprintf(stderr, "%s repeat %lld: plain %.0f tok/s, chunked %.0f tok/s, ratio %.2f\n", mc.arch.c_str(),
                 (long long)r, rep_tps[0], rep_tps[1], ratio.back());
  }
  const double fl[2] = {plain.loss.item<double>(), chunked.loss.item<double>()};
  row["tokens_per_second_plain"] = tps[0];
  row["tokens_per_second_chunked"] = tps[1];
  row["ratio_chunked_over_plain"] = ratio;
  row["tokens_per_second_plain_median"] = rbk::median(tps[0]);
  row["tokens_per_second_chunked_median"] = rbk::median(tps[1]);
  row["ratio_median"] = rbk::median(ratio);
  row["ratio_min"] = *std::min_element(ratio.begin(), ratio.end());
  row["final_loss_plain"] = fl[0];
  row["final_loss_chunked"] = fl[1];
  const bool finite = std::isfinite(fl[0]) && std::isfinite(fl[1]);
  row["status"] = finite ? "ok" : "diverged";
  out.arrays.push_back(rbk::make_array(mc.arch + "/tokens_per_second_plain", tps[0], "tokens/s", "per interleaved repeat"));
  out.arrays.push_back(rbk::make_array(mc.arch + "/tokens_per_second_chunked", tps[1], "tokens/s", "per interleaved repeat"));
  out.arrays.push_back(rbk::make_array(mc.arch + "/ratio_chunked_over_plain", ratio, "1", "per interleaved repeat"));
  std::fprintf(stderr, "%s: plain %.0f tok/s, chunked %.0f tok/s (median), ratio median %.2f min %.2f\n", mc.arch.c_str(),
               rbk::median(tps[0]), rbk::median(tps[1]), rbk::median(ratio), row["ratio_min"].get<double>());
  return row;
}

// Part 2: the head + loss alone, forward + backward, per chunk size and schedule.
void head_loss_sweep(const rbk::Config& cfg, const rbk::LmConfig& mc, int64_t T, const torch::Device& device,
                     rbk::ExperimentOutput& out) {
  const int64_t reps = cfg.get_int("sweep_repeats");
  torch::manual_seed(static_cast<uint64_t>(cfg.get_int("seed")) + 2);
  const auto opt = torch::TensorOptions().device(device);
  const auto f0 = torch::randn({T, mc.d_model}, opt), w0 = torch::randn({mc.vocab_size, mc.d_model}, opt) * 0.1;
  const auto b0 = torch::zeros({mc.vocab_size}, opt);
  const auto y = torch::randint(mc.vocab_size, {T}, opt.dtype(torch::kInt64));
  struct Arm {
    std::string name;
    int64_t chunk;
    rbk::HeadGradient schedule;
  };
  std::vector<Arm> arms{{"plain", 0, rbk::HeadGradient::InForward}};
  for (int64_t c : cfg.get_int_list("chunk_sweep")) {
    arms.push_back({"in_forward", c, rbk::HeadGradient::InForward});
    arms.push_back({"recompute", c, rbk::HeadGradient::RecomputeInBackward});
  }
  const double tol = cfg.get_real("check_tolerance");
  double plain_median = 0, plain_loss = 0;
  Tensor plain_df;
  for (const auto& a : arms) {
    std::vector<double> secs;
    json check;
    for (int64_t r = 0; r <= reps; ++r) {  // the first run warms up, is checked and is not kept
      auto f = f0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true), b = b0.clone().requires_grad_(true);
      rbk::synchronize_device(device);
      const auto t0 = Clock::now();
      auto loss = a.chunk == 0 ? torch::nn::functional::cross_entropy(torch::linear(f, w, b), y)
                               : rbk::chunked_linear_cross_entropy(f, w, b, y, a.chunk, rbk::LossReduction::Mean, a.schedule);
      loss.backward();
      rbk::synchronize_device(device);
      if (r > 0) {
        secs.push_back(seconds_since(t0));
        continue;
      }
      // Against the plain arm (the first): the same loss and dL/dfeatures, finite and non-zero.
      const double l = loss.item<double>();
      if (a.chunk == 0) {
        plain_loss = l;
        plain_df = f.grad().clone();
      }
      const double loss_diff = std::abs(l - plain_loss) / std::max(1e-30, std::abs(plain_loss));
      const double grad_diff = (f.grad() - plain_df).norm().item<double>() / std::max(1e-30, plain_df.norm().item<double>());
      const bool ok = std::isfinite(l) && l > 0 && torch::isfinite(f.grad()).all().item<bool>() &&
                      f.grad().ne(0).any().item<bool>() && loss_diff <= tol && grad_diff <= tol;
      check = {{"loss", l}, {"loss_relative_difference_vs_plain", loss_diff},
               {"feature_gradient_relative_difference_vs_plain", grad_diff}, {"passed", ok}};
      if (!ok) break;
    }
    if (!check["passed"].get<bool>()) {
      out.rows.push_back({{"kind", "head_loss"}, {"schedule", a.name}, {"chunk_tokens", a.chunk}, {"check", check},
                          {"status", "mismatch"}, {"message", "loss or gradient not finite, all zero, or off the plain path; not timed"}});
      std::fprintf(stderr, "head+loss %-10s chunk %5lld: CHECK FAILED %s\n", a.name.c_str(), (long long)a.chunk, check.dump().c_str());
      continue;
    }
    const double med = rbk::median(secs);
    if (a.chunk == 0) plain_median = med;
    out.rows.push_back({{"kind", "head_loss"}, {"schedule", a.name}, {"chunk_tokens", a.chunk}, {"tokens", T},
                        {"vocab_size", mc.vocab_size}, {"d_model", mc.d_model}, {"seconds_median", med},
                        {"speedup_over_plain", plain_median / med}, {"repeats", reps}, {"check", check}, {"status", "ok"}});
    std::fprintf(stderr, "head+loss %-10s chunk %5lld: %.4f s (x%.2f over plain)\n", a.name.c_str(), (long long)a.chunk,
                 med, plain_median / med);
  }
}

// Part 3: peak memory of one training step at a long sequence, chunked then plain.
void long_memory(const rbk::Config& cfg, const rbk::LmConfig& base, const rbk::TrainOptions& to, int64_t chunk,
                 const torch::Device& device, bool bf16, rbk::ExperimentOutput& out) {
  const int64_t N = cfg.get_int("long_seq_len");
  if (N <= 0) return;
  rbk::LmConfig mc = base;
  mc.arch = "resnet_bk";
  mc.n_seq = N;
  mc.vocab_size = cfg.get_int("long_vocab_size");
  torch::manual_seed(static_cast<uint64_t>(cfg.get_int("seed")) + 3);
  const auto batch = torch::randint(mc.vocab_size, {1, N + 1}, torch::TensorOptions().dtype(torch::kInt64).device(device));
  json peaks = json::object();
  for (int64_t c : {chunk, int64_t{0}}) {
    const std::string path = c > 0 ? "chunked" : "plain";
    json row{{"kind", "long_memory"}, {"path", path}, {"chunk_tokens", c}, {"arch", mc.arch}, {"seq_len", N},
             {"batch_size", 1}, {"vocab_size", mc.vocab_size}, {"d_model", mc.d_model}, {"device", device.str()}};
    try {
      Trainee t = make_trainee(mc, to, static_cast<uint64_t>(cfg.get_int("seed")), c, device);
      rbk::synchronize_device(device);
      release_free_heap_pages();
      const int64_t rss0 = rbk::cpu_current_rss_bytes();
      const std::string scope = rbk::reset_peak_memory(device);
      const auto t0 = Clock::now();
      train_step(t, batch, N, to, bf16);
      rbk::synchronize_device(device);
      const double secs = seconds_since(t0);
      const auto peak = rbk::read_peak_memory(device, scope);
      row["step_seconds"] = secs;
      row["loss"] = t.loss.item<double>();
      if (!std::isfinite(row["loss"].get<double>())) throw std::runtime_error("the step's loss is not finite");
      row["peak"] = peak.to_json();
      row["rss_at_reset_bytes"] = rss0;
      const int64_t step_bytes = device.is_cuda() ? peak.cuda_peak_allocated_bytes
                                                  : (peak.cpu_peak_rss_bytes >= 0 && rss0 >= 0 ? peak.cpu_peak_rss_bytes - rss0 : -1);
      row["step_peak_bytes"] = step_bytes >= 0 ? json(step_bytes) : json(nullptr);
      row["step_peak_measure"] = device.is_cuda() ? "CUDA allocator peak of allocated bytes during the step"
                                                  : "VmHWM (" + scope + ") minus VmRSS at the reset, after malloc_trim";
      row["logits_bytes_plain"] = N * mc.vocab_size * 4;
      row["status"] = "ok";
      peaks[path] = step_bytes;
      std::fprintf(stderr, "long N %lld V %lld %s: step %.2f s, step peak %.1f MiB (%s)\n", (long long)N,
                   (long long)mc.vocab_size, path.c_str(), secs, static_cast<double>(step_bytes) / (1 << 20), scope.c_str());
    } catch (const std::exception& e) {
      const std::string what = e.what();
      row["status"] = rbk::is_out_of_memory(e) ? "oom" : "error";
      row["message"] = what.substr(0, what.find('\n'));
    }
    out.rows.push_back(row);
  }
  if (peaks.contains("chunked") && peaks.contains("plain") && peaks["chunked"].get<int64_t>() > 0)
    out.summary["long_memory"] = {{"seq_len", N}, {"vocab_size", mc.vocab_size}, {"step_peak_bytes", peaks},
                                  {"plain_over_chunked", static_cast<double>(peaks["plain"].get<int64_t>()) /
                                                             static_cast<double>(peaks["chunked"].get<int64_t>())}};
}

}  // namespace

int main(int argc, char** argv) {
  rbk::ExperimentSpec spec{"head_loss", {},
                           "Chunked LM head + cross-entropy against the full-logits path: training tokens/s of "
                           "ResNet-BK and the Transformer side by side, head+loss time per chunk size, and the peak "
                           "memory of a long-sequence step (issue 17)",
                           {}};
  // model.*: the trained models (arch is replaced by each entry of `archs`); train.*: batch_size,
  // seq_len (= model.n_seq), lr, weight_decay, betas, eps, clip_norm, precision and
  // loss_chunk_tokens (the chunked arm's chunk; 0 = the library default) are used.
  rbk::add_lm_config_options(spec.schema, "model.");
  rbk::add_train_options(spec.schema, "train.");
  spec.schema.add_string_list("parts", {"training_step", "head_loss", "long_memory"}, "which measurements to run")
      .add_string_list("archs", rbk::arch_choices(), "architectures whose training step is timed")
      .add_int("repeats", 1, 1000, "interleaved repeats per architecture (>= 5 for the report)")
      .add_int("steps_per_repeat", 1, 100000, "training steps per path and repeat")
      .add_int("warmup_steps", 0, 1000, "untimed steps per path")
      .add_real("check_tolerance", 0.0, 1.0, "max relative difference of loss and gradients between the paths")
      .add_int_list("chunk_sweep", 1, 1 << 20, "chunk sizes of the head+loss sweep")
      .add_int("sweep_repeats", 1, 1000, "timed runs per head+loss arm")
      .add_int("long_seq_len", 0, 1 << 24, "sequence length of the peak-memory step (0 = skip)")
      .add_int("long_vocab_size", 2, 1 << 22, "vocabulary of the peak-memory step")
      .add_int("threads", 0, 256, "CPU threads (0 = RBK_THREADS or all cores)")
      .add_string("device", {"auto", "cpu", "cuda"}, "where to run");

  return rbk::run_experiment(argc, argv, spec, [](const rbk::Config& cfg, rbk::ExperimentOutput& out) {
    const torch::Device device = rbk::experiment_device(cfg);
    rbk::LmConfig base = rbk::lm_config_from(cfg, "model.");
    rbk::check_lm_config(base, "model.", true);
    const rbk::TrainOptions to = rbk::train_options_from(cfg, "train.", device);
    rbk::check_model_and_training(base, to, "model.", "train.");
    if (to.seq_len != base.n_seq)
      throw rbk::ConfigError("train.seq_len = " + std::to_string(to.seq_len) + " differs from model.n_seq = " +
                             std::to_string(base.n_seq) + "; the steps here use the full length: set both equal");
    const bool bf16 = rbk::wants_bf16_autocast(to.precision, device, "train.precision");
    const int64_t chunk = to.loss_chunk_tokens > 0 ? to.loss_chunk_tokens : rbk::kDefaultLossChunkTokens;
    out.summary["inputs"] = "uniform random token ids, drawn once before timing";
    out.summary["chunk_tokens"] = chunk;
    out.summary["training_step"] = json::object();
    const auto parts = cfg.get_string_list("parts");
    auto wants = [&](const char* part) { return std::find(parts.begin(), parts.end(), part) != parts.end(); };
    for (const auto& arch : wants("training_step") ? cfg.get_string_list("archs") : std::vector<std::string>{}) {
      rbk::LmConfig mc = base;
      mc.arch = arch;
      json row;
      try {
        row = training_step_row(cfg, mc, to, chunk, device, bf16, out);
      } catch (const std::exception& e) {
        const std::string what = e.what();
        row = {{"kind", "training_step"}, {"arch", arch}, {"status", "error"}, {"message", what.substr(0, what.find('\n'))}};
      }
      if (row.contains("ratio_median"))
        out.summary["training_step"][arch] = {{"tokens_per_second_plain_median", row["tokens_per_second_plain_median"]},
                                              {"tokens_per_second_chunked_median", row["tokens_per_second_chunked_median"]},
                                              {"ratio_median", row["ratio_median"]}, {"ratio_min", row["ratio_min"]},
                                              {"ratio_per_repeat", row["ratio_chunked_over_plain"]}};
      out.rows.push_back(row);
    }
    if (wants("head_loss")) head_loss_sweep(cfg, base, to.batch_size * base.n_seq, device, out);
    if (wants("long_memory")) long_memory(cfg, base, to, chunk, device, bf16, out);
  });
}
