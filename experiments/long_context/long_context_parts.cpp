// Rows, probe cells and the C19 measurement of exp_long_context (long_context_parts.h).
#include "long_context_parts.h"
#include "long_context_summary.h"

#include "rbk/lm_loss.h"
#include "rbk/model_sizing.h"
#include "rbk/peak_memory.h"
#include "rbk/position_encoding.h"
#include "rbk/torch_compat.h"
#include "rbk/torch_compat_long_context.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace rbk::long_context {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::vector<std::string>& row_choices() {
  static const std::vector<std::string> v{"bk", "bk_compat", "mamba", "transformer", "rwkv"};
  return v;
}

bool held_out_meaningful(const std::string& row) { return row != "bk_compat"; }

LmConfig row_config(const std::string& row, const LmConfig& base, const std::string& bk_position,
                    const std::string& transformer_position) {
  LmConfig c = base;
  if (row == "bk" || row == "bk_compat") {
    c.arch = "resnet_bk";
    if (row == "bk") {
      c.bk_forward = "stable";
      c.bk_gradient = "exact";
      c.bk_context = "causal";
      c.position = bk_position;  // none | sinusoidal: no table, so any N
    } else {
      c.bk_forward = "compat_papertime";
      c.bk_gradient = "papertime_hybrid";
      c.bk_context = "bidirectional";
      c.position = "learned";
    }
  } else if (row == "transformer") {
    c.arch = "transformer";
    c.position = transformer_position;
  } else if (row == "mamba" || row == "rwkv") {
    c.arch = row;
    c.position = "auto";
  } else {
    throw ConfigError("row '" + row + "': expected one of bk, bk_compat, mamba, transformer, rwkv");
  }
  return c;
}

LmConfig sized_row_config(const std::string& row, const LmConfig& base, const std::string& bk_position,
                          const std::string& transformer_position, int64_t vocab_size, int64_t budget,
                          double tolerance, const std::string& budget_key) {
  LmConfig c = row_config(row, base, bk_position, transformer_position);
  c.vocab_size = vocab_size;
  const int64_t n_seq = c.n_seq;
  c.n_seq = 16;
  try {
    c = size_to_parameter_count(c, budget, tolerance);
  } catch (const std::exception& e) {
    throw ConfigError(budget_key + " = " + std::to_string(budget) + ": row '" + row + "' cannot be sized to it (" +
                      e.what() + ")");
  }
  c.n_seq = n_seq;
  return c;
}

std::string skip_reason(const std::string& row, int64_t n, int64_t batch, const LmConfig& c, int64_t attention_max_len,
                        int64_t compat_max_len, int64_t scan_max_len) {
  if ((row == "mamba" || row == "rwkv") && scan_max_len > 0 && n > scan_max_len)
    return "time budget: the " + row + " reference scan on this device runs N sequential steps per layer over a batch of "
           "tokens_per_step / N, so its time per token grows about as N; not run at N = " + std::to_string(n) +
           " (> scan_max_len " + std::to_string(scan_max_len) + ")";
  if (row == "transformer" && attention_max_len > 0 && n > attention_max_len) {
    // Dense attention keeps B x H x N x N fp32 scores (and their softmax) per layer for backward.
    const double bytes = 2.0 * 4.0 * static_cast<double>(batch) * static_cast<double>(c.n_heads) * static_cast<double>(n) *
                         static_cast<double>(n) * static_cast<double>(c.n_layers);
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  "dense attention not run at N = %lld (> attention_max_len %lld): its time per sequence grows as N^2 "
                  "and the math path keeps B x H x N^2 scores and probabilities per layer, %.3g GB for B %lld, H %lld, L %lld",
                  (long long)n, (long long)attention_max_len, bytes / 1e9, (long long)batch, (long long)c.n_heads,
                  (long long)c.n_layers);
    return buf;
  }
  if (row == "bk_compat" && compat_max_len > 0 && n > compat_max_len)
    return "paper-time compat forward not run at N = " + std::to_string(n) + " (> compat_max_len " +
           std::to_string(compat_max_len) +
           "): its recursion is a scalar loop of 2N steps per call; past N ~ 500 it overflows and the sanitiser "
           "zeroes the BK features anyway (audit 1.5)";
  return "";
}

