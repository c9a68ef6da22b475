// Language-model trainer with exact checkpoint resume (see trainer.h; upstream-audit §2.1, §2.4;
// claim C05).
#include "rbk/trainer.h"
#include "rbk/results.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace rbk {
namespace {

using Clock = std::chrono::steady_clock;

torch::Tensor string_tensor(const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  if (!s.empty()) std::memcpy(t.data_ptr<uint8_t>(), s.data(), s.size());
  return t;
}

std::string tensor_string(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU).contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel()));
}

std::string fmt_duration(double s) {
  char b[32];
  if (s < 0 || !std::isfinite(s)) return "?";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) std::snprintf(b, sizeof b, "%lldh%02lldm", (long long)(t / 3600), (long long)(t / 60 % 60));
  else std::snprintf(b, sizeof b, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  return b;
}

// Trainer position saved in checkpoints.
struct TrainState {
  int64_t epoch = 0, chunk = 0, step = 0;
  double epoch_loss_sum = 0.0;
  int64_t epoch_micro = 0, epoch_steps = 0;
  double epoch_seconds = 0.0, total_seconds = 0.0, ema = 0.0;
  int64_t tokens = 0;
  std::vector<EpochStats> epochs;
  std::vector<double> step_losses;
};

nlohmann::json epoch_json(const EpochStats& e) {
  return {{"epoch", e.epoch}, {"steps", e.steps}, {"mean_loss", e.mean_loss}, {"train_ppl", e.train_ppl}, {"seconds", e.seconds}};
}

void save_checkpoint(const std::string& path, LanguageModel& model, torch::optim::Optimizer& optim, const TrainState& st,
                     const nlohmann::json& extra) {
  nlohmann::json meta{{"schema", "rbk.lm_checkpoint/1"}, {"model_config", model.config().to_json()}, {"extra", extra},
                      {"epoch", st.epoch}, {"chunk", st.chunk}, {"step", st.step}, {"epoch_loss_sum", st.epoch_loss_sum},
                      {"epoch_micro", st.epoch_micro}, {"epoch_steps", st.epoch_steps}, {"epoch_seconds", st.epoch_seconds},
                      {"total_seconds", st.total_seconds}, {"ema", st.ema}, {"tokens", st.tokens}};
  meta["epochs"] = nlohmann::json::array();
  for (const auto& e : st.epochs) meta["epochs"].push_back(epoch_json(e));
  torch::serialize::OutputArchive ar, ma, oa;
  model.save(ma);
  optim.save(oa);
  ar.write("model", ma);
  ar.write("optimizer", oa);
  ar.write("meta", string_tensor(meta.dump()));
  ar.write("step_losses", torch::tensor(st.step_losses.empty() ? std::vector<double>{} : st.step_losses, torch::kDouble));
  ar.write("rng_cpu", at::detail::getDefaultCPUGenerator().get_state());
  std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  const std::string tmp = path + ".tmp";
  ar.save_to(tmp);
  std::filesystem::rename(tmp, path);
}

void load_checkpoint(const std::string& path, LanguageModel& model, torch::optim::Optimizer& optim, TrainState& st,
                     torch::Device device) {
  torch::serialize::InputArchive ar, ma, oa;
  ar.load_from(path, device);
  torch::Tensor meta_t, losses, rng;
  ar.read("meta", meta_t);
  const auto meta = nlohmann::json::parse(tensor_string(meta_t));
  if (meta.at("model_config") != model.config().to_json())
    throw std::runtime_error(path + ": checkpoint model_config differs from the model being trained; delete it or use "
                             "another checkpoint path");
  ar.read("model", ma);
  model.load(ma);
  ar.read("optimizer", oa);
  optim.load(oa);
  ar.read("step_losses", losses);
  ar.read("rng_cpu", rng);
  auto gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(rng.to(torch::kCPU));
  st.epoch = meta.at("epoch");
  st.chunk = meta.at("chunk");
  st.step = meta.at("step");
  st.epoch_loss_sum = meta.at("epoch_loss_sum");
  st.epoch_micro = meta.at("epoch_micro");
  st.epoch_steps = meta.at("epoch_steps");
  st.epoch_seconds = meta.at("epoch_seconds");
  st.total_seconds = meta.at("total_seconds");
  st.ema = meta.at("ema");
  st.tokens = meta.at("tokens");
  st.epochs.clear();
  for (const auto& e : meta.at("epochs"))
    st.epochs.push_back({e.at("epoch"), e.at("steps"), e.at("mean_loss"), e.at("train_ppl"), e.at("seconds")});
  auto l = losses.to(torch::kCPU).contiguous();
  st.step_losses.assign(l.data_ptr<double>(), l.data_ptr<double>() + l.numel());
}

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
torch::Tensor clip_grad_norm_no_sync(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<torch::Tensor> grads, norms;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return torch::zeros({});
  for (const auto& g : grads) norms.push_back(g.data().norm(2.0));
  const auto total = norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2.0);
  const auto coef = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  for (auto& g : grads) g.data().mul_(coef);
  return total;
}

