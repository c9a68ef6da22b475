// Language-model trainer with exact checkpoint resume, validation during training, the divergence
// rule and peak memory (see trainer.h; upstream-audit §2.1, §2.4; claim C05, issue 17). The
// checkpoint file format lives in lm_checkpoint.cpp.
#include "rbk/trainer.h"
#include "rbk/distributed.h"
#include "rbk/lm_loss.h"
#include "rbk/multi_tensor_adamw.h"
#include "rbk/torch_compat_optim.h"
#include "rbk/evaluator.h"
#include "rbk/results.h"
#include "lm_checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace rbk {
namespace {

using Clock = std::chrono::steady_clock;
using detail::epoch_json;
using detail::load_checkpoint;
using detail::save_checkpoint;
using detail::TrainState;

std::string fmt_duration(double s) {
  char b[32];
  if (s < 0 || !std::isfinite(s)) return "?";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) std::snprintf(b, sizeof b, "%lldh%02lldm", (long long)(t / 3600), (long long)(t / 60 % 60));
  else std::snprintf(b, sizeof b, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  return b;
}

int64_t max_known(int64_t a, int64_t b) { return a < 0 ? b : (b < 0 ? a : std::max(a, b)); }

}  // namespace

BatchLayout parse_batch_layout(const std::string& s) {
  if (s == "correct") return BatchLayout::Correct;
  if (s == "upstream_time_major") return BatchLayout::UpstreamTimeMajor;
  throw std::invalid_argument("batch layout '" + s + "': expected correct or upstream_time_major");
}

std::string to_string(BatchLayout l) { return l == BatchLayout::Correct ? "correct" : "upstream_time_major"; }

torch::Tensor batchify(const torch::Tensor& ids, int64_t batch_size) {
  TORCH_CHECK(ids.dim() == 1 && ids.scalar_type() == torch::kInt64, "batchify: ids must be (T,) int64");
  const int64_t cols = ids.numel() / batch_size;
  TORCH_CHECK(cols >= 2, "batchify: ", ids.numel(), " tokens are too few for batch size ", batch_size);
  return ids.narrow(0, 0, cols * batch_size).view({batch_size, cols}).contiguous();
}

int64_t chunks_per_epoch(const torch::Tensor& grid, int64_t seq_len) { return (grid.size(1) - 1) / seq_len; }

double scheduled_lr(const TrainOptions& o, int64_t step, int64_t total) {
  if (o.warmup_steps > 0 && step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  if (o.schedule == "constant") return o.lr;
  const double span = std::max<int64_t>(1, total - o.warmup_steps);
  const double t = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
  const double lo = o.lr * o.min_lr_ratio;
  return lo + 0.5 * (o.lr - lo) * (1.0 + std::cos(M_PI * t));
}

// The same arithmetic as torch::nn::utils::clip_grad_norm_ (per-tensor 2-norms, their 2-norm,
// coefficient max_norm / (norm + 1e-6) clamped at 1, every gradient scaled), minus the final
// .item() that the C++ version does to return a double: no host sync per step.
namespace {
std::vector<torch::Tensor> defined_grads(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  return grads;
}

// The per-tensor norms as one multi-tensor operation (one launch for many tensors on CUDA, the
// same per-tensor norms on the CPU).
torch::Tensor total_norm_of(const std::vector<torch::Tensor>& grads) {
  const auto norms = at::_foreach_norm(grads, 2.0);
  return norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2.0);
}

// The total gradient 2-norm without clipping (the divergence rule's gradient check when
// clip_norm is off).
torch::Tensor total_grad_norm_no_sync(const std::vector<torch::Tensor>& params) {
  const auto grads = defined_grads(params);
  return grads.empty() ? torch::zeros({}) : total_norm_of(grads);
}
}  // namespace

torch::Tensor clip_grad_norm_no_sync(const std::vector<torch::Tensor>& params, double max_norm) {
  auto grads = defined_grads(params);
  if (grads.empty()) return torch::zeros({});
  const auto total = total_norm_of(grads);
  const auto coef = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  scale_in_place(grads, coef);
  return total;
}

bool wants_bf16_autocast(const std::string& precision, const torch::Device& device, const std::string& option) {
  if (precision == "fp32") return false;
  if (precision != "bf16") throw std::invalid_argument("'" + option + "' = '" + precision + "': expected fp32 or bf16");
  if (!device.is_cuda())
    throw std::invalid_argument("'" + option + "' = 'bf16' needs a CUDA device (got " + device.str() +
                                "): bf16 autocast is enabled for CUDA only; use fp32 on the CPU");
  return true;
}

