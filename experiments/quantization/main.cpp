// exp_quantization: claim C13 (seed 002 Table 2 / Fig. 2: ResNet-BK PPL 28.3 / 28.5 / 29.7 / 45.2 at
// FP32 / FP16 / INT8 / INT4 vs Mamba 29.1 / 29.8 / 38.2 / 182.5, "4x lower PPL at INT4") and the
// quantisation test of C21 (p < 1e-5). Audit §8: the rows are literals, the graph a simulator, and
// upstream's PTQ script never produced output.
//
// What runs: parameter-matched language models trained on the same data and tokens, n_seeds seeds
// each, through the resumable sweep runner (cells under <out>/checkpoints.<preset>/sweep):
//   bk           ResNet-BK, corrected: stable BK-Core forward, exact gradient, causal context
//   bk_compat    ResNet-BK as the authors built it: paper-time compat forward, hybrid gradient,
//                bidirectional (its held-out PPL leaks the target through BK-Core, audit §1.7:
//                it decides only the authors'-code face)
//   mamba        Mamba-1, sized to bk's parameter count (model_sizing.h, within 5%)
//   transformer  causal Transformer control, sized likewise
// For one seed the arms see the same token stream in the same order and start from the same
// weights where names and shapes match (sweep.h paired design; bk is the reference arm).
// After training, inside the cell (so a killed run resumes), every row "<format>@<tensor set>" of
// `rows` (quantization.h) is applied to a fresh copy of the checkpoint by fake quantization and
// evaluated on valid and test with the training batching; GPTQ calibrates on the first
// calibration_tokens tokens of TRAIN. The FP32 row must equal the unquantized evaluation exactly
// (checked per cell: seeds/<arm>_fp32_row_equal = 1).
//
// Which row each claim key means (fixed before results; registry note of C13):
//   fp32 = fp32@linear (identity)      fp16 = fp16@all, bf16 = bf16@all (every weight rounded)
//   int8 = int8@linear (weight-only per-channel RTN)
//   int4 = `int4_primary` (gpu preset: int4_g128@linear, per-group RTN; cpu/smoke presets: the
//          largest power-of-two group dividing their narrower widths), GPTQ and per-channel rows
//          as extra keys
//   int8_upstream = upstream_int8_dynamic@every_linear, int4_upstream = upstream_int4_fake@every_linear
//          (the authors' own schemes, audit §8: the compat face)
// Summary keys (JSON pointers under /summary):
//   seeds/seed, seeds/<arm>_<metric> (sweep.h: per seed, null where a cell did not finish), metric
//   = ppl_<k>, valid_ppl_<k>, bpb_<k>, rel_increase_<k>, model_bytes_<k>, bits_per_weight_<k> for
//   every row key k (QuantRowSpec::key(), e.g. int4_g32_linear) and every alias above, plus
//   unquantized_ppl, unquantized_valid_ppl, fp32_row_equal, valid_ppl, test_ppl (training job)
//   seeds/mamba_over_bk_ppl_<k>, transformer_over_bk_ppl_<k>, mamba_over_bk_compat_ppl_<k>
//   checks/fp32_row_equals_unquantized (bool, every ok cell), n_seeds_ok (seeds whose four arms
//   finished), primary_rows, parameters/<arm>, models/<arm>, lowbit, data, cells, counts
// Bad input (unknown format or tensor set, a group size that does not divide a quantized tensor's
// width, a checkpoint whose architecture is not model.arch): one message, exit 2, nothing written.
#include "quant_eval.h"

#include "rbk/experiment.h"
#include "rbk/lm_data.h"
#include "rbk/model_sizing.h"
#include "rbk/options.h"
#include "rbk/sweep.h"
#include "rbk/sweep_options.h"
#include "rbk/trainer.h"
#include "rbk/training_job.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

namespace qe = rbk::quant_exp;
using nlohmann::json;