torch::Tensor language_model_loss(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, bool bf16) {
  // Forward and loss under autocast, backward outside it (as torch.autocast prescribes).
  AutocastGuard autocast(bf16);
  const int64_t V = model.config().vocab_size;
  auto logits = model.forward(x.contiguous());  // (B, n, V) float32 | bfloat16
  return torch::nn::functional::cross_entropy(logits.reshape({-1, V}).to(torch::kFloat), y.reshape({-1}));
}

bool wants_bf16_autocast(const std::string& precision, const torch::Device& device, const std::string& option) {
  if (precision == "fp32") return false;
  if (precision != "bf16") throw std::invalid_argument("'" + option + "' = '" + precision + "': expected fp32 or bf16");
  if (!device.is_cuda())
    throw std::invalid_argument("'" + option + "' = 'bf16' needs a CUDA device (got " + device.str() +
                                "): bf16 autocast is enabled for CUDA only; use fp32 on the CPU");
  return true;
}

nlohmann::json TrainResult::to_json() const {
  nlohmann::json j{{"status", status}, {"message", message}, {"steps", steps}, {"seconds", seconds},
                   {"tokens_per_second", tokens_per_second}};
  j["epochs"] = nlohmann::json::array();
  for (const auto& e : epochs) j["epochs"].push_back(epoch_json(e));
  return j;
}

