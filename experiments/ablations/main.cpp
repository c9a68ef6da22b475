// exp_ablations: the ablation table of seeds 000/001/002 (Table 4; claims C14, C06, C09's PPL
// part). Paper: Full 28.3; w/o Prime-Bump 29.8 and 0.77x convergence speed ("30 % faster
// convergence", C06); w/o scattering router 28.9; w/o LAP 31.2 and 87 % stable; w/o semiseparable
// out of memory. upstream-audit §12 #4: those rows are literals and run_ablation.py cannot run.
//
// Arms (ablation_summary.h): "full" = the model as the papers describe it (Prime-Bump potential
// on the position table, scattering-phase router, LAP-weighted BK features, semiseparable
// H = T + U V^T with learned rank ceil(log2 N) factors), and each component removed in turn.
// Two of the four removals change nothing in upstream's own model (LAP, semiseparable: the
// summary's upstream/<arm> says so and why); they are measured here with the component
// implemented as described (corrected face). "w/o semiseparable: OOM" is a memory statement: the
// dense alternative's peak is projected at the claim's length (router_memory.h) beside the
// training arm without the structure (which is upstream's tridiagonal model).
//
// Paired design: for one seed every arm trains on the same token stream in the same order (the
// trainer visits the chunks in order, the same for every seed and arm) and starts from the same
// initial weights wherever names and shapes match (apply_paired_init; the reference is the arm
// without Prime-Bump when it is trained, since Prime-Bump is itself an initial-weight change:
// every other arm copies the shared weights and then adds its own bump). Seeds vary the
// initialisation and dropout.
// Convergence target (fixed before any result, from the data alone): valid loss <= the add-one
// unigram model's loss on the same validation tokens (the first train.eval_tokens) minus
// target_margin_nats. steps_to_target interpolates the validation curve (every train.eval_every).
// Convergence speed of an arm = mean over seeds of steps_full / steps_arm (full = 1, the paper's
// 0.77x reads as the arm needing 1/0.77 of the steps).
// Stable = the cell finished "ok" under the sweep's divergence rule (train.divergence_*).
//
// Summary keys (arrays are per seed, in seed order, null where a cell did not finish / never
// reached the target):
//   seeds/seed;  seeds/{val_ppl, steps_to_target, tokens_per_second, status}_<arm>
//   seeds/prime_bump_convergence_speedup     steps_no_prime_bump / steps_full per seed
//   convergence_speed/<arm>, stable_fraction/<arm>, mean_val_ppl/<arm>
//   target/{rule, unigram_valid_loss, margin_nats, valid_loss, eval_tokens}
//   parameters/<arm>/{total, added_vs_full, removed_vs_full}   (names with their numel)
//   upstream/<arm>/{changes_upstream_model, note};  upstream/semiseparable_zero_factors_max_abs_diff
//   router_speed (router_memory.h);  semiseparable_memory;  no_semiseparable_oom (bool)
#include "ablation_summary.h"
#include "router_memory.h"

#include "rbk/divergence.h"
#include "rbk/evaluator.h"
#include "rbk/experiment.h"
#include "rbk/lm_data.h"
#include "rbk/resnet_bk_lm.h"
#include "rbk/lowrank_resolvent.h"
#include "rbk/options.h"
#include "rbk/prime_bump.h"
#include "rbk/results.h"
#include "rbk/sweep.h"
#include "rbk/sweep_options.h"
#include "rbk/training_job.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace ab = rbk::ablations;
using nlohmann::json;