nlohmann::json ValidPoint::to_json() const {
  return {{"step", step}, {"tokens", tokens}, {"valid_loss", valid_loss}, {"valid_ppl", valid_ppl}};
}

nlohmann::json TrainResult::to_json() const {
  nlohmann::json j{{"status", status},
                   {"message", message},
                   {"steps", steps},
                   {"tokens", tokens},
                   {"seconds", seconds},
                   {"eval_seconds", eval_seconds},
                   {"tokens_per_second", tokens_per_second},
                   {"divergence", divergence},
                   {"divergence_step", divergence_step >= 0 ? nlohmann::json(divergence_step) : nlohmann::json(nullptr)},
                   {"peak_memory", peak_memory.to_json()}};
  j["epochs"] = nlohmann::json::array();
  for (const auto& e : epochs) j["epochs"].push_back(epoch_json(e));
  j["valid_curve"] = nlohmann::json::array();
  for (const auto& v : valid_curve) j["valid_curve"].push_back(v.to_json());
  return j;
}

void validate_train_options(const TrainOptions& o) {
  auto require = [](bool ok, const std::string& field, const std::string& value, const std::string& expected) {
    if (!ok) throw std::invalid_argument("train." + field + " = " + value + ": expected " + expected);
  };
  auto str = [](auto v) { return std::to_string(v); };
  require(o.batch_size >= 1, "batch_size", str(o.batch_size), "an integer >= 1");
  require(o.seq_len >= 1, "seq_len", str(o.seq_len), "an integer >= 1");
  require(o.grad_accum >= 1, "grad_accum", str(o.grad_accum), "an integer >= 1");
  require(o.epochs >= 1, "epochs", str(o.epochs), "an integer >= 1");
  require(o.max_steps >= 0, "max_steps", str(o.max_steps), "an integer >= 0 (0 = no cap)");
  require(o.schedule == "constant" || o.schedule == "cosine", "schedule", "'" + o.schedule + "'", "constant or cosine");
  require(o.sync_every >= 0, "sync_every", str(o.sync_every), "an integer >= 0 (0 = auto)");
  require(o.eval_every >= 0, "eval_every", str(o.eval_every), "an integer >= 0 (0 = no validation during training)");
  require(o.eval_tokens >= 0, "eval_tokens", str(o.eval_tokens), "an integer >= 0 (0 = the whole validation split)");
  require(o.eval_every == 0 || o.eval_tokens == 0 || o.eval_tokens >= 2 * o.batch_size, "eval_tokens", str(o.eval_tokens),
          "0 (all) or at least 2 x train.batch_size = " + str(2 * o.batch_size) + " (one column of every stream)");
  require(o.loss_chunk_tokens >= 0, "loss_chunk_tokens", str(o.loss_chunk_tokens), "an integer >= 0 (0 = full logits)");
  require(o.checkpoint_every >= 0, "checkpoint_every", str(o.checkpoint_every), "an integer >= 0");
  require(o.log_every >= 0, "log_every", str(o.log_every), "an integer >= 0");
  require(o.spike_factor >= 0, "spike_factor", str(o.spike_factor), "a number >= 0 (0 = off)");
  try {
    DivergenceRule{o.divergence_factor, o.divergence_patience}.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("train.divergence_factor / train.divergence_patience: ") + e.what());
  }
}

TokenStream token_stream_prefix(const TokenStream& s, int64_t n) {
  const int64_t total = s.ids.numel();
  if (n <= 0 || n >= total) return s;
  TokenStream p;
  p.ids = s.ids.narrow(0, 0, n);
  p.n_bytes = static_cast<int64_t>(std::llround(static_cast<double>(s.n_bytes) * static_cast<double>(n) / static_cast<double>(total)));
  p.source = s.source + " (first " + std::to_string(n) + " tokens)";
  return p;
}

