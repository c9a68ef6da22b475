// exp_long_context: claims C12 (seed 002 Table 1, Fig. 1: "ResNet-BK trains stably to 1M tokens,
// PPL 28.3 ... 48.7 at 8k ... 1M; Mamba diverges from 128k"), C21.long_context (the paired t-test
// over seeds behind it) and C19's memory ratio (seeds 000/001 §4.4: 3.2 GB vs 9.8 GB for dense
// attention at N = 4096). upstream-audit §9.1 / §12 #1: the table rows are literals, no 1M run
// exists, and the paper-time BK-Core zeroes its features past N ~ 500.
//
// Three parts (key "parts"):
//  sweep   rows x lengths x seeds through the sweep runner (rbk/sweep.h, resumable, cells selectable
//          and mergeable), each cell one training job (rbk/training_job.h). Rows: bk (causal,
//          stable BK-Core: the method as described), bk_compat (the authors' code: paper-time
//          compat forward, hybrid gradient, bidirectional, learned positions; leak: its held-out
//          PPL is not a language-model number), mamba, transformer, rwkv; each sized to
//          param_budget parameters (size_to_parameter_count, position tables left out). At every
//          length: batch = tokens_per_step / N (tokens per optimiser step constant), the same
//          train.max_steps, schedule, clipping and precision, the same data order per seed, the
//          same initial weights per seed where names and shapes match (paired design).
//  probes  passkey retrieval and multi-query associative recall (rbk/context_probes.h): trained at
//          N, evaluated at N x eval_multipliers and per key depth. A second sweep.
//  c19     forward time, training tokens/s and peak memory of bk vs the Transformer with dense
//          (math) attention (and fused SDPA on CUDA) at N = 4096, B = 2, fp32 (and bf16 on CUDA).
//
// Summary keys (JSON pointers under /summary), the ones the registry and paper_tables read first:
//   seeds/<row>_ppl_n<N>           valid PPL at the training length, per seed (null: cell not ok)
//   stable/<row>_n<N>              bool, rule in stability_rule (absent when not determined)
//   bk_over_attention_memory_n4096 training-step peak memory, bk / dense attention, fp32
//   seeds/<row>_ppl_short_n<N>, seeds/<row>_final_train_loss_n<N>, stable_undetermined/...,
//   cells_by_row/<row>/n<N>/...    status, divergence step, reason, tokens/s, peak memory, wall
//                                  time, unique training tokens, epochs, parameters (per seed)
//   memory_fit/<row>               peak memory vs N: linear slope and log-log exponent
//   probes/<row>/<probe>/n<N>/acc_eval<M>[_depth<pct>], seeds/<row>_<probe>_acc_n<N>_eval<M>
//   c19/...                        the C19 measurements;  rows/<row>: config, parameters, leak flag
//   data/..., budget/...           corpus size, tokens per cell, what it limits
//   sweep_generic                  the sweep runner's own summary (seeds/<arm>_<metric>, cells)
//
// Split runs: cells are chosen with select (globs on cell ids) and shard_index / shard_count; with
// sweep_dir set to a persistent directory every command adds its cells and writes the summary of
// all cells finished there. The result's rows are the cells with an outcome and the pending cells
// the command selects (parts sweep and probes); a pending cell it does not select is listed under
// summary/not_selected instead, so a finished selection reads status ok. Sweep directories of
// other machines are joined with `rbk_sweep --merge --out DIR A B`, then `exp_long_context ...
// sweep_dir=DIR` writes the summary.
#include "long_context_parts.h"
#include "long_context_summary.h"

#include "rbk/evaluator.h"
#include "rbk/experiment.h"
#include "rbk/lm_data.h"
#include "rbk/model_sizing.h"
#include "rbk/options.h"
#include "rbk/position_encoding.h"
#include "rbk/results.h"
#include "rbk/sweep.h"
#include "rbk/trainer.h"
#include "rbk/training_job.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>

namespace lc = rbk::long_context;
using nlohmann::json;