namespace {

rbk::LmConfig arm_model(const rbk::LmConfig& base, const json& overrides) {
  json j = base.to_json();
  for (auto it = overrides.begin(); it != overrides.end(); ++it) j[it.key().substr(std::string("model.").size())] = it.value();
  return rbk::LmConfig::from_json(j);
}

std::map<std::string, int64_t> parameter_shapes(const rbk::LmConfig& c) {
  std::map<std::string, int64_t> m;
  auto model = rbk::make_language_model(c);
  for (const auto& p : model->named_parameters()) m[p.key()] = p.value().numel();
  return m;
}

// Per-seed metrics of one cell from its training-job record.
// Why a finished training's outputs are not to be trusted ("" when they are): a valid PPL that is
// not a finite number above 1, a non-finite point of the valid curve, or no measured throughput.
std::string output_check_failure(const json& rec) {
  const json ppl = rec["valid"].value("ppl", json(nullptr));
  if (!ppl.is_number() || !std::isfinite(ppl.get<double>()) || ppl.get<double>() <= 1.0)
    return "valid PPL " + ppl.dump() + " is not a finite number above 1";
  for (const auto& p : rec.value("valid_curve", json::array()))
    if (!p.at("valid_loss").is_number() || !std::isfinite(p.at("valid_loss").get<double>()))
      return "valid loss at step " + p.at("step").dump() + " is not finite";
  const json tps = rec.value("tokens_per_second", json(nullptr));
  if (!tps.is_number() || !(tps.get<double>() > 0)) return "tokens/s " + tps.dump() + " is not positive";
  return "";
}

json cell_outcome(const json& rec, double target) {
  json out = rbk::cell_outcome_from_job(rec);
  std::string status = out["status"];
  if (status == "stopped") return out;
  if (status == "ok") {
    const std::string bad = output_check_failure(rec);
    if (!bad.empty()) {
      out["status"] = status = "error";
      out["reason"] = "output check: " + bad;
    }
  }
  std::vector<ab::CurvePoint> curve;
  for (const auto& p : rec.value("valid_curve", json::array())) curve.push_back({p.at("step").get<double>(), p.at("valid_loss").get<double>()});
  json metrics = json::object();
  if (status == "ok") {
    metrics["val_ppl"] = rec["valid"].value("ppl", json(nullptr));
    const auto s = ab::steps_to_target(curve, target);
    metrics["steps_to_target"] = s ? json(*s) : json(nullptr);
    metrics["tokens_per_second"] = rec.value("tokens_per_second", json(nullptr));
  }
  out["metrics"] = metrics;
  out["valid_curve"] = rec.value("valid_curve", json::array());
  out["parameters"] = rec.value("parameters", json(nullptr));
  return out;
}

// The Prime-Bump offset a config adds to its position table at initialisation, (n_seq, 1) float32
// (ResNetBkLm::reset_parameters: +scale on prime rows, or the potential V(x) on row x).
torch::Tensor prime_bump_offset(const rbk::LmConfig& c) {
  auto off = torch::zeros({c.n_seq, 1});
  if (c.prime_bump == "simple") {
    for (int64_t p : rbk::primes_below(c.n_seq)) off[p] += c.prime_bump_scale;
  } else if (c.prime_bump == "potential") {
    rbk::PrimeBumpOptions po;
    po.epsilon = c.prime_bump_epsilon;
    po.scale = c.prime_bump_scale;
    off = rbk::prime_bump_potential(c.n_seq, rbk::PrimeBumpGrid::Integer, po).to(torch::kFloat32).unsqueeze(1);
  }
  return off;
}

std::optional<double> opt_of(const json& v) { return v.is_number() ? std::optional<double>(v.get<double>()) : std::nullopt; }

rbk::ExperimentSpec ablations_spec() {
  rbk::ExperimentSpec spec{"ablations", {"C14", "C06", "C09"},
                           "ablation table: full model vs each component removed (Prime-Bump, scattering router, LAP, "
                           "semiseparable), paired seeds; router speed; dense-resolvent memory", {}};
  rbk::add_data_options(spec.schema, "data.");
  rbk::add_lm_config_options(spec.schema, "model.", {{"block", "papertime"}, {"init", "papertime"}});
  rbk::add_train_options(spec.schema, "train.", nlohmann::json::object());
  spec.schema
      .add_string_list("arms", {"full", "no_prime_bump", "no_scattering_router", "no_lap", "no_semiseparable"},
                       "arms to train (full first: the denominator of every ratio)")
      .add_int("n_seeds", 1, 64, "seeds per arm: seed, seed+1, ... (>= 5 for the paired t-tests)")
      .add_string("full_prime_bump", {"simple", "potential"}, "Prime-Bump of the full model (potential: as described)")
      .add_string("full_router", {"scattering_phase"}, "router of the full model")
      .add_bool("full_bk_lap", "LAP weighting in the full model")
      .add_int("full_semiseparable_rank", -1, 4096, "semiseparable rank of the full model (-1 = ceil(log2 n_seq))")
      .add_real("target_margin_nats", -20.0, 20.0,
                "convergence target = unigram valid loss minus this (fixed before results, from the data alone)")
      .add_int("router_tokens", 1, 1 << 24, "tokens routed in the router timing")
      .add_int("router_repeats", 1, 1000, "interleaved repeats of the router timing")
      .add_int("oom_n", 2, int64_t(1) << 30, "sequence length of the OOM projection (the claim's length)")
      .add_int("oom_batch", 1, 1 << 20, "batch of the OOM projection")
      .add_int("oom_layers", 1, 1 << 16, "layers of the OOM projection")
      .add_real("oom_device_gib", 0.1, 1e6, "device memory of the OOM projection (GiB)")
      .add_int("threads", 0, 256, "CPU threads (0 = RBK_THREADS or all cores)")
      .add_string("device", {"auto", "cpu", "cuda"}, "where to train");
  rbk::add_sweep_options(spec.schema);

  return spec;
}

// ---- plan: the arms' models, the convergence target and what each switch changes, before training ----

struct AblationPlan {
  rbk::TrainOptions train;
  std::vector<std::string> arms;                 // "full" first
  std::vector<ab::Component> comps;
  rbk::LmConfig model;                           // model.* with the data's vocabulary
  std::map<std::string, rbk::LmConfig> arm_models;
  double target = 0;                             // the convergence target's valid loss
};

// The switches of the full model; each arm removes one (ablation_summary.h).
std::vector<ab::Component> full_model_components(const rbk::Config& cfg) {
  return ab::components({{"prime_bump", cfg.get_string("full_prime_bump")}, {"router", cfg.get_string("full_router")},
                         {"bk_lap", cfg.get_bool("full_bk_lap")}, {"semiseparable_rank", cfg.get_int("full_semiseparable_rank")}});
}

AblationPlan plan_ablations(const rbk::LmConfig& base, const rbk::TrainOptions& train, const std::vector<std::string>& arms,
                            const std::vector<ab::Component>& comps, const rbk::LmData& data) {
  AblationPlan p;
  p.train = train;
  p.arms = arms;
  p.comps = comps;
  p.model = base;
  p.model.vocab_size = data.vocab_size();
  for (const auto& a : arms) {
    json ov;
    try {
      ov = ab::arm_overrides(a, p.comps);
    } catch (const std::invalid_argument& e) {
      throw rbk::ConfigError(e.what());
    }
    p.arm_models[a] = arm_model(p.model, ov);
    rbk::check_model_and_training(p.arm_models[a], train, "model.", "train.");
  }
  return p;
}

// The convergence target, from the data alone (before any arm is trained); sets p.target.
json plan_target(const rbk::Config& cfg, const rbk::LmData& data, AblationPlan& p) {
  rbk::TokenStream target_tokens = data.valid;
  if (p.train.eval_tokens > 0 && p.train.eval_tokens < data.valid.ids.numel())
    target_tokens.ids = data.valid.ids.narrow(0, 0, p.train.eval_tokens);
  const double unigram_loss = rbk::unigram_reference(data.train.ids, target_tokens, data.vocab_size()).mean_nll;
  p.target = unigram_loss - cfg.get_real("target_margin_nats");
  std::fprintf(stderr, "ablations: V=%lld, target valid loss %.4f (unigram %.4f - %.2f)\n", (long long)data.vocab_size(),
               p.target, unigram_loss, cfg.get_real("target_margin_nats"));
  return {{"rule", "valid loss <= add-one unigram loss on the same validation tokens - margin"},
          {"unigram_valid_loss", unigram_loss}, {"margin_nats", cfg.get_real("target_margin_nats")},
          {"valid_loss", p.target}, {"eval_tokens", target_tokens.ids.numel()}};
}

// Parameters of every arm against the full arm: each switch adds or removes only its own.
json parameter_changes(const AblationPlan& p) {
  json out = json::object();
  const auto full_params = parameter_shapes(p.arm_models.at("full"));
  for (const auto& a : p.arms) {
    const auto shapes = parameter_shapes(p.arm_models.at(a));
    json added = json::object(), removed = json::object();
    int64_t total = 0;
    for (const auto& [k, n] : shapes) {
      total += n;
      if (!full_params.count(k)) added[k] = n;
    }
    for (const auto& [k, n] : full_params)
      if (!shapes.count(k)) removed[k] = n;
    out[a] = {{"total", total}, {"added_vs_full", added}, {"removed_vs_full", removed}};
  }
  return out;
}

// What each removal does to upstream's own model, and a computed check of the inert semiseparable.
json upstream_notes(const AblationPlan& p) {
  json out = json::object();
  for (const auto& c : p.comps) out[c.arm] = {{"changes_upstream_model", c.changes_upstream_model}, {"note", c.upstream_note}};
  // Upstream's inert semiseparable: zero factors leave BK-Core's G unchanged (computed, not assumed).
  torch::NoGradGuard ng;
  auto v = torch::rand({2, 32}, torch::kFloat64) * 6.0 - 3.0;
  auto zeros = torch::zeros({32, 5}, torch::kFloat64);
  out["semiseparable_zero_factors_max_abs_diff"] =
      rbk::semiseparable_diagonal_correction(v, zeros, zeros, {0.0, 1.0}).abs().max().item<double>();
  return out;
}

// The sweep: arms x seeds. The paired-init reference is the arm without Prime-Bump when it is
// trained: Prime-Bump IS an initial-weight change, so the shared weights must be bump-free and each
// arm adds its own bump after copying them (otherwise the copy would erase the difference measured).
rbk::SweepPlan plan_sweep(const rbk::Config& cfg, const AblationPlan& p, const rbk::LmData& data) {
  rbk::SweepPlan plan;
  plan.name = "ablations";
  std::vector<std::string> grid_arms = p.arms;
  const auto npb = std::find(grid_arms.begin(), grid_arms.end(), "no_prime_bump");
  if (npb != grid_arms.end()) std::rotate(grid_arms.begin(), npb, npb + 1);
  for (const auto& a : grid_arms) plan.grid.arms.push_back({a, ab::arm_overrides(a, p.comps)});
  for (int64_t k = 0; k < cfg.get_int("n_seeds"); ++k) plan.grid.seeds.push_back(static_cast<uint64_t>(cfg.get_int("seed") + k));
  plan.base = {{"model", p.model.to_json()}, {"train", rbk::train_options_to_json(p.train)},
               {"data", rbk::data_options_to_json(data.options)}, {"target_valid_loss", p.target}};
  plan.divergence_rule = rbk::DivergenceRule{p.train.divergence_factor, p.train.divergence_patience}.to_json();
  return plan;
}

// ---- measure: one (arm, seed) trained from the paired initial weights --------------------------------

json measure_cell(const AblationPlan& p, const rbk::LmData& data, const std::string& reference_arm,
                  const std::string& sweep_dir, const rbk::SweepCell& cell, const std::string& cell_dir) {
  rbk::TrainOptions t = p.train;
  t.seed = cell.seed;
  t.label = cell.id + ": ";
  // Prime-Bump is itself an initial-weight change: an arm with it adds its bump to the copied table.
  const auto add_own_bump = [&](rbk::LanguageModel& m, json& rec) {
    const auto bump = prime_bump_offset(p.arm_models.at(cell.arm)) - prime_bump_offset(p.arm_models.at(reference_arm));
    if (bump.abs().max().item<double>() > 0.0) {
      torch::NoGradGuard ng;
      for (auto& q : m.named_parameters())
        if (q.key() == "pos_emb.weight") q.value().add_(bump);
      rec["prime_bump_added_after_copy"] = true;
    }
  };
  const auto after_init = rbk::paired_init_hook(cell, sweep_dir, cell_dir, p.arm_models.at(reference_arm), add_own_bump);
  return cell_outcome(rbk::run_training_job(data, p.arm_models.at(cell.arm), t, cell_dir, after_init), p.target);
}

// Router speed (C09) at the model's width and experts, and the dense-resolvent memory (C14).
void measure_router_and_memory(const rbk::Config& cfg, const AblationPlan& p, rbk::ExperimentOutput& out) {
  ab::RouterTimingSpec rs;
  rs.tokens = cfg.get_int("router_tokens");
  rs.d_model = p.model.d_model;
  rs.num_experts = p.model.num_experts;
  rs.top_k = p.model.top_k;
  rs.repeats = cfg.get_int("router_repeats");
  rs.seed = static_cast<uint64_t>(cfg.get_int("seed"));
  out.summary["router_speed"] = ab::time_routers(rs);
  ab::OomSpec os;
  os.n = cfg.get_int("oom_n");
  os.batch = cfg.get_int("oom_batch");
  os.n_layers = cfg.get_int("oom_layers");
  os.device_gib = cfg.get_real("oom_device_gib");
  out.summary["semiseparable_memory"] = ab::project_semiseparable_memory(os);
  out.summary["no_semiseparable_oom"] = out.summary["semiseparable_memory"]["oom"];
}

// ---- summarise: rows, per-arm per-seed arrays under the registry's names, ratios, checks ---------

void summarise(const AblationPlan& p, const rbk::SweepPlan& plan, const std::map<std::string, json>& outcomes,
               rbk::ExperimentOutput& out) {
  json& seeds = out.summary["seeds"];
  seeds["seed"] = plan.grid.seeds;
  std::map<std::string, std::vector<std::optional<double>>> steps;
  int64_t cells_ok = 0;
  json failing = json::array();
  for (const auto& a : p.arms) {
    std::vector<std::optional<double>> ppl, st, tps;
    std::vector<std::string> status;
    for (auto s : plan.grid.seeds) {
      const auto it = outcomes.find(a + ".seed" + std::to_string(s));
      const json o = it == outcomes.end() ? json{{"status", "pending"}} : it->second;
      const json m = o.value("metrics", json::object());
      status.push_back(o.value("status", "pending"));
      ppl.push_back(opt_of(m.value("val_ppl", json(nullptr))));
      st.push_back(opt_of(m.value("steps_to_target", json(nullptr))));
      tps.push_back(opt_of(m.value("tokens_per_second", json(nullptr))));
      std::vector<double> curve_step, curve_loss;
      for (const auto& pt : o.value("valid_curve", json::array())) {
        curve_step.push_back(pt.at("step").get<double>());
        curve_loss.push_back(pt.at("valid_loss").get<double>());
      }
      const std::string cell = "valid_curve/" + a + "/seed" + std::to_string(s);
      if (!curve_step.empty()) {
        out.arrays.push_back(rbk::make_array(cell + "/step", curve_step, "steps", "optimizer steps at each validation"));
        out.arrays.push_back(rbk::make_array(cell + "/valid_loss", curve_loss, "nats", "valid loss (first eval_tokens)"));
      }
      out.rows.push_back({{"status", o.value("status", "pending") == "ok" ? "ok" : "failed"}, {"arm", a}, {"seed", s},
                          {"cell_status", o.value("status", "pending")}, {"metrics", m},
                          {"valid_curve", o.value("valid_curve", json::array())}, {"reason", o.value("reason", "")}});
      if (o.value("status", "") == "ok") ++cells_ok;
      if (o.value("reason", "").rfind("output check", 0) == 0) failing.push_back(a + ".seed" + std::to_string(s));
    }
    seeds["val_ppl_" + a] = ab::to_json_array(ppl);
    seeds["steps_to_target_" + a] = ab::to_json_array(st);
    seeds["tokens_per_second_" + a] = ab::to_json_array(tps);
    seeds["status_" + a] = status;
    steps[a] = st;
    const auto sf = ab::stable_fraction(status);
    out.summary["stable_fraction"][a] = sf ? json(*sf) : json(nullptr);
    double sum = 0;
    int n = 0;
    for (const auto& x : ppl)
      if (x) { sum += *x; ++n; }
    out.summary["mean_val_ppl"][a] = n ? json(sum / n) : json(nullptr);
  }
  for (const auto& a : p.arms) {
    const auto cs = ab::mean_ratio(steps.at("full"), steps.at(a));
    out.summary["convergence_speed"][a] = cs ? json(*cs) : json(nullptr);
  }
  if (steps.count("no_prime_bump")) {
    std::vector<std::optional<double>> r;
    for (size_t i = 0; i < plan.grid.seeds.size(); ++i) {
      const auto& f = steps.at("full")[i];
      const auto& g = steps.at("no_prime_bump")[i];
      r.push_back(f && g && *f > 0 ? std::optional<double>(*g / *f) : std::nullopt);
    }
    seeds["prime_bump_convergence_speedup"] = ab::to_json_array(r);
  }
  // A cell whose outputs failed the check counts as not stable in stable_fraction; it is listed here.
  out.summary["checks"] = {{"cells_ok", cells_ok}, {"cells_failing_output_check", failing},
                           {"outputs_finite_and_nontrivial", cells_ok > 0 && failing.empty()}};
  out.summary["n_seeds"] = plan.grid.seeds.size();
}

}  // namespace