// ---- Probes ------------------------------------------------------------------------------------

SweepGrid probe_grid(const ProbeSettings& s, const std::vector<uint64_t>& seeds) {
  SweepGrid g;
  for (const auto& row : s.rows)
    for (const auto& kind : s.kinds)
      for (const int64_t n : s.train_lengths)
        g.arms.push_back({probe_arm_name(row, kind, n), {{"probe.row", row}, {"probe.kind", kind}, {"probe.seq_len", n}}});
  g.seeds = seeds;
  return g;
}

json run_probe_cell(const ProbeSettings& s, const SweepCell& cell) {
  std::string row, kind;
  int64_t n = 0;
  if (!parse_probe_arm(cell.arm, row, kind, n)) throw std::invalid_argument("not a probe arm: " + cell.arm);
  ProbeSpec spec = s.base;
  spec.kind = probe_kind_from_string(kind);
  spec.seq_len = n;
  const int64_t longest = n * *std::max_element(s.eval_multipliers.begin(), s.eval_multipliers.end());
  LmConfig m = sized_row_config(row, s.base_model, s.bk_position, s.transformer_position, spec.vocab.size(),
                                s.param_budget, s.size_tolerance, "probe.param_budget");
  m.n_seq = longest;  // the learned table of the compat row must cover the longest evaluation
  const std::string skip = skip_reason(row, n, s.train.batch_size, m, s.attention_max_len, s.compat_max_len, s.scan_max_len);
  if (!skip.empty()) return {{"status", "skipped"}, {"reason", skip}};

  torch::manual_seed(cell.seed);
  auto model = make_language_model(m);
  ProbeTrainOptions o = s.train;
  o.seed = cell.seed;
  o.label = cell.id + ": ";
  const ProbeTrainResult tr = train_on_probe(*model, spec, o);
  json details{{"train", tr.to_json()},
               {"spec", spec.to_json()},
               {"model", m.to_json()},
               {"parameters", count_parameters(*model)},
               {"parameters_without_position", count_parameters(*model) - position_parameters(m)},
               {"held_out_meaningful", held_out_meaningful(row) || spec.kind == ProbeKind::Passkey}};
  if (tr.status != "ok")
    return {{"status", "diverged"},
            {"reason", "non-finite probe loss or gradient"},
            {"divergence", {{"step", tr.diverged_step}, {"reason", "non-finite probe loss or gradient"}}},
            {"metrics", json::object()},
            {"details", details}};
  json metrics{{"final_loss", tr.final_loss}};
  json skipped = json::array();
  // Evaluation seeds: far from the training seeds (seed * 1000003 + step, step < steps).
  const uint64_t eval_seed = (cell.seed + 1) * 0xA5A5A5A5ULL + 17;
  for (const int64_t mult : s.eval_multipliers) {
    ProbeSpec e = spec;
    e.seq_len = n * mult;
    const std::string why = skip_reason(row, e.seq_len, s.eval_batch_size, m, s.attention_max_len, s.compat_max_len, s.scan_max_len);
    const std::string tag = "acc_eval" + std::to_string(e.seq_len);
    if (!why.empty()) {
      skipped.push_back({{"eval_len", e.seq_len}, {"reason", why}});
      continue;
    }
    e.depth = -1.0;
    metrics[tag] = probe_accuracy(*model, generate_probe_batch(e, s.eval_batch_size, eval_seed + mult), o.device, o.precision);
    if (spec.kind == ProbeKind::Passkey) {
      for (const double d : s.depths) {
        e.depth = d;
        const int64_t pct = std::llround(100.0 * d);
        metrics[tag + "_depth" + std::to_string(pct)] =
            probe_accuracy(*model, generate_probe_batch(e, s.eval_batch_size, eval_seed + mult * 1000 + pct), o.device,
                           o.precision);
      }
    }
  }
  details["evaluations_skipped"] = skipped;
  details["chance_accuracy"] = 1.0 / static_cast<double>(spec.vocab.n_values);
  std::fprintf(stderr, "%s: probe %s trained at N %lld, final loss %.3f, %s\n", cell.id.c_str(), kind.c_str(), (long long)n,
               tr.final_loss, metrics.dump().c_str());
  return {{"status", "ok"}, {"metrics", metrics}, {"details", details}};
}