namespace {

// Metrics (deterministic given the seed) and details (timings, memory) of one training job.
json cell_outcome(const json& rec, const std::string& row, const rbk::LmData& data, double short_ppl) {
  json out = rbk::cell_outcome_from_job(rec);
  const std::string status = out["status"];
  if (status == "stopped") return out;
  json metrics = json::object();
  if (status == "ok") {
    metrics["valid_ppl"] = rec["valid"].value("ppl", json(nullptr));
    metrics["test_ppl"] = rec["test"].is_object() ? rec["test"].value("ppl", json(nullptr)) : json(nullptr);
    metrics["valid_ppl_short"] = std::isfinite(short_ppl) ? json(short_ppl) : json(nullptr);
    if (rec.contains("step_losses") && !rec["step_losses"].empty()) metrics["final_train_loss"] = rec["step_losses"].back();
  }
  if (rec.contains("steps")) metrics["steps"] = rec["steps"];
  out["metrics"] = metrics;
  const double corpus = static_cast<double>(data.train.ids.numel());
  const double tokens = rec.value("tokens", 0.0);
  const json& pm = rec.contains("peak_memory") ? rec["peak_memory"] : json::object();
  const json cuda = pm.value("cuda_peak_allocated_bytes", json(nullptr));
  json details{{"tokens", tokens},
               {"train_corpus_tokens", corpus},
               {"unique_train_tokens", std::min(tokens, corpus)},
               {"epochs", corpus > 0 ? tokens / corpus : 0.0},
               {"tokens_per_second", rec.value("tokens_per_second", json(nullptr))},
               {"seconds", rec.value("seconds", json(nullptr))},
               {"peak_memory_bytes", cuda.is_number() ? cuda : pm.value("cpu_peak_rss_bytes", json(nullptr))},
               {"peak_memory", pm},
               // Only a peak taken over this cell alone can be fitted against N: the CUDA allocator's, or
               // the process's resident-set peak after a successful reset (peak_memory.h).
               {"peak_memory_per_cell", cuda.is_number() || pm.value("cpu_peak_rss_scope", "") == "since_reset"},
               {"held_out_meaningful", lc::held_out_meaningful(row)}};
  if (rec.contains("parameters")) {
    details["parameters"] = rec["parameters"]["total"];
    details["parameters_without_position"] = rec["parameters"]["without_position_table"];
  }
  for (const char* k : {"valid", "test", "divergence", "valid_curve", "model", "train"})
    if (rec.contains(k)) details[k] = rec[k];
  out["details"] = details;
  return out;
}

// The select patterns that name cells of this plan; a pattern naming no cell of either plan is a
// typo (ConfigError naming it), checked by the caller over both plans.
rbk::SweepSelector selector_for(const rbk::SweepPlan& plan, const rbk::SweepSelector& all, std::set<std::string>& used) {
  rbk::SweepSelector s = all;
  s.patterns.clear();
  const auto cells = rbk::enumerate_cells(plan.grid);
  for (const auto& p : all.patterns) {
    rbk::SweepSelector one;
    one.patterns = {p};
    for (const auto& c : cells)
      if (one.selects(c)) {
        s.patterns.push_back(p);
        used.insert(p);
        break;
      }
  }
  return s;
}

// Ids of the plan's cells this command selects (`mine`: selector_for's): every cell when the command
// gave no pattern, none when its patterns all name the other plan's cells.
std::set<std::string> selected_ids(const rbk::SweepPlan& plan, const rbk::SweepSelector& all, const rbk::SweepSelector& mine) {
  std::set<std::string> ids;
  if (!all.patterns.empty() && mine.patterns.empty()) return ids;
  for (const auto& c : rbk::enumerate_cells(plan.grid))
    if (mine.selects(c)) ids.insert(c.id);
  return ids;
}

// The part's rows into the result; the pending cells it leaves out go to summary/not_selected.
void add_part_rows(const json& cells, const std::set<std::string>& selected, const std::string& part, rbk::ExperimentOutput& out) {
  if (!out.summary.contains("not_selected")) out.summary["not_selected"] = json::array();
  for (const json& row : lc::part_rows(cells, selected, part, out.summary["not_selected"])) out.rows.push_back(row);
}

rbk::ExperimentSpec long_context_spec() {
  rbk::ExperimentSpec spec{"long_context", {"C12", "C19", "C21"},
                           "long-context sweep (rows x lengths x seeds, batch x N constant), context probes "
                           "(passkey, associative recall) and C19's N = 4096 memory/time comparison",
                           {}};
  rbk::add_data_options(spec.schema, "data.");
  rbk::add_lm_config_options(spec.schema, "model.");
  rbk::add_train_options(spec.schema, "train.", {{"epochs", 1000000}});
  const auto& rows = lc::row_choices();
  spec.schema.add_string_list("parts", {"sweep", "probes", "c19"}, "what to run")
      .add_string_list("rows", rows, "sweep rows")
      .add_int_list("lengths", 16, int64_t(1) << 24, "training lengths N of the sweep")
      .add_int("tokens_per_step", 16, int64_t(1) << 26, "batch x N of every cell (batch = tokens_per_step / N)")
      .add_int("n_seeds", 1, 64, "seeds seed, seed+1, ... per (row, N)")
      .add_int("param_budget", 1000, int64_t(1) << 40, "parameters of every row (position tables left out)")
      .add_real("size_tolerance", 0.001, 0.5, "relative tolerance of the parameter match")
      .add_string("bk_position", {"none", "sinusoidal"}, "position mode of the corrected bk row (no table)")
      .add_string("transformer_position", {"learned", "none", "sinusoidal", "rotary"}, "position mode of the Transformer row")
      .add_int("short_eval_len", 16, int64_t(1) << 24, "the common short length every cell is also evaluated at")
      .add_int("attention_max_len", 0, int64_t(1) << 24, "Transformer cells above this N are skipped with the reason (0 = none)")
      .add_int("compat_max_len", 0, int64_t(1) << 24, "bk_compat cells above this N are skipped with the reason (0 = none)")
      .add_int("scan_max_len", 0, int64_t(1) << 24, "mamba / rwkv cells above this N are skipped for time, with the projected time (0 = none)")
      .add_string_list("select", {}, "cell-id globs of this command (\"*\" = all); sweep and probe cells")
      .add_int("shard_index", 0, 1 << 20, "shard i of shard_count (cell index mod n)")
      .add_int("shard_count", 1, 1 << 20, "shards")
      .add_string("sweep_dir", {}, "sweep directory ('' = under the run's checkpoint directory)")
      .add_bool("summarize_only", "run no cell: write the summary of the cells finished in sweep_dir")
      .add_string_list("probe.rows", rows, "probe rows")
      .add_string_list("probe.kinds", {"passkey", "assoc_recall"}, "probes")
      .add_int_list("probe.train_lengths", 8, int64_t(1) << 24, "probe training lengths")
      .add_int_list("probe.eval_multipliers", 1, 1024, "evaluated at N x each")
      .add_real_list("probe.depths", 0.0, 1.0, "passkey depths evaluated one by one")
      .add_int("probe.steps", 1, 1000000, "probe training steps")
      .add_int("probe.batch_size", 1, 65536, "probe training batch")
      .add_int("probe.eval_batch_size", 1, 65536, "sequences per probe evaluation")
      .add_real("probe.lr", 1e-6, 1.0, "probe AdamW learning rate")
      .add_int("probe.param_budget", 100, int64_t(1) << 40, "parameters of every probe model")
      .add_real("probe.size_tolerance", 0.001, 0.5, "relative tolerance of the probe models' parameter match (widths come in steps)")
      .add_int("probe.n_filler", 1, 1 << 20, "filler tokens")
      .add_int("probe.n_values", 2, 1 << 20, "value tokens (chance = 1 / n_values)")
      .add_int("probe.n_keys", 1, 1 << 20, "associative-recall key tokens")
      .add_int("probe.n_pairs", 1, 1 << 20, "associative-recall pairs")
      .add_int("probe.n_queries", 1, 1 << 20, "associative-recall queries")
      .add_int("c19.seq_len", 16, int64_t(1) << 24, "C19 length (4096)")
      .add_int("c19.batch_size", 1, 4096, "C19 batch (2)")
      .add_int("c19.repeats", 1, 1000, "timed repeats (median)")
      .add_string_list("c19.precisions", {"fp32", "bf16"}, "precisions (bf16: CUDA only)")
      .add_string_list("c19.attention", {"math", "fused"}, "attention kernels (fused: CUDA only)")
      .add_int("threads", 0, 256, "CPU threads (0 = RBK_THREADS or all cores)")
      .add_string("device", {"auto", "cpu", "cuda"}, "where to run");

  return spec;
}

// ---- plan: every option read and checked before anything is read or written ------------------------

struct LongContextPlan {
  torch::Device device = torch::kCPU;
  std::vector<std::string> parts, row_names;
  std::vector<int64_t> lengths;
  int64_t tokens_per_step = 0, short_len = 0;
  rbk::LmConfig base;
  rbk::TrainOptions train;
  std::string bk_position, tr_position;
  std::vector<uint64_t> seeds;
  rbk::SweepSelector selector;
  std::string sweep_root;
  rbk::RunContext context;
  bool summarize_only = false;
  lc::ProbeSettings ps;

