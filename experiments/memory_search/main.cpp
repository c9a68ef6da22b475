// exp_memory_search: the largest model in a memory budget, and what models need (seed 001 §6.5,
// Tables 10-12; seeds 000/001 §3.4, §4.1-4.2; claims C10, C15, C16, C20, C22).
//  search:        for every budget x mode (inference | training) x model family (transformer =
//                 the baseline, phase1 = HTT + AR-SSM, phase2_compat = upstream's "Phase 2
//                 (BK-Core)" that never calls the BK-Core, resnet_bk = rbk's LM with the real
//                 BK-Core), search_largest_fitting over d_model (memory_model.h: start, double
//                 until a probe fails, bisect to one step; no cap but a termination guard that is
//                 reported when reached). Depth follows layers_for_width (upstream's rule),
//                 8 heads, FFN 4d, 4 experts top-1. Every probe is a fresh process with the
//                 budget enforced (probe.h) and is recorded with its dims, parameters, measured
//                 peak, the analytic prediction (memory_model.h) and its error, status, time.
//                 Inference: no grad, one forward + chunked loss, weights in weight_dtype.
//                 Training: AdamW (fp32 weights, gradients and both moments = 16 B/param on the
//                 CPU; on CUDA bf16 autocast over fp32 weights: the same 16 B/param), two steps
//                 (the peak is in the second, when every state exists), chunked head + loss,
//                 activation checkpointing per block when checkpoint_blocks is set.
//                 order_check re-probes the boundary (smallest failing, then largest fitting: the
//                 reverse of the search's order) in fresh processes and records whether the
//                 outcomes agree. Each family is compared with the transformer at the widest
//                 width both fit (memory_reduction_vs_transformer).
//  htt_tables:    Tables 10-11 (structure.h).      semiseparable: C10.      model_sizes: C20.
//  c22:           what 1.2B / 3.5B / 10B parameters need for training state under each scheme.
#include "probe.h"
#include "structure.h"

#include "rbk/experiment.h"
#include "rbk/results.h"
#include "rbk/memory_model.h"
#include "rbk/torch_compat.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