TrainResult train_language_model(LanguageModel& model, const torch::Tensor& train_ids, const TrainOptions& o,
                                 const nlohmann::json& extra_meta) {
  if (o.schedule != "constant" && o.schedule != "cosine")
    throw std::invalid_argument("schedule '" + o.schedule + "': expected constant or cosine");
  TORCH_CHECK(o.grad_accum >= 1 && o.batch_size >= 1 && o.seq_len >= 1, "train: batch_size, seq_len, grad_accum must be >= 1");
  TORCH_CHECK(o.sync_every >= 0, "train: sync_every must be >= 0");
  const bool bf16 = wants_bf16_autocast(o.precision, o.device);
  const int64_t sync_every =
      o.sync_every > 0 ? o.sync_every : (o.device.is_cpu() ? 1 : (o.log_every > 0 ? o.log_every : 50));
  const int64_t V = model.config().vocab_size;
  TORCH_CHECK(train_ids.max().item<int64_t>() < V && train_ids.min().item<int64_t>() >= 0, "train: token ids outside [0, ", V, ")");
  const bool resume = !o.checkpoint_path.empty() && std::filesystem::exists(o.checkpoint_path);
  if (!resume) torch::manual_seed(o.seed);
  model.to(o.device);
  auto grid = batchify(train_ids, o.batch_size).to(o.device);
  const int64_t n_chunks = chunks_per_epoch(grid, o.seq_len);
  TORCH_CHECK(n_chunks >= 1, "train: the train stream gives no full chunk of ", o.seq_len, " tokens per stream (", grid.size(1), " columns)");
  const int64_t steps_per_epoch = (n_chunks + o.grad_accum - 1) / o.grad_accum;
  int64_t total_steps = steps_per_epoch * o.epochs;
  if (o.max_steps > 0) total_steps = std::min(total_steps, o.max_steps);

  torch::optim::AdamW optim(model.parameters(), torch::optim::AdamWOptions(o.lr)
                                                    .betas({o.beta1, o.beta2})
                                                    .eps(o.eps)
                                                    .weight_decay(o.weight_decay));
  TrainState st;
  if (resume) {
    load_checkpoint(o.checkpoint_path, model, optim, st, o.device);
    std::fprintf(stderr, "%sresumed from %s at epoch %lld chunk %lld step %lld\n", o.label.c_str(), o.checkpoint_path.c_str(),
                 (long long)st.epoch + 1, (long long)st.chunk, (long long)st.step);
  }
  std::ofstream metrics;
  if (!o.metrics_path.empty()) {
    std::filesystem::path mp(o.metrics_path);
    if (mp.has_parent_path()) std::filesystem::create_directories(mp.parent_path());
    metrics.open(o.metrics_path, std::ios::app);
    if (!metrics) throw std::runtime_error(o.metrics_path + ": cannot open metrics log");
  }
  TrainResult res;
  model.train();
  const int64_t tokens_per_chunk = o.batch_size * o.seq_len;
  auto t_start = Clock::now();
  const double seconds_before = st.total_seconds;
  const int64_t step_at_start = st.step;
  auto finish = [&](const std::string& status, const std::string& msg) {
    res.status = status;
    res.message = msg;
    res.steps = st.step;
    res.epochs = st.epochs;
    res.step_losses = st.step_losses;
    res.seconds = st.total_seconds;
    res.tokens_per_second = st.total_seconds > 0 ? static_cast<double>(st.tokens) / st.total_seconds : 0.0;
    return res;
  };
  auto now_seconds = [&] { return seconds_before + std::chrono::duration<double>(Clock::now() - t_start).count(); };

  // Losses stay on the device until `flush` reads them (every sync_every steps and wherever a
  // host value is needed). flush replays the host bookkeeping in step order with the same
  // arithmetic as an immediate read, so the numbers do not depend on sync_every.
  struct PendingStep {
    int64_t step = 0, epoch = 0;
    std::vector<torch::Tensor> micro;  // 0-dim float32 losses of the step's micro-batches
  };
  std::vector<PendingStep> pending;
  std::string diverged_msg;
  auto flush = [&]() -> bool {  // false: diverged (diverged_msg set, st.step = the diverged step)
    if (pending.empty()) return true;
    std::vector<torch::Tensor> all;
    for (const auto& p : pending) all.insert(all.end(), p.micro.begin(), p.micro.end());
    const auto host = torch::stack(all).to(torch::kCPU, torch::kDouble).contiguous();
    const double* l = host.data_ptr<double>();
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
      const bool finite = std::isfinite(step_loss);
      const bool spike = o.spike_factor > 0 && p.step >= 50 && step_loss > o.spike_factor * st.ema;
      if (!finite || spike) {
        char msg[200];
        std::snprintf(msg, sizeof msg, "%s at step %lld (epoch %lld): loss %g, EMA %g", finite ? "loss spike" : "non-finite loss",
                      (long long)p.step, (long long)p.epoch + 1, step_loss, st.ema);
        diverged_msg = msg;
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
        const auto loss = language_model_loss(model, x, y, bf16);
        (loss / static_cast<double>(n_micro)).backward();
        ps.micro.push_back(loss.detach());
        st.tokens += tokens_per_chunk;
      }
      pending.push_back(std::move(ps));
      const int64_t next = st.step + 1;
      const bool last = st.chunk + o.grad_accum >= n_chunks || (o.max_steps > 0 && next >= o.max_steps);
      const bool want_log = o.log_every > 0 && (next % o.log_every == 0 || last);
      const bool want_ckpt = !o.checkpoint_path.empty() && o.checkpoint_every > 0 && next % o.checkpoint_every == 0;
      const bool stop = o.stop_after_steps > 0 && next >= o.stop_after_steps;
      // Read the losses before the optimizer step, so a divergence found now leaves the
      // parameters of the last good step.
      if ((next % sync_every == 0 || last || want_log || want_ckpt || stop) && !flush()) return diverged();
      if (o.clip_norm > 0) clip_grad_norm_no_sync(params, o.clip_norm);
      const double lr = scheduled_lr(o, st.step, total_steps);
      for (auto& g : optim.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
      optim.step();
      st.step += 1;
      st.epoch_steps += 1;
      if (want_log) {
        const double step_loss = st.step_losses.back();
        const double el = now_seconds();
        const double run_el = el - seconds_before;
        const double tps = run_el > 0 ? static_cast<double>((st.step - step_at_start) * tokens_per_chunk * o.grad_accum) / run_el : 0.0;
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
      if (want_ckpt || stop) {
        st.chunk += o.grad_accum;  // position of the next step
        st.epoch_seconds = epoch_seconds_before + std::chrono::duration<double>(Clock::now() - t_epoch).count();
        st.total_seconds = now_seconds();
        if (!o.checkpoint_path.empty()) save_checkpoint(o.checkpoint_path, model, optim, st, extra_meta);
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
      if (!o.checkpoint_path.empty()) save_checkpoint(o.checkpoint_path, model, optim, st, extra_meta);
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
      save_checkpoint(o.checkpoint_path, model, optim, next, extra_meta);
    }
  }
  if (!flush()) return diverged();
  st.total_seconds = now_seconds();
  return finish("ok", "");
}

nlohmann::json read_checkpoint_meta(const std::string& path) {
  if (!std::filesystem::exists(path)) throw std::runtime_error(path + ": checkpoint not found");
  torch::serialize::InputArchive ar;
  ar.load_from(path);
  torch::Tensor meta_t;
  ar.read("meta", meta_t);
  return nlohmann::json::parse(tensor_string(meta_t));
}

std::shared_ptr<LanguageModel> load_model_from_checkpoint(const std::string& path, torch::Device device) {
  const auto meta = read_checkpoint_meta(path);
  auto model = make_language_model(LmConfig::from_json(meta.at("model_config")));
  torch::serialize::InputArchive ar, ma;
  ar.load_from(path, device);
  ar.read("model", ma);
  model->load(ma);
  model->to(device);
  return model;
}

}  // namespace rbk