  bool has(const char* part) const { return std::find(parts.begin(), parts.end(), part) != parts.end(); }
};

LongContextPlan plan_long_context(const rbk::Config& cfg, const rbk::ExperimentOutput& out, int argc, char** argv) {
  LongContextPlan p;
  p.device = rbk::experiment_device(cfg);
  p.parts = cfg.get_string_list("parts");
  p.row_names = cfg.get_string_list("rows");
  p.lengths = cfg.get_int_list("lengths");
  p.tokens_per_step = cfg.get_int("tokens_per_step");
  const auto& lengths = p.lengths;
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (p.tokens_per_step % lengths[i] != 0)
      throw rbk::ConfigError("lengths[" + std::to_string(i) + "] = " + std::to_string(lengths[i]) +
                             ": tokens_per_step = " + std::to_string(p.tokens_per_step) + " must be a multiple of every length");
    if (i > 0 && lengths[i] <= lengths[i - 1]) throw rbk::ConfigError("lengths: expected strictly increasing values");
  }
  if (p.has("sweep") && (p.row_names.empty() || lengths.empty())) throw rbk::ConfigError("rows and lengths must not be empty");
  p.short_len = cfg.get_int("short_eval_len");
  if (p.tokens_per_step % p.short_len != 0)
    throw rbk::ConfigError("short_eval_len = " + std::to_string(p.short_len) + ": must divide tokens_per_step");
  p.base = rbk::lm_config_from(cfg, "model.");
  p.train = rbk::train_options_from(cfg, "train.", p.device);
  rbk::check_train_options(p.train, "train.");
  p.bk_position = cfg.get_string("bk_position");
  p.tr_position = cfg.get_string("transformer_position");
  for (int64_t k = 0; k < cfg.get_int("n_seeds"); ++k) p.seeds.push_back(static_cast<uint64_t>(cfg.get_int("seed") + k));
  p.selector.patterns = cfg.get_string_list("select");
  p.selector.shard_index = cfg.get_int("shard_index");
  p.selector.shard_count = cfg.get_int("shard_count");
  if (p.selector.shard_index >= p.selector.shard_count)
    throw rbk::ConfigError("shard_index = " + std::to_string(p.selector.shard_index) + ": expected < shard_count");
  p.sweep_root = cfg.get_string("sweep_dir").empty() ? out.checkpoint_dir : cfg.get_string("sweep_dir");
  p.context = rbk::RunContext::capture(argc, argv, p.seeds.front());
  p.summarize_only = cfg.get_bool("summarize_only");