namespace {

using json = nlohmann::json;

std::string budget_key(double gb) {
  std::ostringstream s;
  if (std::abs(gb - std::round(gb)) < 1e-9)
    s << static_cast<int64_t>(std::round(gb));
  else
    s << gb;
  std::string k = s.str();
  for (auto& c : k)
    if (c == '.') c = 'p';
  return "budget_" + k + "gb";
}

json base_spec(const rbk::Config& cfg) {
  return {{"vocab_size", cfg.get_int("vocab_size")},
          {"seq_len", cfg.get_int("seq_len")},
          {"batch", cfg.get_int("batch")},
          {"steps", cfg.get_int("training_steps")},
          {"loss_chunk_tokens", cfg.get_int("loss_chunk_tokens")},
          {"checkpoint_blocks", cfg.get_bool("checkpoint_blocks")},
          {"device", cfg.get_string("device") == "auto" ? (rbk::cuda_available() ? "cuda" : "cpu") : cfg.get_string("device")},
          {"threads", cfg.get_int("probe_threads")},
          {"weight_dtype", cfg.get_string("inference_weight_dtype")},
          {"htt_rank", cfg.get_int("htt.rank")},
          {"seed", cfg.get_int("seed")}};
}

// The analytic prediction of one finished probe (needs its parameter count).
json predict(const json& spec, const json& result) {
  if (!result.contains("parameters")) return nullptr;
  rbk::MemoryProbeShape s;
  s.arch = rbk::parse_memory_arch(spec["arch"]);
  s.vocab_size = spec["vocab_size"];
  s.d_model = spec["d_model"];
  s.n_layers = spec["n_layers"];
  s.seq_len = spec["seq_len"];
  s.batch = spec["batch"];
  s.parameters = result["parameters"];
  s.largest_parameter = result["largest_parameter"];
  s.loss_chunk_tokens = spec["loss_chunk_tokens"];
  s.training = spec["training"];
  s.checkpoint_blocks = spec["checkpoint_blocks"];
  s.fused_attention = rbk::fused_attention_available();
  const std::string wd = spec["weight_dtype"];
  if (!s.training && wd != "fp32") s.weight_bytes = 2;
  if (spec["device"] == "cuda") s.activation_bytes = 2;  // bf16 autocast activations
  if (s.arch == rbk::MemoryArch::Phase1) s.feature_dim = std::max<int64_t>(s.d_model / 32, 32);
  if (s.arch == rbk::MemoryArch::Phase2Compat) s.feature_dim = s.d_model / 4;
  const auto e = rbk::estimate_probe_memory(s);
  json p = e.to_json();
  p["activation_elements_per_token_per_block"] = rbk::activation_elements_per_token_per_block(s);
  return p;
}

struct SearchRun {
  rbk::SearchResult result;
  std::map<int64_t, json> records;  // d_model -> probe record
};

// The probe cache (probe_cache_dir): a finished probe's record, keyed by its whole spec, so that a
// search split over several time-limited calls (the gpu preset's 24 searches do not fit one
// 10-minute command) resumes where the last call was killed and ends in one result file. The
// order check's re-probes never read it: they exist to run again in fresh processes.
std::string probe_cache_path(const rbk::Config& cfg, const json& spec) {
  const std::string dir = cfg.get_string("probe_cache_dir");
  if (dir.empty()) return "";
  return dir + "/" + spec["arch"].get<std::string>() + (spec["training"].get<bool>() ? "-training" : "-inference") + "-b" +
         std::to_string(spec["budget_bytes"].get<int64_t>()) + "-d" + std::to_string(spec["d_model"].get<int64_t>()) + ".json";
}

json probe_record(const rbk::Config& cfg, const std::string& scratch, json spec, int64_t d, double budget_bytes,
                  bool use_cache = true) {
  spec["d_model"] = d;
  spec["n_layers"] = rbk::layers_for_width(d);
  spec["budget_bytes"] = static_cast<int64_t>(budget_bytes);
  const std::string cached = use_cache ? probe_cache_path(cfg, spec) : "";
  if (!cached.empty() && std::filesystem::exists(cached)) {
    json rec = rbk::read_json_file(cached);
    if (rec.value("spec", json()) == spec) {
      rec["from_probe_cache"] = true;
      return rec;
    }
  }
  json r = memory_search::run_probe_process(spec, scratch, cfg.get_real("probe_timeout_s"));
  json rec = {{"arch", spec["arch"]}, {"training", spec["training"]}, {"budget_bytes", spec["budget_bytes"]},
              {"d_model", d}, {"n_layers", spec["n_layers"]}, {"result", r}};
  // A probe that runs out of memory is a result of the search, not a failed row: the row's
  // status is "ok" when the probe ran to a verdict (fits or oom), its outcome says which.
  rec["outcome"] = r.value("status", "error");
  rec["status"] = (rec["outcome"] == "ok" || rec["outcome"] == "oom") ? "ok" : rec["outcome"].get<std::string>();
  const json pred = predict(spec, r);
  if (!pred.is_null()) {
    rec["predicted"] = pred;
    const double measured = r.value("peak_bytes", 0.0);
    if (rec["outcome"] == "ok" && measured > 0) rec["prediction_rel_error"] = pred["total"].get<double>() / measured - 1.0;
  }
  if (!cached.empty() && (rec["outcome"] == "ok" || rec["outcome"] == "oom")) {  // only verdicts are reused
    std::filesystem::create_directories(std::filesystem::path(cached).parent_path());
    json stored = rec;
    stored["spec"] = spec;
    rbk::write_json_atomic(cached, stored);
  }
  std::fprintf(stderr, "probe %-13s %-9s budget %6.2f GB d %5lld L %2lld: %-7s params %12lld peak %8.1f MB (%.1f s)\n",
               spec["arch"].get<std::string>().c_str(), spec["training"].get<bool>() ? "training" : "inference",
               budget_bytes / 1e9, (long long)d, (long long)spec["n_layers"].get<int64_t>(), rec["outcome"].get<std::string>().c_str(),
               (long long)r.value("parameters", int64_t{-1}), r.value("peak_bytes", 0.0) / 1048576.0, r.value("seconds", 0.0));
  return rec;
}

// search.skip: searches a preset leaves out, each "<budget key>/<mode>/<arch or *>" naming a budget,
// mode and family the preset runs (a typo would otherwise skip nothing, silently); ["none"]: none.
std::vector<std::string> checked_search_skip(const rbk::Config& cfg) {
  std::vector<std::string> known;
  for (double gb : cfg.get_real_list("budgets_gb"))
    for (const auto& mode : cfg.get_string_list("modes")) {
      known.push_back(budget_key(gb) + "/" + mode + "/*");
      for (const auto& arch : cfg.get_string_list("archs")) known.push_back(budget_key(gb) + "/" + mode + "/" + arch);
    }
  auto skip = cfg.get_string_list("search.skip");
  if (skip == std::vector<std::string>{"none"}) return {};
  for (const auto& cell : skip)
    if (std::find(known.begin(), known.end(), cell) == known.end())
      throw rbk::ConfigError("search.skip: '" + cell + "' is not a search of this preset (expected <budget key>/<mode>/<arch or *>, e.g. " +
                             known.front() + ")");
  return skip;
}

// search.hints_from: a memory_search result whose searches' largest fitting widths start this
// run's searches (SearchOptions::hint: the probes change, not the answer, for a memory that grows
// with the width). Returns null for ''; a file that is not such a result is a ConfigError naming it.
json checked_search_hints(const rbk::Config& cfg) {
  const std::string path = cfg.get_string("search.hints_from");
  if (path.empty()) return nullptr;
  json doc;
  try {
    doc = rbk::read_json_file(path);
  } catch (const std::exception& e) {
    throw rbk::ConfigError("search.hints_from: cannot read '" + path + "' (" + e.what() + ")");
  }
  if (!doc.is_object() || doc.value("experiment", json()) != "memory_search" || !doc.contains("summary") ||
      !doc["summary"].is_object())
    throw rbk::ConfigError("search.hints_from: '" + path + "' is not a memory_search result (expected \"experiment\": "
                           "\"memory_search\" and a summary object)");
  const json ctx = doc.value("context", json::object());
  return {{"path", path},
          {"preset", doc.value("preset", json())},
          {"git_commit", ctx.value("git_commit", json())},
          {"finished_at", ctx.value("finished_at", json())},
          {"summary", doc["summary"]}};
}

// The hint of one search: where that search ended in the hints file (0: none there).
int64_t search_hint(const json& hints, const std::string& bk, const std::string& mode, const std::string& arch) {
  if (hints.is_null()) return 0;
  const json::json_pointer at("/summary/" + bk + "/" + mode + "/" + arch + "/max_d_model");
  return hints.contains(at) && hints.at(at).is_number_integer() ? std::max<int64_t>(0, hints.at(at).get<int64_t>()) : 0;
}

void run_searches(const rbk::Config& cfg, const std::string& scratch, json& summary, json& rows) {
  rbk::SearchOptions so;
  so.start = cfg.get_int("search.start");
  so.step = cfg.get_int("search.step");
  so.hard_upper = cfg.get_int("search.hard_upper");
  const json spec0 = base_spec(cfg);
  summary["search_settings"] = {{"start", so.start}, {"step", so.step}, {"termination_guard", so.hard_upper},
                                {"depth_rule", "n_layers = 12 (d <= 512), 8 (d <= 1024), else 6"},
                                {"probe", spec0},
                                {"budget_enforcement", spec0["device"] == "cuda" ? "CUDA caching allocator memory fraction"
                                                                                 : "RLIMIT_DATA = VmData at probe start + budget"},
                                {"fresh_process_per_probe", true},
                                {"attention_backend", rbk::causal_attention_backend()}};
  const json hints = checked_search_hints(cfg);
  if (!hints.is_null()) {
    json from = hints;
    from.erase("summary");
    from["use"] = "each search starts at the largest fitting width of the same search there and gallops by step, 2 step, "
                  "4 step, ... to a bracket, then bisects: the probes differ from a search from start, the answer does not "
                  "for a memory that grows with the width (the order check re-probes the boundary either way)";
    summary["search_settings"]["hints_from"] = from;
  }
  // The paper's budgets (seed 001 Table 12; C15, C22) are what the ledger reads; a preset without
  // one (the cpu preset scales budgets to this machine) declares its keys not measured.
  summary["not_measured"] = json::array();
  for (const double paper_gb : {8.0, 15.0, 24.0}) {
    const auto& run_gb = cfg.get_real_list("budgets_gb");
    if (std::find(run_gb.begin(), run_gb.end(), paper_gb) != run_gb.end()) continue;
    summary["not_measured"].push_back(
        {{"pattern", "/summary/" + budget_key(paper_gb) + "/*"},
         {"why", "the " + budget_key(paper_gb) + " budget is not in this preset's budgets_gb (the gpu preset emulates it)"}});
  }
  const auto skipped_searches = checked_search_skip(cfg);
  for (const auto& cell : skipped_searches)
    summary["not_measured"].push_back(
        {{"pattern", "/summary/" + cell + (cell.back() == '*' ? "" : "/*")},
         {"why", "the search " + cell + " is left out of this preset (search.skip)"}});
  auto skipped = [&](const std::string& bk, const std::string& mode, const std::string& arch) {
    const std::string cell = bk + "/" + mode + "/";
    return std::find(skipped_searches.begin(), skipped_searches.end(), cell + arch) != skipped_searches.end() ||
           std::find(skipped_searches.begin(), skipped_searches.end(), cell + "*") != skipped_searches.end();
  };
  for (double gb : cfg.get_real_list("budgets_gb")) {
    const double budget = gb * 1e9;
    const std::string bk = budget_key(gb);
    for (const auto& mode : cfg.get_string_list("modes")) {
      std::map<std::string, SearchRun> runs;
      for (const auto& arch : cfg.get_string_list("archs")) {
        if (skipped(bk, mode, arch)) continue;
        json spec = spec0;
        spec["arch"] = arch;
        spec["training"] = mode == "training";
        SearchRun run;
        rbk::SearchOptions so_search = so;
        so_search.hint = search_hint(hints, bk, mode, arch);
        run.result = rbk::search_largest_fitting(so_search, [&](int64_t d) {
          json rec = probe_record(cfg, scratch, spec, d, budget);
          run.records[d] = rec;
          json row = rec;
          row["part"] = "search_probe";
          rows.push_back(row);
          return rbk::ProbeOutcome{rec["outcome"] == "ok", rec};
        });
        json& s = summary[bk][mode][arch];
        const auto& R = run.result;
        s["ended_at_upper_end"] = R.ended_at_upper_end;
        s["n_probes"] = R.order.size();
        s["hint_d_model"] = so_search.hint > 0 ? json(so_search.hint) : json(nullptr);
        s["probe_order_d_model"] = R.order;
        s["smallest_failing_d_model"] = R.smallest_failing > 0 ? json(R.smallest_failing) : json(nullptr);
        if (R.largest_fitting > 0) {
          const json& best = run.records[R.largest_fitting];
          s["max_d_model"] = R.largest_fitting;
          s["max_n_layers"] = best["n_layers"];
          s["max_params"] = best["result"]["parameters"];
          s["peak_bytes"] = best["result"]["peak_bytes"];
          s["vram_gb"] = best["result"]["peak_bytes"].get<double>() / 1e9;
          if (best.contains("predicted")) s["predicted_bytes"] = best["predicted"]["total"];
        }
        if (cfg.get_bool("order_check") && R.largest_fitting > 0 && R.smallest_failing > 0) {
          // Reverse of the search's order: the failing boundary first, then the fitting one.
          const json fail_again = probe_record(cfg, scratch, spec, R.smallest_failing, budget, false);
          const json fit_again = probe_record(cfg, scratch, spec, R.largest_fitting, budget, false);
          const bool same = fail_again["outcome"] != "ok" && fit_again["outcome"] == "ok";
          s["order_check"] = {{"reprobed", {R.smallest_failing, R.largest_fitting}}, {"consistent", same},
                              {"outcomes", {fail_again["outcome"], fit_again["outcome"]}}};
          rows.push_back({{"part", "order_check"}, {"status", same ? "ok" : "inconsistent"}, {"arch", arch}, {"mode", mode},
                          {"budget_gb", gb}, {"probes", {fail_again, fit_again}}});
        }
        runs[arch] = std::move(run);
      }
      // Each family against the transformer at the widest width both fit.
      if (!runs.count("transformer") || runs["transformer"].result.largest_fitting <= 0) continue;
      for (auto& [arch, run] : runs) {
        if (arch == "transformer" || run.result.largest_fitting <= 0) continue;
        const int64_t d = std::min(run.result.largest_fitting, runs["transformer"].result.largest_fitting);
        json spec = spec0;
        spec["training"] = mode == "training";
        auto get = [&](const std::string& a, SearchRun& r) {
          if (!r.records.count(d)) {
            json s2 = spec;
            s2["arch"] = a;
            r.records[d] = probe_record(cfg, scratch, s2, d, budget);
            json row = r.records[d];
            row["part"] = "common_width_probe";
            rows.push_back(row);
          }
          return r.records[d];
        };
        const json a = get(arch, run), t = get("transformer", runs["transformer"]);
        if (a["outcome"] == "ok" && t["outcome"] == "ok") {
          json& s = summary[bk][mode][arch];
          s["common_d_model"] = d;
          s["memory_reduction_vs_transformer"] =
              1.0 - a["result"]["peak_bytes"].get<double>() / t["result"]["peak_bytes"].get<double>();
        }
      }
    }
  }
}

// Training state of the seeds' scalability rows (C22) under each precision scheme, before
// activations, against the budget the row names.
void run_c22(json& summary) {
  struct Scheme {
    const char* name;
    double bytes;
    const char* savers;
  };
  const Scheme schemes[] = {
      {"mixed_precision_adamw", 16, "none: fp16/bf16 weights + grads (4 B), fp32 master + 2 moments (12 B)"},
      {"bf16_adamw_no_master", 8, "bf16 weights, grads and both moments"},
      {"bf16_weights_8bit_adam", 6, "bf16 weights + grads, 8-bit moments"},
      {"bf16_weights_8bit_adam_fused_update", 4, "bf16 weights, 8-bit moments, gradients never held (fused update)"},
      {"optimizer_offload", 4, "bf16 weights + grads on the device, master weights and moments offloaded to host memory"}};
  struct Row {
    const char* name;
    double params, budget_gb;
  };
  json& out = summary["c22"];
  out["definition"] = "bytes of training state = parameters x bytes per parameter (before activations); GB = 1e9 bytes";
  for (const Row& r : {Row{"1.2b_8gb", 1.2e9, 8}, Row{"3.5b_15gb", 3.5e9, 15}, Row{"10b_24gb", 10e9, 24}}) {
    json row = {{"params", r.params}, {"budget_gb", r.budget_gb}, {"max_bytes_per_param", r.budget_gb * 1e9 / r.params}};
    json fits = json::array();
    for (const auto& s : schemes) {
      const double gb = r.params * s.bytes / 1e9;
      row["schemes"][s.name] = {{"bytes_per_param", s.bytes}, {"state_gb", gb}, {"fits_before_activations", gb <= r.budget_gb},
                                {"memory_savers", s.savers}};
      if (gb <= r.budget_gb) fits.push_back(s.name);
    }
    row["schemes_that_fit_before_activations"] = fits;
    row["mixed_precision_adamw_state_gb"] = r.params * 16 / 1e9;
    out[r.name] = row;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == memory_search::kProbeFlag) return memory_search::run_probe_child(argv[2], argv[3]);
  rbk::ExperimentSpec spec;
  spec.name = "memory_search";
  spec.claims = {"C10", "C15", "C16", "C20", "C22"};
  spec.description = "largest model in a memory budget (real search, enforced budget, fresh process per probe), analytic "
                     "memory model, HTT/AR-SSM tables, semiseparable structure, model sizes";
  auto& s = spec.schema;
  s.add_string_list("parts", {"search", "htt_tables", "semiseparable", "model_sizes", "c22"}, "which parts to run");
  s.add_string_list("archs", {"transformer", "resnet_bk", "phase1", "phase2_compat"}, "model families searched");
  s.add_string_list("modes", {"inference", "training"}, "search modes");
  s.add_real_list("budgets_gb", 0.01, 1024, "memory budgets in GB (1e9 bytes), enforced per probe process");
  s.add_string("device", {"cpu", "cuda", "auto"}, "where probes run (cuda: allocator memory fraction)");
  s.add_int("threads", 0, 256, "LibTorch CPU threads of this process (0: every core)");
  s.add_int("vocab_size", 2, 10000000, "vocabulary of the searched models (upstream 50,000)");
  s.add_int("seq_len", 1, 1 << 20, "tokens per sequence (upstream 2048)");
  s.add_int("batch", 1, 1024, "sequences per probe (upstream 1)");
  s.add_int("training_steps", 1, 10, "AdamW steps per training probe (2: the peak includes every state)");
  s.add_int("loss_chunk_tokens", 0, 1 << 20, "tokens per chunk of the head + loss (0: one chunk, the full logits)");
  s.add_bool("checkpoint_blocks", "per-block activation checkpointing in training probes");
  s.add_string("inference_weight_dtype", {"fp32", "bf16", "fp16"}, "weights of inference probes (upstream fp16 on CUDA)");
  s.add_int("probe_threads", 1, 256, "LibTorch CPU threads in each probe process");
  s.add_real("probe_timeout_s", 1, 36000, "a probe past this is killed and counts as not fitting (status timeout)");
  s.add_int("search.start", 1, 1 << 20, "first d_model probed");
  s.add_int("search.step", 1, 4096, "grid of d_model (multiples of 8 heads x 8)");
  s.add_int("search.hard_upper", 1, 1 << 24, "termination guard of the doubling (reported when reached)");
  s.add_string_list("search.skip", {}, "searches left out, each <budget key>/<mode>/<arch or *> (e.g. budget_24gb/inference/*), "
                    "declared not measured in the summary; [\"none\"]: every search runs");
  s.add_bool("order_check", "re-probe each search's boundary in reverse order in fresh processes");
  s.add_string("search.hints_from", {}, "a memory_search result ('' = none): each search starts where the same search "
               "ended there and gallops to a bracket (fewer probes; the same answer for a memory that grows with width)");
  s.add_string("probe_cache_dir", {}, "directory of finished probe records ('' = none): a search split over several "
               "time-limited calls resumes from it (the order check always re-probes)");
  s.add_int("htt.vocab_size", 2, 10000000, "Tables 10-11 vocabulary (10,000)");
  s.add_int("htt.d_model", 4, 65536, "Tables 10-11 width (512)");
  s.add_int("htt.n_layers", 1, 256, "Tables 10-11 depth (6)");
  s.add_int("htt.rank", 1, 1024, "HTT rank (Table 10: 4)");
  s.add_int("htt.seq_len", 1, 1 << 20, "Table 11 training-step sequence length");
  s.add_int("htt.batch", 1, 1024, "Table 11 batch");
  s.add_int_list("semi.matvec_n", 8, 1 << 24, "N of the semiseparable matvec timing (>= 3 for the fit)");
  s.add_int("semi.dense_max_n", 8, 1 << 16, "largest N also timed densely (N x N matrix)");
  s.add_int("semi.batch", 1, 4096, "vectors per matvec");
  s.add_int("semi.repeats", 1, 1000, "timing repeats (median)");
  s.add_int("semi.memory_n", 8, 1 << 24, "N of the memory comparison with attention");
  s.add_int("semi.memory_d", 1, 65536, "width of the memory comparison");
  s.add_bool("sizes.instantiate_large", "count Large (3.5B) by building one full-width block (~0.13 GB) besides the closed form");
  return rbk::run_experiment(argc, argv, spec, [](const rbk::Config& cfg, rbk::ExperimentOutput& out) {
    if (cfg.get_string("device") == "cuda" && !rbk::cuda_available())
      throw rbk::ConfigError("device: 'cuda' but no CUDA device is visible (expected cpu or auto here)");
    if (cfg.get_int_list("semi.matvec_n").size() < 3)
      throw rbk::ConfigError("semi.matvec_n: the time exponent needs at least 3 lengths");
    if (cfg.get_real_list("budgets_gb").empty()) throw rbk::ConfigError("budgets_gb: at least one budget");
    (void)checked_search_skip(cfg);  // before any part runs (and in the gpu preset's validation test)
    (void)checked_search_hints(cfg);
    const auto parts = cfg.get_string_list("parts");
    auto wants = [&](const char* p) { return std::find(parts.begin(), parts.end(), p) != parts.end(); };
    const std::string scratch = out.checkpoint_dir;
    std::filesystem::create_directories(scratch);
    if (wants("model_sizes")) memory_search::run_model_sizes(cfg, out.summary, out.rows);
    if (wants("semiseparable")) memory_search::run_semiseparable(cfg, out.summary, out.rows);
    if (wants("c22")) run_c22(out.summary);
    if (wants("htt_tables")) memory_search::run_htt_tables(cfg, scratch, out.summary, out.rows);
    if (wants("search")) run_searches(cfg, scratch, out.summary, out.rows);
    // Every finished probe with a prediction: the measured-vs-predicted figure's data.
    const std::vector<std::string> families = {"transformer", "resnet_bk", "phase1", "phase2_compat"};
    std::vector<double> measured, predicted, rel_error;
    std::vector<int64_t> d_model, family, training;
    for (const auto& r : out.rows) {
      if (!r.contains("predicted") || r.value("outcome", "") != "ok") continue;
      measured.push_back(r["result"]["peak_bytes"].get<double>());
      predicted.push_back(r["predicted"]["total"].get<double>());
      rel_error.push_back(predicted.back() / measured.back() - 1.0);
      d_model.push_back(r["d_model"].get<int64_t>());
      family.push_back(std::find(families.begin(), families.end(), r["arch"].get<std::string>()) - families.begin());
      training.push_back(r["training"].get<bool>() ? 1 : 0);
    }
    if (!measured.empty()) {
      out.arrays.push_back(rbk::make_array("probes/measured_bytes", measured, "bytes", "measured peak of each finished probe"));
      out.arrays.push_back(rbk::make_array("probes/predicted_bytes", predicted, "bytes", "analytic model (memory_model.h)"));
      out.arrays.push_back(rbk::make_array("probes/rel_error", rel_error, "1", "predicted / measured - 1"));
      out.arrays.push_back(rbk::make_int_array("probes/d_model", d_model, "1", "width of the probe"));
      out.arrays.push_back(rbk::make_int_array("probes/family", family, "1",
                                               "0 transformer, 1 resnet_bk, 2 phase1, 3 phase2_compat"));
      out.arrays.push_back(rbk::make_int_array("probes/training", training, "1", "1 training, 0 inference"));
      std::vector<double> abs_err;
      for (double e : rel_error) abs_err.push_back(std::abs(e));
      std::sort(abs_err.begin(), abs_err.end());
      out.summary["memory_model"] = {{"n_probes_compared", measured.size()},
                                     {"median_abs_rel_error", abs_err[abs_err.size() / 2]},
                                     {"max_abs_rel_error", abs_err.back()},
                                     {"definition", "predicted / measured - 1 per finished probe; measured = probe peak "
                                                    "(CPU: VmHWM - VmRSS at probe start, which includes the runtime's "
                                                    "lazily created buffers the model does not count)"}};
    }
  });
}