// ---- C19 ---------------------------------------------------------------------------------------

namespace {

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? NAN : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
}

void sync(torch::Device d) {
  if (d.is_cuda()) torch::cuda::synchronize();
}

// A measured span's memory: on CUDA the allocator's peak of allocated bytes (the model is built
// inside the span, so it counts parameters, optimizer state and activations); on the CPU the rise
// of the process's peak resident set above the resident set at the start (freed heap is returned
// to the system first, so an earlier measurement's pages do not hide this one's).
struct MemorySpan {
  torch::Device device;
  std::string scope;
  int64_t rss_start = -1;
  explicit MemorySpan(torch::Device d) : device(d) {
    if (d.is_cuda()) {
      sync(d);
    }
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
    scope = reset_peak_memory(d);
    rss_start = cpu_current_rss_bytes();
  }
  json finish() const {
    sync(device);
    const PeakMemory p = read_peak_memory(device, scope);
    const int64_t rise = p.cpu_peak_rss_bytes >= 0 && rss_start >= 0 ? p.cpu_peak_rss_bytes - rss_start : -1;
    const int64_t bytes = device.is_cuda() ? p.cuda_peak_allocated_bytes : rise;
    return {{"peak_bytes", bytes < 0 ? json(nullptr) : json(bytes)},
            {"measure", device.is_cuda() ? "cuda_peak_allocated_bytes" : "cpu_peak_rss_rise_bytes (VmHWM - VmRSS at start)"},
            {"cpu_scope", scope},
            {"raw", p.to_json()}};
  }
};

json measure_one(const LmConfig& config, const std::string& precision, bool math_only, const C19Settings& s,
                 torch::Device device) {
  const bool bf16 = precision == "bf16";
  const int64_t B = s.batch_size, N = s.seq_len;
  json r{{"arch", config.arch}, {"precision", precision}, {"seq_len", N}, {"batch_size", B}};
  MathAttentionOnly guard(math_only && config.arch == "transformer");
  torch::manual_seed(s.seed);
  const auto ids = torch::randint(0, config.vocab_size, {B, N + 1}, torch::TensorOptions().dtype(torch::kInt64)).to(device);
  const auto x = ids.narrow(1, 0, N), y = ids.narrow(1, 1, N);
  try {
    {  // Forward, no grad.
      MemorySpan span(device);
      auto model = make_language_model(config);
      model->to(device);
      model->eval();
      std::vector<double> ms;
      torch::NoGradGuard no_grad;
      for (int64_t i = 0; i <= s.repeats; ++i) {  // i = 0: warm-up
        sync(device);
        const auto t0 = Clock::now();
        AutocastGuard autocast(bf16 && device.is_cuda());
        auto h = model->forward_features(x);
        sync(device);
        if (i > 0) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (!torch::isfinite(h).all().item<bool>()) throw std::runtime_error("non-finite forward output");
      }
      r["forward_ms_median"] = median_of(ms);
      r["forward_ms"] = ms;
      r["forward_memory"] = span.finish();
    }
    {  // Training step: forward, chunked head + loss, backward, AdamW.
      MemorySpan span(device);
      auto model = make_language_model(config);
      model->to(device);
      model->train();
      torch::optim::AdamW optim(model->parameters(), torch::optim::AdamWOptions(1e-4));
      std::vector<double> ms;
      for (int64_t i = 0; i <= s.repeats; ++i) {
        sync(device);
        const auto t0 = Clock::now();
        optim.zero_grad();
        auto loss = language_model_loss(*model, x, y, bf16, kDefaultLossChunkTokens);
        loss.backward();
        optim.step();
        sync(device);
        if (i > 0) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (!std::isfinite(loss.item<double>())) throw std::runtime_error("non-finite training loss");
      }
      r["train_step_ms_median"] = median_of(ms);
      r["train_step_ms"] = ms;
      r["train_tokens_per_second"] = static_cast<double>(B * N) / (median_of(ms) / 1e3);
      r["train_memory"] = span.finish();
      r["parameters"] = count_parameters(*model);
    }
    r["status"] = "ok";
  } catch (const std::exception& e) {
    r["status"] = is_out_of_memory(e) ? "oom" : "error";
    r["reason"] = e.what();
  }
  return r;
}

}  // namespace