  // Probe settings are checked up front too (a bad probe option exits 2 before the sweep runs).
  lc::ProbeSettings& ps = p.ps;
  ps.rows = cfg.get_string_list("probe.rows");
  ps.kinds = cfg.get_string_list("probe.kinds");
  ps.train_lengths = cfg.get_int_list("probe.train_lengths");
  ps.eval_multipliers = cfg.get_int_list("probe.eval_multipliers");
  ps.depths = cfg.get_real_list("probe.depths");
  ps.base.vocab = {cfg.get_int("probe.n_filler"), cfg.get_int("probe.n_values"), cfg.get_int("probe.n_keys")};
  ps.base.n_pairs = cfg.get_int("probe.n_pairs");
  ps.base.n_queries = cfg.get_int("probe.n_queries");
  ps.train.steps = cfg.get_int("probe.steps");
  ps.train.batch_size = cfg.get_int("probe.batch_size");
  ps.train.lr = cfg.get_real("probe.lr");
  ps.train.clip_norm = p.train.clip_norm;
  ps.train.precision = p.train.precision;
  ps.train.device = p.device;
  ps.eval_batch_size = cfg.get_int("probe.eval_batch_size");
  ps.param_budget = cfg.get_int("probe.param_budget");
  ps.size_tolerance = cfg.get_real("probe.size_tolerance");
  ps.attention_max_len = cfg.get_int("attention_max_len");
  ps.compat_max_len = cfg.get_int("compat_max_len");
  ps.scan_max_len = cfg.get_int("scan_max_len");
  ps.bk_position = p.bk_position;
  ps.transformer_position = p.tr_position;
  ps.base_model = p.base;
  if (p.has("probes")) {
    if (ps.rows.empty() || ps.kinds.empty() || ps.train_lengths.empty() || ps.eval_multipliers.empty())
      throw rbk::ConfigError("probe.rows, probe.kinds, probe.train_lengths and probe.eval_multipliers must not be empty");
    for (const auto& kind : ps.kinds)
      for (const int64_t n : ps.train_lengths) {
        rbk::ProbeSpec sp = ps.base;
        sp.kind = rbk::probe_kind_from_string(kind);
        sp.seq_len = n;
        try {
          sp.validate();
        } catch (const std::exception& e) {
          throw rbk::ConfigError(std::string(e.what()) + " (probe." + kind + " at N " + std::to_string(n) + ")");
        }
      }
    for (const auto& row : ps.rows)  // ConfigError naming probe.param_budget when a row cannot be sized
      lc::sized_row_config(row, p.base, p.bk_position, p.tr_position, ps.base.vocab.size(), ps.param_budget, ps.size_tolerance,
                           "probe.param_budget");
  }
  return p;
}