namespace {

const std::vector<std::string> kArms{"bk", "bk_compat", "mamba", "transformer"};

rbk::LmConfig arm_config(const std::string& arm, const rbk::LmConfig& base) {
  rbk::LmConfig c = base;
  if (arm == "bk" || arm == "bk_compat") {
    c.arch = "resnet_bk";
    c.block = "papertime";
    const bool compat = arm == "bk_compat";
    c.bk_forward = compat ? "compat_papertime" : "stable";
    c.bk_gradient = compat ? "papertime_hybrid" : "exact";
    c.bk_context = compat ? "bidirectional" : "causal";
  } else {
    c.arch = arm;
    c.position = "auto";
  }
  return c;
}

std::vector<rbk::QuantRowSpec> parse_rows(const std::vector<std::string>& texts) {
  std::vector<rbk::QuantRowSpec> rows;
  for (const auto& t : texts) {
    try {
      rows.push_back(rbk::QuantRowSpec::parse(t));
    } catch (const rbk::QuantizationError& e) {
      throw rbk::ConfigError(std::string("rows: ") + e.what());
    }
  }
  return rows;
}

// Checks every row against a model's tensors (group sizes) before anything runs.
void check_rows_against(const std::vector<rbk::QuantRowSpec>& rows, rbk::LanguageModel& model, const std::string& what) {
  for (const auto& r : rows) {
    try {
      rbk::check_group_size(r, rbk::select_quant_targets(model, r.tensor_set));
    } catch (const rbk::QuantizationError& e) {
      throw rbk::ConfigError("rows (" + what + "): " + e.what());
    }
  }
}

json ratio_per_seed(const json& num, const json& den) {
  json out = json::array();
  for (size_t i = 0; i < num.size() && i < den.size(); ++i) {
    if (num[i].is_number() && den[i].is_number() && den[i].get<double>() > 0) out.push_back(num[i].get<double>() / den[i].get<double>());
    else out.push_back(nullptr);
  }
  return out;
}

rbk::ExperimentSpec quantization_spec() {
  rbk::ExperimentSpec spec{"quantization", {"C13", "C21"},
                           "post-training quantization (FP16/BF16, INT8 RTN, INT4 RTN per channel and per group, GPTQ, "
                           "W8A8, upstream's schemes) of parameter-matched ResNet-BK (corrected and compat), Mamba and "
                           "Transformer LMs over seeds",
                           {}};
  rbk::add_data_options(spec.schema, "data.");
  rbk::add_lm_config_options(spec.schema, "model.");
  rbk::add_train_options(spec.schema, "train.");
  spec.schema.add_string_list("arms", kArms, "models to train and quantize (bk is the reference arm and the sizing target)")
      .add_int("n_seeds", 1, 64, "training seeds per arm: seed, seed+1, ...")
      .add_int("width_multiple", 1, 1024, "model widths are multiples of this (so per-group formats divide them)")
      .add_real("sizing_tolerance", 0.0, 1.0, "|parameters / bk's - 1| allowed for mamba and transformer (0.05 = the 5% of model_sizing.h)")
      .add_string_list("rows", {}, "quantization rows '<format>@<tensor set>' (quantization.h)")
      .add_string("int4_primary", {}, "the row the INT4 keys mean (must be in rows)")
      .add_int("calibration_tokens", 16, int64_t(1) << 30, "GPTQ calibration tokens from the start of TRAIN")
      .add_real("gptq_damping", 1e-6, 1.0, "GPTQ damping: fraction of mean diag(H) added to the diagonal")
      .add_int("gptq_block_size", 1, 4096, "GPTQ lazy-update block (columns)")
      .add_int("lowbit_repeats", 1, 10000, "timing repeats of the real INT8 matmul (CUDA, LibTorch >= 2.1)")
      .add([] {
        rbk::ParamSpec p;
        p.key = "mamba_n_layers";
        p.type = rbk::ParamType::Int;
        p.help = "Mamba's depth (0 = model.n_layers); the Mamba paper stacks two Mamba blocks per Transformer layer, which "
                 "is what lets a vocabulary-dominated model match ResNet-BK's parameters";
        p.min = 0;
        p.max = 1024;
        p.default_value = 0;
        return p;
      }())
      .add([] {
        rbk::ParamSpec p;
        p.key = "plan_only";
        p.type = rbk::ParamType::Bool;
        p.help = "load the data, size the models and check every row against them, then stop (the gpu preset's check on a "
                 "machine without CUDA: device=cpu plan_only=true)";
        p.default_value = false;
        return p;
      }())
      .add_string("checkpoint", {}, "'' = train the arms; else quantize this model.pt (model.arch must match it)")
      .add_int("threads", 0, 256, "CPU threads (0 = RBK_THREADS or all cores)")
      .add_string("device", {"auto", "cpu", "cuda"}, "where to train and evaluate");
  rbk::add_sweep_options(spec.schema);  // a cell is an (arm, seed): trained, then quantized in every row
  return spec;
}

// ---- plan: every option read and checked before anything is trained ------------------------------

// What both modes share: the rows, the names the claims read, the evaluation and training setup.
struct QuantPlan {
  torch::Device device = torch::kCPU;
  std::vector<rbk::QuantRowSpec> rows;
  qe::PrimaryRows primary;
  qe::EvalSetup setup;
  rbk::LmConfig base;
  rbk::TrainOptions train;
  rbk::DataOptions data_options;
  std::string cache;
};

QuantPlan plan_quantization(const rbk::Config& cfg, const rbk::ExperimentOutput& out) {
  QuantPlan q;
  q.device = rbk::experiment_device(cfg);
  q.rows = parse_rows(cfg.get_string_list("rows"));
  q.primary.alias_to_row = {{"fp32", "fp32@linear"},
                            {"fp16", "fp16@all"},
                            {"bf16", "bf16@all"},
                            {"int8", "int8@linear"},
                            {"int4", cfg.get_string("int4_primary")},
                            {"int8_upstream", "upstream_int8_dynamic@every_linear"},
                            {"int4_upstream", "upstream_int4_fake@every_linear"}};
  for (const auto& [alias, row_text] : q.primary.alias_to_row) {
    rbk::QuantRowSpec p;
    try {
      p = rbk::QuantRowSpec::parse(row_text);
    } catch (const rbk::QuantizationError& e) {
      throw rbk::ConfigError(std::string("int4_primary: ") + e.what());
    }
    bool found = false;
    for (const auto& r : q.rows) found = found || r.key() == p.key();
    if (!found) throw rbk::ConfigError("rows: the '" + alias + "' key needs the row '" + row_text + "' in rows");
    if (alias == "int4" && p.format.bits != 4)
      throw rbk::ConfigError("int4_primary = '" + row_text + "': expected an INT4 format (int4_channel, int4_g<k>, int4_gptq_*)");
  }
  q.setup.device = q.device;
  q.setup.calibration_tokens = cfg.get_int("calibration_tokens");
  q.setup.gptq.damping = cfg.get_real("gptq_damping");
  q.setup.gptq.block_size = cfg.get_int("gptq_block_size");
  q.setup.lowbit_repeats = static_cast<int>(cfg.get_int("lowbit_repeats"));
  q.base = rbk::lm_config_from(cfg, "model.");
  q.train = rbk::train_options_from(cfg, "train.", q.device);
  q.setup.batch_size = q.train.batch_size;
  q.setup.seq_len = q.train.seq_len;
  q.data_options = rbk::data_options_from(cfg, "data.");
  q.cache = out.checkpoint_dir + "/token_cache";
  return q;
}

// The arms sized to bk's parameter count and checked against every row.
struct ArmPlan {
  std::vector<std::string> arms;
  std::map<std::string, rbk::LmConfig> models;
  json parameters = json::object(), model_json = json::object();
};

ArmPlan plan_arms(const rbk::Config& cfg, const QuantPlan& q, const std::vector<std::string>& arms, const rbk::LmData& data) {
  ArmPlan a;
  a.arms = arms;
  rbk::LmConfig bk = arm_config("bk", q.base);
  bk.vocab_size = data.vocab_size();
  const int64_t budget = rbk::count_parameters(*rbk::make_language_model(bk));
  for (const auto& arm : arms) {
    rbk::LmConfig c = arm_config(arm, bk);
    if (arm == "mamba" && cfg.get_int("mamba_n_layers") > 0) c.n_layers = cfg.get_int("mamba_n_layers");
    try {
      if (c.arch != "resnet_bk") c = rbk::size_to_parameter_count(c, budget, cfg.get_real("sizing_tolerance"), cfg.get_int("width_multiple"));
      rbk::check_lm_config(c, "model.", true);
      rbk::check_model_and_training(c, q.train, "model.", "train.");
    } catch (const rbk::ConfigError&) {
      throw;
    } catch (const std::exception& e) {
      throw rbk::ConfigError("arm '" + arm + "': " + e.what());
    }
    auto m = rbk::make_language_model(c);
    check_rows_against(q.rows, *m, arm);
    a.parameters[arm] = rbk::count_parameters(*m);
    a.model_json[arm] = c.to_json();
    a.models[arm] = c;
    std::fprintf(stderr, "quantization: arm %-12s d_model %lld, %lld parameters (budget %lld)\n", arm.c_str(),
                 (long long)c.d_model, (long long)a.parameters[arm].get<int64_t>(), (long long)budget);
  }
  return a;
}

rbk::SweepPlan plan_sweep(const rbk::Config& cfg, const QuantPlan& q, const ArmPlan& a) {
  rbk::SweepPlan plan;
  plan.name = "quantization";
  for (const auto& arm : a.arms) {
    json ov = json::object();
    const json mj = a.models.at(arm).to_json();
    for (const auto& [k, v] : mj.items()) ov["model." + k] = v;
    plan.grid.arms.push_back({arm, ov});
  }
  for (int64_t k = 0; k < cfg.get_int("n_seeds"); ++k) plan.grid.seeds.push_back(static_cast<uint64_t>(cfg.get_int("seed") + k));
  json row_texts = json::array();
  for (const auto& r : q.rows) row_texts.push_back(r.format.name + "@" + r.tensor_set);
  plan.base = {{"data", rbk::data_options_to_json(q.data_options)}, {"train", rbk::train_options_to_json(q.train)},
               {"rows", row_texts}, {"primary", q.primary.alias_to_row}, {"calibration_tokens", q.setup.calibration_tokens},
               {"gptq", {{"damping", q.setup.gptq.damping}, {"block_size", q.setup.gptq.block_size}}}};
  plan.divergence_rule = rbk::DivergenceRule{q.train.divergence_factor, q.train.divergence_patience}.to_json();
  return plan;
}

// ---- measure: one given checkpoint (mode 1), or one cell of the sweep (mode 2) ----------------------

void measure_checkpoint(const std::string& ckpt, const QuantPlan& q, rbk::ExperimentOutput& out) {
  json meta;
  try {
    meta = rbk::read_checkpoint_meta(ckpt);
  } catch (const rbk::CheckpointError& e) {
    throw rbk::ConfigError(std::string("checkpoint: ") + e.what());
  }
  const std::string arch = meta.at("model_config").value("arch", std::string("resnet_bk"));
  if (arch != q.base.arch)
    throw rbk::ConfigError("checkpoint = '" + ckpt + "' holds a '" + arch + "' model but model.arch = '" + q.base.arch +
                           "'; expected the same architecture");
  const rbk::LmData data = rbk::load_lm_data(q.data_options, q.cache, rbk::LmSplits::TrainValidTest);
  const int64_t V = meta.at("model_config").value("vocab_size", int64_t(0));
  if (V != data.vocab_size())
    throw rbk::ConfigError("checkpoint vocabulary " + std::to_string(V) + " differs from data.* vocabulary " +
                           std::to_string(data.vocab_size()) + "; give the data options it was trained with");
  auto probe = rbk::load_model_from_checkpoint(ckpt, torch::kCPU);
  check_rows_against(q.rows, *probe, arch);
  const json r = qe::evaluate_quantization_rows(ckpt, data, q.rows, q.primary, q.setup);
  for (auto row : r["rows"]) {
    row["checkpoint"] = ckpt;
    out.rows.push_back(row);
  }
  out.summary = {{"checkpoint", ckpt}, {"arch", arch}, {"metrics", r["metrics"]}, {"checks", r["checks"]},
                 {"lowbit", r["lowbit"]}, {"data", data.summary()}};
}

// Trains one (arm, seed) and evaluates every row of its checkpoint, inside the cell so that a
// killed run resumes. The first finished cell's real low-bit timings are kept in `lowbit`.
json measure_cell(const QuantPlan& q, const ArmPlan& a, const rbk::LmData& data, const std::string& sweep_dir,
                  const rbk::SweepCell& cell, const std::string& cell_dir, json& lowbit) {
  rbk::TrainOptions o = q.train;
  o.seed = cell.seed;
  o.label = cell.id + ": ";
  const json job = rbk::run_training_job(data, a.models.at(cell.arm), o, cell_dir,
                                         rbk::paired_init_hook(cell, sweep_dir, cell_dir, a.models.at("bk")));
  json outcome = rbk::cell_outcome_from_job(job);
  if (outcome["status"] != "ok") return outcome;
  std::fprintf(stderr, "%s: trained (valid PPL %.3f); quantization rows:\n", cell.id.c_str(), job["valid"]["ppl"].get<double>());
  json r = qe::evaluate_quantization_rows(rbk::job_checkpoint_path(cell_dir), data, q.rows, q.primary, q.setup);
  json metrics = r["metrics"];
  metrics["valid_ppl"] = job["valid"]["ppl"];
  metrics["test_ppl"] = job["test"]["ppl"];
  metrics["fp32_row_equal"] = r["checks"]["fp32_row_equals_unquantized"].get<bool>() ? 1 : 0;
  metrics["steps"] = job.value("steps", json(0));
  if (lowbit.is_null()) lowbit = r["lowbit"];
  json details = job;
  details.erase("step_losses");
  outcome["metrics"] = metrics;
  outcome["details"] = {{"training", details}, {"rows", r["rows"]}, {"lowbit", r["lowbit"]}};
  return outcome;
}

// ---- summarise: per-seed arrays, the ratios the claims read, checks, figure points ------------------

void summarise(const QuantPlan& q, const ArmPlan& a, const rbk::SweepPlan& plan, const std::string& sweep_dir,
               const rbk::SweepRunReport& report, const json& lowbit, const rbk::LmData& data, rbk::ExperimentOutput& out) {
  const auto outcomes = rbk::read_cell_outcomes(plan, sweep_dir);
  json summary = rbk::sweep_summary(plan, outcomes);
  json& seeds = summary["seeds"];
  std::vector<std::string> keys;
  for (const auto& r : q.rows) keys.push_back(r.key());
  for (const auto& al : q.primary.alias_to_row) keys.push_back(al.first);
  for (const auto& k : keys) {
    const auto get = [&](const std::string& arm) { return seeds.value(arm + "_ppl_" + k, json::array()); };
    if (seeds.contains("bk_ppl_" + k)) {
      if (seeds.contains("mamba_ppl_" + k)) seeds["mamba_over_bk_ppl_" + k] = ratio_per_seed(get("mamba"), get("bk"));
      if (seeds.contains("transformer_ppl_" + k)) seeds["transformer_over_bk_ppl_" + k] = ratio_per_seed(get("transformer"), get("bk"));
    }
    if (seeds.contains("bk_compat_ppl_" + k) && seeds.contains("mamba_ppl_" + k))
      seeds["mamba_over_bk_compat_ppl_" + k] = ratio_per_seed(get("mamba"), get("bk_compat"));
  }
  bool fp32_equal = true;
  int64_t n_ok_cells = 0;
  for (const auto& [id, o] : outcomes) {
    if (o.value("status", "") != "ok") continue;
    ++n_ok_cells;
    fp32_equal = fp32_equal && o["metrics"].value("fp32_row_equal", 0) == 1;
  }
  int64_t n_seeds_ok = 0;
  for (size_t s = 0; s < plan.grid.seeds.size(); ++s) {
    bool all = true;
    for (const auto& arm : a.arms) all = all && seeds[arm + "_status"][s] == "ok";
    n_seeds_ok += all ? 1 : 0;
  }
  summary["sweep"] = report.to_json();
  summary["checks"] = {{"fp32_row_equals_unquantized", n_ok_cells > 0 && fp32_equal}, {"ok_cells", n_ok_cells}};
  summary["n_seeds_ok"] = n_seeds_ok;
  summary["primary_rows"] = q.primary.alias_to_row;
  summary["parameters"] = a.parameters;
  summary["models"] = a.model_json;
  summary["lowbit"] = lowbit.is_null() ? json({{"status", "no cell finished"}}) : lowbit;
  summary["data"] = data.summary();
  summary["held_out_meaningful"] = {{"bk", true}, {"bk_compat", false}, {"mamba", true}, {"transformer", true}};
  // Figure data (scripts/make_figures.py): per arm, one point per finished seed and row of the
  // table's kind (Linear layers, and the fp16/bf16 casts of every weight).
  for (const auto& arm : a.arms) {
    std::vector<double> bits, ppl, seed_of;
    for (const auto& [id, o] : outcomes) {
      if (o.value("status", "") != "ok" || o.value("arm", json("")).get<std::string>() != arm) continue;
      const json& m = o["metrics"];
      for (const auto& r : q.rows) {
        if (r.tensor_set != "linear" && !(r.tensor_set == "all" && r.format.bits == 16)) continue;
        const std::string k = r.key();
        if (!m.contains("ppl_" + k) || !m["ppl_" + k].is_number()) continue;
        bits.push_back(m["bits_per_weight_" + k].get<double>());
        ppl.push_back(m["ppl_" + k].get<double>());
        seed_of.push_back(o.value("seed", json(0)).get<double>());
      }
    }
    out.arrays.push_back(rbk::make_array("points/" + arm + "/bits_per_weight", bits, "bits",
                                         "storage bits per quantized weight (scales included) of each row"));
    out.arrays.push_back(rbk::make_array("points/" + arm + "/test_ppl", ppl, "", "test PPL of that row"));
    out.arrays.push_back(rbk::make_array("points/" + arm + "/seed", seed_of, "", "training seed of that point"));
  }
  for (const auto& row : summary["cells"]) out.rows.push_back(row);
  summary.erase("cells");
  out.summary = summary;
}

}  // namespace