void measure_c19(const C19Settings& s, const LmConfig& bk_in, const LmConfig& attn_in, torch::Device device, json& rows,
                 json& summary) {
  LmConfig bk = bk_in, attn = attn_in;
  bk.n_seq = attn.n_seq = s.seq_len;
  json c19 = json::object();
  for (const auto& precision : s.precisions) {
    if (precision == "bf16" && !device.is_cuda()) {
      rows.push_back({{"part", "c19"}, {"precision", precision}, {"status", "skipped"}, {"reason", "bf16 needs CUDA"}});
      continue;
    }
    json bk_row = measure_one(bk, precision, false, s, device);
    bk_row["part"] = "c19";
    bk_row["model"] = "bk";
    std::fprintf(stderr, "c19 %s bk: %s\n", precision.c_str(), bk_row.dump().substr(0, 400).c_str());
    c19[precision]["bk"] = bk_row;
    rows.push_back(bk_row);
    for (const auto& kernel : s.attention) {
      json row;
      if (kernel == "fused" && !device.is_cuda()) {
        row = {{"status", "skipped"}, {"reason", "flash / memory-efficient SDPA is measured on CUDA only"}};
      } else {
        row = measure_one(attn, precision, kernel == "math", s, device);
        row["attention_backend"] = MathAttentionOnly::backend(kernel == "math");
      }
      row["part"] = "c19";
      row["model"] = "transformer_" + kernel;
      row["precision"] = precision;
      std::fprintf(stderr, "c19 %s transformer_%s: %s\n", precision.c_str(), kernel.c_str(), row.dump().substr(0, 400).c_str());
      c19[precision]["transformer_" + kernel] = row;
      rows.push_back(row);
      const auto peak = [](const json& r, const char* part) -> double {
        return r.value("status", "") == "ok" && r[part]["peak_bytes"].is_number() ? r[part]["peak_bytes"].get<double>() : NAN;
      };
      const double train_ratio = peak(bk_row, "train_memory") / peak(row, "train_memory");
      const double fwd_ratio = peak(bk_row, "forward_memory") / peak(row, "forward_memory");
      c19[precision]["bk_over_transformer_" + kernel + "_train_memory"] = std::isfinite(train_ratio) ? json(train_ratio) : json(nullptr);
      c19[precision]["bk_over_transformer_" + kernel + "_forward_memory"] = std::isfinite(fwd_ratio) ? json(fwd_ratio) : json(nullptr);
      if (precision == "fp32" && kernel == "math" && std::isfinite(train_ratio))
        summary["bk_over_attention_memory_n4096"] = train_ratio;
    }
  }
  c19["what"] =
      "N = seq_len, B = batch_size, random token ids; forward = forward_features under no_grad (median of repeats "
      "after one warm-up); training step = forward + chunked head/loss + backward + AdamW; memory = the peak of each "
      "span (CUDA: allocator peak of allocated bytes, model built inside the span; CPU: rise of the peak resident set "
      "over the span). bk_over_attention_memory_n4096 = training-step peak of bk / Transformer with math (dense) "
      "attention, fp32.";
  c19["rtx3080_note"] =
      "The papers' 35 ms / 3.2 GB vs 9.8 GB / 1200 tok/s are RTX 3080 numbers: they cannot be confirmed on this "
      "hardware; the times here are context only. The memory ratio is the device-independent part.";
  c19["settings"] = {{"seq_len", s.seq_len}, {"batch_size", s.batch_size}, {"repeats", s.repeats}, {"device", device.str()},
                     {"bk", bk.to_json()}, {"transformer", attn.to_json()}};
  summary["c19"] = c19;
}

}  // namespace rbk::long_context