// Every sweep row sized to param_budget and checked at the longest length; the rows' and the
// token budget's summaries.
std::map<std::string, rbk::LmConfig> plan_rows(const rbk::Config& cfg, const LongContextPlan& p, const rbk::LmData& data,
                                               rbk::ExperimentOutput& out) {
  std::map<std::string, rbk::LmConfig> sized;
  json rows_info = json::object();
  if (!p.row_names.empty() && p.lengths.empty())
    throw rbk::ConfigError("lengths must not be empty: every row is checked at the longest length");
  for (const auto& row : p.row_names) {
    const int64_t longest = p.lengths.back();
    sized[row] = lc::sized_row_config(row, p.base, p.bk_position, p.tr_position, data.vocab_size(), cfg.get_int("param_budget"),
                                      cfg.get_real("size_tolerance"), "param_budget");
    rbk::LmConfig at_max = sized[row];
    at_max.n_seq = longest;
    rbk::TrainOptions at_max_train = p.train;
    at_max_train.seq_len = longest;
    at_max_train.batch_size = p.tokens_per_step / longest;
    try {
      rbk::check_model_and_training(at_max, at_max_train, "model.", "train.");
    } catch (const std::exception& e) {
      throw rbk::ConfigError("row '" + row + "': " + e.what());
    }
    rows_info[row] = {{"model", sized[row].to_json()},
                      {"parameters_without_position", rbk::estimate_parameter_count(sized[row]) - rbk::position_parameters(sized[row])},
                      {"position_parameters_at_longest_n", rbk::position_parameters(at_max)},
                      {"held_out_meaningful", lc::held_out_meaningful(row)},
                      {"face", std::string(row == "bk_compat" ? "compat" : "corrected")}};
  }
  out.summary["rows"] = rows_info;
  const double corpus = static_cast<double>(data.train.ids.numel());
  const double cell_tokens = static_cast<double>(p.tokens_per_step) * static_cast<double>(p.train.max_steps);
  out.summary["budget"] = {
      {"tokens_per_step", p.tokens_per_step}, {"steps", p.train.max_steps}, {"tokens_per_cell", cell_tokens},
      {"train_corpus_tokens", corpus}, {"epochs_per_cell", corpus > 0 ? cell_tokens / corpus : 0.0},
      {"what_it_limits",
       "every cell sees tokens_per_cell tokens of a train split of train_corpus_tokens; past one epoch the model "
       "revisits the same text, and a window longer than the corpus's documents cannot show long-range use: the "
       "probes measure that instead"}};
  return sized;
}