int main(int argc, char** argv) {
  return rbk::run_experiment(argc, argv, ablations_spec(), [](const rbk::Config& cfg, rbk::ExperimentOutput& out) {
    const torch::Device device = rbk::experiment_device(cfg);
    const rbk::LmConfig base = rbk::lm_config_from(cfg, "model.");
    if (base.arch != "resnet_bk" || base.block != "papertime")
      throw rbk::ConfigError("model.arch = '" + base.arch + "', model.block = '" + base.block +
                             "': the ablations are of the paper-time ResNet-BK; expected resnet_bk / papertime");
    const rbk::TrainOptions train = rbk::train_options_from(cfg, "train.", device);
    if (train.eval_every <= 0)
      throw rbk::ConfigError("train.eval_every = " + std::to_string(train.eval_every) +
                             ": expected > 0 (steps to the target are read from the validation curve)");
    const auto arms = cfg.get_string_list("arms");
    if (arms.empty() || arms.front() != "full")
      throw rbk::ConfigError("arms: expected 'full' first (the denominator of every ratio)");
    const auto comps = full_model_components(cfg);
    const std::string cache = out.checkpoint_dir.empty() ? "" : out.checkpoint_dir + "/token_cache";
    const rbk::LmData data = rbk::load_lm_data(rbk::data_options_from(cfg, "data."), cache);
    AblationPlan p = plan_ablations(base, train, arms, comps, data);
    out.summary["data"] = data.summary();
    out.summary["target"] = plan_target(cfg, data, p);
    out.summary["parameters"] = parameter_changes(p);
    out.summary["upstream"] = upstream_notes(p);

    const rbk::SweepPlan plan = plan_sweep(cfg, p, data);
    const std::string reference_arm = plan.grid.arms.front().name;
    const std::string sweep_dir = rbk::prepared_sweep_dir(cfg, plan, out.checkpoint_dir);
    const auto report = rbk::run_sweep(
        plan, sweep_dir,
        [&](const rbk::SweepCell& cell, const std::string& cell_dir) {
          return measure_cell(p, data, reference_arm, sweep_dir, cell, cell_dir);
        },
        rbk::sweep_run_options(cfg));
    out.summary["sweep"] = report.to_json();
    summarise(p, plan, rbk::read_cell_outcomes(plan, sweep_dir), out);
    measure_router_and_memory(cfg, p, out);
  });
}