int main(int argc, char** argv) {
  return rbk::run_experiment(argc, argv, quantization_spec(), [](const rbk::Config& cfg, rbk::ExperimentOutput& out) {
    const QuantPlan q = plan_quantization(cfg, out);
    if (!cfg.get_string("checkpoint").empty()) {  // mode 1: one given checkpoint
      measure_checkpoint(cfg.get_string("checkpoint"), q, out);
      return;
    }
    // Mode 2: train the arms over seeds, quantize every cell.
    const auto arms = cfg.get_string_list("arms");
    if (arms.empty() || arms.front() != "bk")
      throw rbk::ConfigError("arms: the first arm must be 'bk' (the reference: paired init and parameter budget)");
    const rbk::LmData data = rbk::load_lm_data(q.data_options, q.cache, rbk::LmSplits::TrainValidTest);
    const ArmPlan a = plan_arms(cfg, q, arms, data);
    if (cfg.get_bool("plan_only")) {
      out.rows.push_back({{"status", "ok"}, {"plan_only", true}});
      out.summary = {{"plan_only", true}, {"parameters", a.parameters}, {"models", a.model_json}, {"data", data.summary()}};
      return;
    }
    const rbk::SweepPlan plan = plan_sweep(cfg, q, a);
    const std::string sweep_dir = rbk::prepared_sweep_dir(cfg, plan, out.checkpoint_dir);
    json lowbit;
    const auto report = rbk::run_sweep(
        plan, sweep_dir,
        [&](const rbk::SweepCell& cell, const std::string& cell_dir) { return measure_cell(q, a, data, sweep_dir, cell, cell_dir, lowbit); },
        rbk::sweep_run_options(cfg));
    summarise(q, a, plan, sweep_dir, report, lowbit, data, out);
  });
}