rbk::SweepPlan plan_sweep(const rbk::Config& cfg, const LongContextPlan& p, const std::map<std::string, rbk::LmConfig>& sized,
                          const rbk::LmData& data) {
  rbk::SweepPlan plan;
  plan.name = "long_context";
  for (const auto& row : p.row_names)
    for (const int64_t n : p.lengths) {
      const rbk::LmConfig& m = sized.at(row);
      json o{{"model.arch", m.arch}, {"model.d_model", m.d_model}, {"model.position", m.position},
             {"model.n_seq", n}, {"train.seq_len", n}, {"train.batch_size", p.tokens_per_step / n}};
      if (m.arch == "resnet_bk")
        o.update({{"model.bk_forward", m.bk_forward}, {"model.bk_gradient", m.bk_gradient}, {"model.bk_context", m.bk_context}});
      if (m.arch == "transformer" || m.arch == "rwkv") o["model.ffn_dim"] = m.ffn_dim;
      plan.grid.arms.push_back({lc::arm_name(row, n), o});
    }
  plan.grid.seeds = p.seeds;
  plan.base = {{"data", rbk::data_options_to_json(data.options)}, {"model", p.base.to_json()},
               {"train", rbk::train_options_to_json(p.train)}, {"short_eval_len", p.short_len},
               {"attention_max_len", cfg.get_int("attention_max_len")}, {"compat_max_len", cfg.get_int("compat_max_len")},
               {"scan_max_len", cfg.get_int("scan_max_len")}};
  plan.divergence_rule = rbk::DivergenceRule{p.train.divergence_factor, p.train.divergence_patience}.to_json();
  return plan;
}

// ---- measure: one (row, N, seed) cell of the sweep --------------------------------------------------

// A cell's row and its model at the cell's length.
std::pair<std::string, rbk::LmConfig> cell_model(const std::map<std::string, rbk::LmConfig>& sized, const rbk::SweepCell& c) {
  std::string row;
  int64_t n = 0;
  lc::parse_arm(c.arm, row, n);
  rbk::LmConfig m = sized.at(row);
  m.n_seq = n;
  return {row, m};
}

// A cell its row cannot run at its length: skipped with the reason, and the time it would take
// projected from the same row's longest finished length of this seed (time per token scaled by N:
// the skipped rows' scans are sequential in N over a batch of tokens_per_step / N).
json skipped_cell(const LongContextPlan& p, const rbk::SweepPlan& plan, const std::string& dir, const std::string& row,
                  int64_t n, const rbk::SweepCell& cell, const std::string& skip) {
  json skipped{{"status", "skipped"}, {"reason", skip}};
  const auto done = rbk::read_cell_outcomes(plan, dir);
  for (auto it = p.lengths.rbegin(); it != p.lengths.rend(); ++it) {
    const auto o = done.find(lc::arm_name(row, *it) + ".seed" + std::to_string(cell.seed));
    if (*it >= n || o == done.end() || o->second["status"] != "ok") continue;
    const json& tps = o->second["details"]["tokens_per_second"];
    if (!tps.is_number() || tps.get<double>() <= 0) continue;
    const double seconds = static_cast<double>(p.tokens_per_step) * static_cast<double>(p.train.max_steps) /
                           tps.get<double>() * static_cast<double>(n) / static_cast<double>(*it);
    skipped["projected_seconds"] = seconds;
    skipped["reason"] = skip + "; projected " + std::to_string(static_cast<int64_t>(seconds)) + " s from " +
                        std::to_string(static_cast<int64_t>(tps.get<double>())) + " tok/s measured at N = " +
                        std::to_string(*it);
    break;
  }
  return skipped;
}

json measure_cell(const rbk::Config& cfg, const LongContextPlan& p, const std::map<std::string, rbk::LmConfig>& sized,
                  const rbk::LmData& data, const rbk::SweepPlan& plan, const std::string& dir, const rbk::SweepCell& cell,
                  const std::string& cell_dir) {
  auto [row, m] = cell_model(sized, cell);
  const int64_t n = m.n_seq, batch = p.tokens_per_step / n;
  const std::string skip = lc::skip_reason(row, n, batch, m, cfg.get_int("attention_max_len"), cfg.get_int("compat_max_len"),
                                           cfg.get_int("scan_max_len"));
  if (!skip.empty()) return skipped_cell(p, plan, dir, row, n, cell, skip);
  rbk::TrainOptions o = p.train;
  o.seq_len = n;
  o.batch_size = batch;
  o.seed = cell.seed;
  o.label = cell.id + ": ";
  rbk::SweepCell ref = cell;
  for (const auto& c : rbk::enumerate_cells(plan.grid))
    if (c.id == cell.reference_cell) ref = c;
  const json rec = rbk::run_training_job(data, m, o, cell_dir, rbk::paired_init_hook(cell, dir, cell_dir, cell_model(sized, ref).second));
  double short_ppl = NAN;
  if (rec.at("status") == "ok") {
    auto trained = rbk::load_model_from_checkpoint(rbk::job_checkpoint_path(cell_dir), p.device);
    short_ppl = rbk::evaluate_language_model(*trained, data.valid, p.tokens_per_step / p.short_len, p.short_len,
                                             rbk::BatchLayout::Correct, p.device, o.precision).ppl;
  }
  return cell_outcome(rec, row, data, short_ppl);
}