TrainResult train_language_model(LanguageModel& model, const torch::Tensor& train_ids, const TrainOptions& o,
                                 const nlohmann::json& extra_meta, const TokenStream* valid) {
  validate_train_options(o);
  // Data parallel (distributed.h): installed by the tools for a launched job, absent otherwise.
  TrainSync* const sync = active_train_sync();
  if (sync) check_data_parallel_options(o, sync->world_size());
  const bool bf16 = wants_bf16_autocast(o.precision, o.device);
  const int64_t sync_every =
      o.sync_every > 0 ? o.sync_every : (o.device.is_cpu() ? 1 : (o.log_every > 0 ? o.log_every : 50));
  const int64_t V = model.config().vocab_size;
  TORCH_CHECK(train_ids.max().item<int64_t>() < V && train_ids.min().item<int64_t>() >= 0, "train: token ids outside [0, ", V, ")");
  TokenStream valid_eval;  // the first eval_tokens tokens of the validation split
  if (o.eval_every > 0) {
    if (valid == nullptr || !valid->ids.defined() || valid->ids.numel() == 0)
      throw std::invalid_argument("train.eval_every = " + std::to_string(o.eval_every) +
                                  " needs a validation stream, and none was given");
    valid_eval = token_stream_prefix(*valid, o.eval_tokens);
    if (valid_eval.ids.numel() < 2 * o.batch_size)
      throw std::invalid_argument("train.eval_tokens = " + std::to_string(o.eval_tokens) + ": the validation prefix has " +
                                  std::to_string(valid_eval.ids.numel()) + " tokens; expected at least 2 x batch_size = " +
                                  std::to_string(2 * o.batch_size));
  }
  // The loss-rise rule reads the validation curve when there is one, else every step's training
  // loss; non-finite losses and gradient norms are checked at every step either way.
  const DivergenceRule rule{o.divergence_factor, o.divergence_patience};
  DivergenceMonitor monitor(rule);
  const bool rule_on_valid = o.eval_every > 0;
  const bool resume = !o.checkpoint_path.empty() && std::filesystem::exists(o.checkpoint_path);
  if (!resume) torch::manual_seed(o.seed);
  const std::string memory_scope = reset_peak_memory(o.device);
  model.to(o.device);
  model.set_checkpoint_blocks(o.checkpoint_blocks);
  auto grid = batchify(train_ids, o.batch_size).to(o.device);
  if (sync) grid = sync->local_rows(grid);  // this rank's rows of the global batch
  const int64_t n_chunks = chunks_per_epoch(grid, o.seq_len);
  TORCH_CHECK(n_chunks >= 1, "train: the train stream gives no full chunk of ", o.seq_len, " tokens per stream (", grid.size(1), " columns)");
  const int64_t steps_per_epoch = (n_chunks + o.grad_accum - 1) / o.grad_accum;
  int64_t total_steps = steps_per_epoch * o.epochs;
  if (o.max_steps > 0) total_steps = std::min(total_steps, o.max_steps);

  MultiTensorAdamW optim(model.parameters(), torch::optim::AdamWOptions(o.lr)
                                                   .betas({o.beta1, o.beta2})
                                                   .eps(o.eps)
                                                   .weight_decay(o.weight_decay));
  TrainState st;
  if (resume) {
    load_checkpoint(o.checkpoint_path, model, optim, st, o.device);
    if (!st.divergence_state.is_null()) monitor.load_state(st.divergence_state);
    std::fprintf(stderr, "%sresumed from %s at epoch %lld chunk %lld step %lld\n", o.label.c_str(), o.checkpoint_path.c_str(),
                 (long long)st.epoch + 1, (long long)st.chunk, (long long)st.step);
  }
  if (sync) sync->prepare(model.parameters());
  std::ofstream metrics;
  if (!o.metrics_path.empty() && (!sync || sync->is_writer())) {
    std::filesystem::path mp(o.metrics_path);
    if (mp.has_parent_path()) std::filesystem::create_directories(mp.parent_path());
    metrics.open(o.metrics_path, std::ios::app);
    if (!metrics) throw std::runtime_error(o.metrics_path + ": cannot open metrics log");
  }
  TrainResult res;
  res.divergence = rule.to_json();
  res.divergence["evaluated_on"] = rule_on_valid ? "valid" : "train_step";
  if (o.spike_factor > 0) res.divergence["legacy_spike_factor"] = o.spike_factor;
  model.train();
  const int64_t tokens_per_chunk = o.batch_size * o.seq_len;
  auto t_start = Clock::now();
  const double seconds_before = st.total_seconds, eval_seconds_before = st.eval_seconds;
  const int64_t step_at_start = st.step, tokens_at_start = st.tokens;
  auto peak_so_far = [&] {
    auto p = read_peak_memory(o.device, memory_scope);
    p.cuda_peak_allocated_bytes = max_known(p.cuda_peak_allocated_bytes, st.peak.cuda_peak_allocated_bytes);
    p.cpu_peak_rss_bytes = max_known(p.cpu_peak_rss_bytes, st.peak.cpu_peak_rss_bytes);
    return p;
  };
  auto finish = [&](const std::string& status, const std::string& msg) {
    res.status = status;
    res.message = msg;
    res.steps = st.step;
    res.tokens = st.tokens;
    res.epochs = st.epochs;
    res.step_losses = st.step_losses;
    res.valid_curve = st.valid_curve;
    res.seconds = st.total_seconds;
    res.eval_seconds = st.eval_seconds;
    const double train_seconds = st.total_seconds - st.eval_seconds;
    res.tokens_per_second = train_seconds > 0 ? static_cast<double>(st.tokens) / train_seconds : 0.0;
    res.peak_memory = peak_so_far();
    return res;
  };
  auto now_seconds = [&] { return seconds_before + std::chrono::duration<double>(Clock::now() - t_start).count(); };
  auto save = [&](TrainState s) {  // a copy: callers save the position of the next step
    if (sync && !sync->is_writer()) return;
    s.divergence_state = monitor.state_to_json();
    s.peak = peak_so_far();
    save_checkpoint(o.checkpoint_path, model, optim, s, extra_meta);
  };

  // Losses and gradient norms stay on the device until `flush` reads them (every sync_every
  // steps and wherever a host value is needed). flush replays the host bookkeeping in step order
  // with the same arithmetic as an immediate read, so the numbers do not depend on sync_every.
  struct PendingStep {
    int64_t step = 0, epoch = 0;
    std::vector<torch::Tensor> micro;  // 0-dim float32 losses of the step's micro-batches
    torch::Tensor grad_norm;           // 0-dim: total 2-norm of the gradients before clipping
  };
  std::vector<PendingStep> pending;
  std::string diverged_msg;
  auto flush = [&]() -> bool {  // false: diverged (diverged_msg set, st.step = the diverged step)
    if (pending.empty()) return true;
    std::vector<torch::Tensor> all;
    for (const auto& p : pending) all.insert(all.end(), p.micro.begin(), p.micro.end());
    for (const auto& p : pending) all.push_back(p.grad_norm.to(all.front().device(), torch::kFloat));
    auto stacked = torch::stack(all);
    if (sync) stacked = sync->average(stacked, pending.front().step);  // every rank: the global means
    const auto host = stacked.to(torch::kCPU, torch::kDouble).contiguous();
    const double* l = host.data_ptr<double>();
    const double* norm = l + (host.numel() - static_cast<int64_t>(pending.size()));
    std::vector<PendingStep> steps;
    steps.swap(pending);
    for (const auto& p : steps) {
      const auto n_micro = static_cast<int64_t>(p.micro.size());
      double step_loss = 0.0;
      for (int64_t a = 0; a < n_micro; ++a, ++l) {
        step_loss += *l / static_cast<double>(n_micro);
        st.epoch_loss_sum += *l;
        st.epoch_micro += 1;
      }
      const double grad_norm = *norm++;
      // Divergence step numbers are 1-based optimizer steps: this loss belongs to step p.step + 1.
      bool bad = monitor.check_finite(p.step + 1, step_loss, grad_norm);
      if (!bad && !rule_on_valid && rule.factor > 0) bad = monitor.observe(p.step + 1, step_loss);
      const bool spike = !bad && o.spike_factor > 0 && p.step >= 50 && step_loss > o.spike_factor * st.ema;
      if (bad || spike) {
        char msg[200];
        std::snprintf(msg, sizeof msg, "loss spike at step %lld (epoch %lld): loss %g, EMA %g", (long long)p.step,
                      (long long)p.epoch + 1, step_loss, st.ema);
        diverged_msg = spike ? std::string(msg)
                             : "diverged (epoch " + std::to_string(p.epoch + 1) + ") at " + monitor.reason();
        res.divergence_step = p.step + 1;
        st.step = p.step;
        st.step_losses.push_back(step_loss);
        return false;
      }
      st.ema = p.step == 0 ? step_loss : 0.98 * st.ema + 0.02 * step_loss;
      st.step_losses.push_back(step_loss);
    }
    return true;
  };
  auto diverged = [&]() {
    st.total_seconds = now_seconds();
    std::fprintf(stderr, "%sdiverged: %s\n", o.label.c_str(), diverged_msg.c_str());
    if (metrics) metrics << nlohmann::json{{"event", "diverged"}, {"step", st.step}, {"message", diverged_msg}}.dump() << "\n";
    return finish("diverged", diverged_msg);
  };
  // Validation after optimizer step st.step; false: the divergence rule fired on it.
  auto validate_now = [&]() -> bool {
    const auto t0 = Clock::now();
    // Restore the CPU generator afterwards: a model that draws in eval mode must not shift the
    // training run's random stream (CUDA draws do not happen in eval mode: dropout is off).
    auto gen = at::detail::getDefaultCPUGenerator();
    const auto rng = gen.get_state();
    // Evaluation always takes the chunked head (it never needs the full logits; the two paths
    // agree up to fp32 summation order, evaluator.h), with the training chunk when one is set.
    const int64_t eval_chunk = o.loss_chunk_tokens > 0 ? o.loss_chunk_tokens : kDefaultLossChunkTokens;
    const auto ev = evaluate_language_model(model, valid_eval, o.batch_size, o.seq_len, o.layout, o.device, o.precision,
                                            eval_chunk);
    gen.set_state(rng);
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    st.eval_seconds += dt;
    st.valid_curve.push_back({st.step, st.tokens, ev.mean_nll, ev.ppl});
    std::fprintf(stderr, "%svalid step %lld: loss %.4f PPL %.2f (%lld tokens, %.1f s)\n", o.label.c_str(), (long long)st.step,
                 ev.mean_nll, ev.ppl, (long long)ev.tokens, dt);
    if (metrics)
      metrics << nlohmann::json{{"event", "valid"}, {"step", st.step}, {"tokens", st.tokens}, {"valid_loss", ev.mean_nll},
                                {"valid_ppl", ev.ppl}, {"valid_tokens", ev.tokens}, {"seconds", dt}}
                     .dump()
              << "\n";
    if (!monitor.observe(st.step, ev.mean_nll)) return true;
    diverged_msg = "diverged on the validation loss at " + monitor.reason();
    res.divergence_step = monitor.divergence_step();
    return false;
  };
  const auto params = model.parameters();

  for (; st.epoch < o.epochs; ++st.epoch) {
    auto t_epoch = Clock::now();
    const double epoch_seconds_before = st.epoch_seconds;
    for (; st.chunk < n_chunks; st.chunk += o.grad_accum) {
      if (o.max_steps > 0 && st.step >= o.max_steps) break;
      optim.zero_grad();
      const int64_t n_micro = std::min(o.grad_accum, n_chunks - st.chunk);
      PendingStep ps;
      ps.step = st.step;
      ps.epoch = st.epoch;
      for (int64_t a = 0; a < n_micro; ++a) {
        const int64_t i = (st.chunk + a) * o.seq_len;
        auto x = grid.narrow(1, i, o.seq_len);
        auto y = grid.narrow(1, i + 1, o.seq_len);
        if (o.layout == BatchLayout::UpstreamTimeMajor) {
          x = x.t();
          y = y.t();
        }
        const auto loss = language_model_loss(model, x, y, bf16, o.loss_chunk_tokens);
        if (sync) sync->before_backward(st.step, a + 1 == n_micro);
        (loss / static_cast<double>(n_micro)).backward();
        ps.micro.push_back(loss.detach());
        st.tokens += tokens_per_chunk;
      }
      if (sync) sync->reduce_gradients(st.step);  // the mean over ranks, before clipping
      // Clipping scales the gradients in place; the norm before it is what the rule checks.
      ps.grad_norm = o.clip_norm > 0 ? clip_grad_norm_no_sync(params, o.clip_norm) : total_grad_norm_no_sync(params);
      pending.push_back(std::move(ps));
      const int64_t next = st.step + 1;
      const bool last = st.chunk + o.grad_accum >= n_chunks || (o.max_steps > 0 && next >= o.max_steps);
      const bool want_log = o.log_every > 0 && (next % o.log_every == 0 || last);
      const bool want_valid = o.eval_every > 0 && next % o.eval_every == 0;
      const bool want_ckpt = !o.checkpoint_path.empty() && o.checkpoint_every > 0 && next % o.checkpoint_every == 0;
      const bool stop = o.stop_after_steps > 0 && next >= o.stop_after_steps;
      // Read the losses before the optimizer step, so a divergence found now leaves the
      // parameters of the last good step.
      if ((next % sync_every == 0 || last || want_log || want_valid || want_ckpt || stop) && !flush()) return diverged();
      const double lr = scheduled_lr(o, st.step, total_steps);
      for (auto& g : optim.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
      optim.step();
      st.step += 1;
      st.epoch_steps += 1;
      if (want_log) {
        const double step_loss = st.step_losses.back();
        const double el = now_seconds();
        const double run_el = el - seconds_before;
        const double run_train_el = run_el - (st.eval_seconds - eval_seconds_before);
        const double tps = run_train_el > 0 ? static_cast<double>(st.tokens - tokens_at_start) / run_train_el : 0.0;
        const double eta = st.step > step_at_start ? run_el / static_cast<double>(st.step - step_at_start) *
                                                         static_cast<double>(total_steps - st.step)
                                                   : -1.0;
        std::fprintf(stderr, "%sstep %lld/%lld ep %lld loss %.4f lr %.2e tok/s %.0f ETA %s\n", o.label.c_str(), (long long)st.step,
                     (long long)total_steps, (long long)st.epoch + 1, step_loss, lr, tps, fmt_duration(eta).c_str());
        if (metrics)
          metrics << nlohmann::json{{"event", "step"}, {"step", st.step}, {"epoch", st.epoch + 1}, {"loss", step_loss}, {"lr", lr},
                                    {"tokens_per_s", tps}, {"elapsed_s", el}}
                         .dump()
                  << "\n";
      }
      if (want_valid && !validate_now()) return diverged();
      if (want_ckpt || stop) {
        st.chunk += o.grad_accum;  // position of the next step
        st.epoch_seconds = epoch_seconds_before + std::chrono::duration<double>(Clock::now() - t_epoch).count();
        st.total_seconds = now_seconds();
        if (!o.checkpoint_path.empty()) save(st);
        st.chunk -= o.grad_accum;
        if (stop) return finish("stopped", "stopped after step " + std::to_string(st.step) + " (stop_after_steps)");
      }
    }
    if (!flush()) return diverged();
    if (o.max_steps > 0 && st.step >= o.max_steps && st.chunk < n_chunks) {
      // Partial epoch: checkpoint the position (without the partial record, so a resume with a
      // larger max_steps continues the epoch), report it as such and end.
      st.epoch_seconds = epoch_seconds_before + std::chrono::duration<double>(Clock::now() - t_epoch).count();
      st.total_seconds = now_seconds();
      if (!o.checkpoint_path.empty()) save(st);
      const double m = st.epoch_micro ? st.epoch_loss_sum / static_cast<double>(st.epoch_micro) : NAN;
      st.epochs.push_back({st.epoch + 1, st.epoch_steps, m, std::exp(m), st.epoch_seconds});
      break;
    }
    st.epoch_seconds = epoch_seconds_before + std::chrono::duration<double>(Clock::now() - t_epoch).count();
    const double m = st.epoch_loss_sum / static_cast<double>(std::max<int64_t>(1, st.epoch_micro));
    st.epochs.push_back({st.epoch + 1, st.epoch_steps, m, std::exp(m), st.epoch_seconds});
    std::fprintf(stderr, "%sepoch %lld: mean train loss %.4f, train PPL %.2f (%s)\n", o.label.c_str(), (long long)st.epoch + 1, m,
                 std::exp(m), fmt_duration(st.epoch_seconds).c_str());
    if (metrics) metrics << nlohmann::json{{"event", "epoch"}, {"epoch", st.epoch + 1}, {"mean_loss", m}, {"train_ppl", std::exp(m)}}.dump() << "\n";
    st.chunk = 0;
    st.epoch_loss_sum = 0.0;
    st.epoch_micro = 0;
    st.epoch_steps = 0;
    st.epoch_seconds = 0.0;
    st.total_seconds = now_seconds();
    if (!o.checkpoint_path.empty()) {
      TrainState next = st;
      next.epoch += 1;
      save(next);
    }
  }
  if (!flush()) return diverged();
  st.total_seconds = now_seconds();
  return finish("ok", "");
}

}  // namespace rbk