// ---- summarise: the sweep's keyed summary, rows and the figure's arrays -------------------------------

void summarise_sweep(const LongContextPlan& p, const rbk::SweepPlan& plan, const std::string& dir,
                     const std::set<std::string>& selected, rbk::ExperimentOutput& out) {
  const auto outcomes = rbk::read_cell_outcomes(plan, dir);
  const json keyed = lc::keyed_sweep_summary(plan, outcomes, p.row_names, p.lengths);
  for (const auto& [k, v] : keyed.items()) out.summary[k] = v;
  json generic = rbk::sweep_summary(plan, outcomes);
  add_part_rows(generic["cells"], selected, "sweep", out);
  generic.erase("cells");
  out.summary["sweep_generic"] = generic;
  out.summary["lengths"] = p.lengths;
  // Arrays for the figure (scripts/make_figures.py): per row, the lengths and the median over
  // seeds of the valid PPL (NaN where no seed finished ok).
  for (const auto& row : p.row_names) {
    std::vector<double> n, ppl;
    for (const int64_t N : p.lengths) {
      const json& a = out.summary["seeds"][row + "_ppl_n" + std::to_string(N)];
      std::vector<double> v;
      for (const auto& x : a)
        if (x.is_number()) v.push_back(x.get<double>());
      std::sort(v.begin(), v.end());
      n.push_back(static_cast<double>(N));
      ppl.push_back(v.empty() ? NAN : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2])));
    }
    out.arrays.push_back(rbk::make_array("sweep/" + row + "/n", n, "tokens", "training length N"));
    out.arrays.push_back(rbk::make_array("sweep/" + row + "/valid_ppl_median", ppl, "PPL", "median over seeds of the valid PPL at N"));
  }
  out.summary["sweep_dir"] = dir;
}

// ---- the three parts ---------------------------------------------------------------------------------

void run_lm_sweep(const rbk::Config& cfg, const LongContextPlan& p, const std::map<std::string, rbk::LmConfig>& sized,
                  const rbk::LmData& data, std::set<std::string>& used_patterns, rbk::ExperimentOutput& out) {
  const rbk::SweepPlan plan = plan_sweep(cfg, p, sized, data);
  const std::string dir = p.sweep_root + "/sweep";
  rbk::prepare_sweep_dir(plan, dir);
  rbk::SweepRunOptions ro;
  ro.selector = selector_for(plan, p.selector, used_patterns);
  ro.context = p.context.to_json();
  // A selection whose patterns all name probe cells runs no sweep cell.
  if (!p.summarize_only && (p.selector.patterns.empty() || !ro.selector.patterns.empty()))
    rbk::run_sweep(
        plan, dir,
        [&](const rbk::SweepCell& cell, const std::string& cell_dir) {
          return measure_cell(cfg, p, sized, data, plan, dir, cell, cell_dir);
        },
        ro);
  summarise_sweep(p, plan, dir, selected_ids(plan, p.selector, ro.selector), out);
}

// C19: bk against dense attention at one length. Kept in the sweep directory, so that a
// summarize_only command (split GPU runs) reports it too.
void run_c19(const rbk::Config& cfg, const LongContextPlan& p, const std::map<std::string, rbk::LmConfig>& sized, int64_t V,
             rbk::ExperimentOutput& out) {
  lc::C19Settings cs;
  cs.seq_len = cfg.get_int("c19.seq_len");
  cs.batch_size = cfg.get_int("c19.batch_size");
  cs.repeats = cfg.get_int("c19.repeats");
  cs.precisions = cfg.get_string_list("c19.precisions");
  cs.attention = cfg.get_string_list("c19.attention");
  cs.seed = p.seeds.front();
  const auto config_of = [&](const std::string& row) {
    return sized.count(row) ? sized.at(row)
                            : lc::sized_row_config(row, p.base, p.bk_position, p.tr_position, V, cfg.get_int("param_budget"),
                                                   cfg.get_real("size_tolerance"), "param_budget");
  };
  const std::string saved = p.sweep_root + "/c19.json";
  if (p.summarize_only && std::filesystem::exists(saved)) {
    const json c19 = rbk::read_json_file(saved);
    for (const auto& r : c19["rows"]) out.rows.push_back(r);
    for (const auto& [k, v] : c19["summary"].items()) out.summary[k] = v;
  } else if (!p.summarize_only) {
    json c19_rows = json::array(), c19_summary = json::object();
    lc::measure_c19(cs, config_of("bk"), config_of("transformer"), p.device, c19_rows, c19_summary);
    std::filesystem::create_directories(p.sweep_root);
    rbk::write_json_atomic(saved, {{"rows", c19_rows}, {"summary", c19_summary}});
    for (const auto& r : c19_rows) out.rows.push_back(r);
    for (const auto& [k, v] : c19_summary.items()) out.summary[k] = v;
  }
}

void run_probes(const LongContextPlan& p, std::set<std::string>& used_patterns, rbk::ExperimentOutput& out) {
  const lc::ProbeSettings& ps = p.ps;
  rbk::SweepPlan plan;
  plan.name = "long_context_probes";
  plan.grid = lc::probe_grid(ps, p.seeds);
  plan.base = {{"probe", ps.base.to_json()}, {"steps", ps.train.steps}, {"batch_size", ps.train.batch_size},
               {"lr", ps.train.lr}, {"eval_multipliers", ps.eval_multipliers}, {"depths", ps.depths},
               {"eval_batch_size", ps.eval_batch_size}, {"param_budget", ps.param_budget}, {"model", p.base.to_json()}};
  plan.divergence_rule = {{"rule", "a non-finite probe loss or gradient"}};
  const std::string dir = p.sweep_root + "/probes";
  rbk::prepare_sweep_dir(plan, dir);
  rbk::SweepRunOptions ro;
  ro.selector = selector_for(plan, p.selector, used_patterns);
  ro.context = p.context.to_json();
  if (!p.summarize_only && (p.selector.patterns.empty() || !ro.selector.patterns.empty()))
    rbk::run_sweep(plan, dir, [&](const rbk::SweepCell& c, const std::string&) { return lc::run_probe_cell(ps, c); }, ro);
  const auto outcomes = rbk::read_cell_outcomes(plan, dir);
  const json probes = lc::probe_summary(plan, outcomes);
  out.summary["probes"] = probes["probes"];
  for (const auto& [k, v] : probes["seeds"].items()) out.summary["seeds"][k] = v;
  // Named: a range-for over a member of the temporary summary would read it after its end (the
  // probe rows were lost that way before session 34).
  const json generic = rbk::sweep_summary(plan, outcomes);
  add_part_rows(generic.at("cells"), selected_ids(plan, p.selector, ro.selector), "probes", out);
  out.summary["probe_settings"] = plan.base;
}

}  // namespace

int main(int argc, char** argv) {
  return rbk::run_experiment(argc, argv, long_context_spec(), [&](const rbk::Config& cfg, rbk::ExperimentOutput& out) {
    const LongContextPlan p = plan_long_context(cfg, out, argc, argv);
    std::set<std::string> used_patterns;
    if (p.has("sweep") || p.has("c19")) {
      const std::string cache = p.sweep_root + "/token_cache";
      const rbk::LmData data = rbk::load_lm_data(rbk::data_options_from(cfg, "data."), cache, rbk::LmSplits::TrainValidTest);
      out.summary["data"] = data.summary();
      const auto sized = plan_rows(cfg, p, data, out);
      if (p.has("sweep")) run_lm_sweep(cfg, p, sized, data, used_patterns, out);
      if (p.has("c19")) run_c19(cfg, p, sized, data.vocab_size(), out);
    }
    if (p.has("probes")) run_probes(p, used_patterns, out);
    if (p.has("sweep") && p.has("probes"))
      for (const auto& pat : p.selector.patterns)
        if (!used_patterns.count(pat)) throw rbk::ConfigError("select: pattern '" + pat + "' names no cell of the sweep or the probes");
    if (out.rows.empty()) out.rows.push_back({{"status", "skipped"}, {"reason", "no part selected"}});
  });
}
