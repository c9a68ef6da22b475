// exp_act_flops: adaptive computation and FLOPs per token (seed 002 §3.5 and Table 3; claims C11
// and the efficiency part of C21). Paper: ACT with the scattering phase saves 40 % of FLOPs within
// 5 % PPL; GFLOPs/token at PPL ~ 30: Mamba 2.8, ResNet-BK 2.1, ResNet-BK + ACT 1.4 (p < 1e-4).
// upstream-audit §7, §12 #3/#18: the table is a literal, the ACT blocks skip nothing and their
// "phase" is pi tanh(mean hidden).
//
// Arms, trained through the sweep runner (paired init from the bk arm where names and shapes match,
// the same data order for every arm and seed):
//   bk      the paper-time ResNet-BK (model.* as given);
//   bk_act  the same with ACT that really skips halted tokens' block work (act.h: model.act =
//           act_mode, default "skip"; halting signal act_signal: upstream's "phase" or a "learned" unit);
//   bk_act_halting  bk_act at halting_threshold instead of act_threshold: at upstream's 0.99 the
//           phase signal halts no token (the first cpu result: executed fraction 1.0), so this arm
//           asks what ACT saves, and costs, where it does halt. The phase signal of a hidden state
//           with mean 0 gives p = 0.5 (l + 1) / L from block act_min_layers on, so at L = 4 and
//           min 2 layers the cumulative probability after block 3 is 0.375 and a threshold of 0.3
//           halts such a token before block 4: then at most 1 of 4 blocks is skipped, and no
//           threshold can save more than (L - act_min_layers - 1) / L of the block work;
//   mamba   Mamba-1 with the same width and depth;
//   transformer  the causal Transformer of the same width and depth (ffn_dim, n_heads as given):
//           a trained point of PPL against GFLOPs/token beside its analytic count.
// After training each model is evaluated on valid with a MatmulFlopCounter alive (flop_count.h):
// GFLOPs/token = counted matrix-product FLOPs (every executed aten::mm/addmm/bmm/baddbmm, the head
// included) + the analytic element-wise estimate (its block part scaled by the fraction of
// (token, block) pairs ACT executed). The analytic matrix-product count is stored beside the
// counted one (flops/<arm>/matmul_counted_over_analytic; 1 unless ACT skipped work).
// Compat face: each trained bk model is also evaluated with model.act = "compat" (upstream's
// ACTModule on the same weights): its output and executed FLOPs equal bk's, and upstream's own
// reported reduction 1 - (sum of halting weights / (L T)) / L (audit §7) is recorded beside it.
// flops/transformer/analytic is kept even when the transformer arm is not run.
//
// Summary keys:
//   seeds/seed; seeds/<arm>_{ppl,gflops_per_token} (valid PPL; arrays per seed, every arm run)
//   seeds/bk_act_executed_fraction; seeds/compat_upstream_reported_reduction;
//   act_flops_reduction = 1 - mean(bk_act GFLOPs) / mean(bk GFLOPs)
//   act_relative_ppl_increase = mean(bk_act PPL) / mean(bk PPL) - 1
//   seeds/bk_act_halting_{ppl,gflops_per_token,executed_fraction}; halting_flops_reduction,
//   halting_relative_ppl_increase (the same two ratios for bk_act_halting); halting_max_block_saving
//   checks: every finished cell's outputs are finite and non-trivial (valid PPL in (1, inf),
//   GFLOPs/token > 0, the counted matrix products within 1e-6 of the analytic count where all of
//   the block work ran); a cell failing them is an "error" cell with the reason and is not in the arrays.
//   bk_over_mamba_flops_ratio, bk_over_mamba_ppl_ratio, ppl_matched (|ppl ratio - 1| <= ppl_match_tolerance)
//   flops/<arm>/{analytic (TokenFlops at the executed fraction), matmul_counted, matmul_counted_over_analytic}
//   flops/transformer/analytic;  compat/{output_equal_to_bk, executed_fraction}
#include "rbk/evaluator.h"
#include "rbk/experiment.h"
#include "rbk/flop_count.h"
#include "rbk/lm_data.h"
#include "rbk/resnet_bk_lm.h"
#include "rbk/options.h"
#include "rbk/results.h"
#include "rbk/sweep.h"
#include "rbk/sweep_options.h"
#include "rbk/trainer.h"
#include "rbk/training_job.h"

#include <cmath>
#include <map>
#include <optional>

using nlohmann::json;

namespace {

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? NAN : s / static_cast<double>(v.size());
}

json array_or_null(const std::vector<std::optional<double>>& v) {
  json a = json::array();
  for (const auto& x : v) a.push_back(x ? json(*x) : json(nullptr));
  return a;
}

struct Measured {
  double ppl = NAN, gflops = NAN, fraction = 1.0, counted_matmul = NAN, analytic_matmul = NAN;
  double vocab = 0;
  json analytic;
};

// Evaluates model on valid with the FLOP counter; fraction from the ACT counters when it has any.
Measured measure(rbk::LanguageModel& model, const rbk::LmData& data, const rbk::TrainOptions& t) {
  Measured m;
  auto* bk = dynamic_cast<rbk::ResNetBkLm*>(&model);
  if (bk) bk->reset_act_counters();
  model.eval();
  double counted = 0;
  rbk::EvalResult ev;
  {
    rbk::MatmulFlopCounter counter;
    ev = rbk::evaluate_language_model(model, data.valid, t.batch_size, t.seq_len, t.layout, t.device, t.precision,
                                      t.loss_chunk_tokens);
    counted = counter.flops();
  }
  const int64_t scored = std::max<int64_t>(1, ev.tokens);
  if (bk && bk->act_counters().token_blocks_full > 0)
    m.fraction = static_cast<double>(bk->act_counters().token_blocks_run) / static_cast<double>(bk->act_counters().token_blocks_full);
  const auto tf = rbk::analytic_token_flops(model.config(), t.seq_len, m.fraction);
  m.ppl = ev.ppl;
  m.vocab = static_cast<double>(model.config().vocab_size);
  m.counted_matmul = counted / static_cast<double>(scored);
  m.analytic_matmul = tf.matmul_total();
  m.gflops = (m.counted_matmul + tf.elementwise_total()) / 1e9;
  m.analytic = tf.to_json();
  return m;
}

// Why a finished cell's measurement is not to be trusted ("" when it is): a PPL that is not a
// number above 1, no FLOPs, or a counted matrix-product total off the analytic one although the
// model ran all of its block work (then the two count the same operators, flop_count.h, except
// the head's bias: the chunked loss folds it into the head GEMM as one more column, lm_loss.cpp,
// 2 V FLOPs per token that the analytic count books as element-wise).
// The count check applies where the unit test act_flops.act_and_flops has verified the analytic
// model on operators (ResNet-BK, Mamba); for the Transformer the counted/analytic ratio is reported
// (flops/transformer) and the counted FLOPs are what its GFLOPs/token uses.
std::string output_check_failure(const Measured& m, bool check_count) {
  if (!std::isfinite(m.ppl) || m.ppl <= 1.0) return "valid PPL " + std::to_string(m.ppl) + " is not a finite number above 1";
  if (!std::isfinite(m.gflops) || m.gflops <= 0.0) return "GFLOPs/token " + std::to_string(m.gflops) + " is not positive";
  const double diff = m.counted_matmul - m.analytic_matmul, tol = 1e-6 * m.analytic_matmul;
  if (check_count && m.fraction == 1.0 && !(std::fabs(diff) <= tol) && !(std::fabs(diff - 2.0 * m.vocab) <= tol))
    return "counted matrix-product FLOPs differ from the analytic count by " + std::to_string(diff) +
           " per token (neither 0 nor the head bias column's 2 V)";
  return "";
}

rbk::ExperimentSpec act_flops_spec() {
  rbk::ExperimentSpec spec{"act_flops", {"C11", "C21"},
                           "ACT that skips halted tokens vs upstream's compat ACT; FLOPs per token (analytic, counted) "
                           "of ResNet-BK with and without ACT, Mamba, Transformer; PPL vs GFLOPs/token over seeds", {}};
  rbk::add_data_options(spec.schema, "data.");
  rbk::add_lm_config_options(spec.schema, "model.", {{"block", "papertime"}, {"init", "papertime"}});
  rbk::add_train_options(spec.schema, "train.", json::object());
  spec.schema.add_string_list("arms", {"bk", "bk_act", "bk_act_halting", "mamba", "transformer"}, "arms to train (bk first: the paired-init reference)")
      .add_int("n_seeds", 1, 64, "seeds per arm (>= 5 for the paired t-test)")
      .add_string("act_mode", {"skip", "compat"}, "model.act of the bk_act arm")
      .add_string("act_signal", {"phase", "learned"}, "halting signal of the bk_act arm")
      .add_real("act_threshold", 1e-6, 1.0, "cumulative halting probability that halts a token (upstream 0.99)")
      .add_real("halting_threshold", 1e-6, 1.0, "act_threshold of the bk_act_halting arm (one at which tokens halt)")
      .add_int("act_min_layers", 0, 1 << 16, "blocks every token runs (upstream 2)")
      .add_real("ppl_match_tolerance", 0.0, 10.0, "|PPL_bk / PPL_mamba - 1| up to which the FLOP comparison counts as at equal PPL")
      .add_int("threads", 0, 256, "CPU threads (0 = RBK_THREADS or all cores)")
      .add_string("device", {"auto", "cpu", "cuda"}, "where to train");
  rbk::add_sweep_options(spec.schema);

  return spec;
}

// ---- plan: options read and every arm's model checked before anything is trained -----------------

struct ActPlan {
  rbk::TrainOptions train;
  std::vector<std::string> arms;
  std::map<std::string, rbk::LmConfig> models;  // every arm's model; "bk" is the paired-init reference
  rbk::LmConfig compat;                          // upstream's ACT on the bk arm's weights (compat face)
  int64_t act_min_layers = 0;
  double halting_threshold = 0, ppl_match_tolerance = 0;
};

ActPlan plan_act_flops(const rbk::Config& cfg, const rbk::LmConfig& base, const rbk::TrainOptions& train,
                       const rbk::LmData& data) {
  ActPlan p;
  p.train = train;
  p.arms = cfg.get_string_list("arms");
  p.act_min_layers = cfg.get_int("act_min_layers");
  p.halting_threshold = cfg.get_real("halting_threshold");
  p.ppl_match_tolerance = cfg.get_real("ppl_match_tolerance");
  rbk::LmConfig bk = base;
  bk.vocab_size = data.vocab_size();
  auto& models = p.models;
  models["bk"] = bk;
  auto act = bk;
  act.act = cfg.get_string("act_mode");
  act.act_signal = cfg.get_string("act_signal");
  act.act_threshold = cfg.get_real("act_threshold");
  act.act_min_layers = p.act_min_layers;
  models["bk_act"] = act;
  auto halting = act;
  halting.act_threshold = p.halting_threshold;
  models["bk_act_halting"] = halting;
  auto mamba = bk;
  mamba.arch = "mamba";
  mamba.position = "auto";
  models["mamba"] = mamba;
  auto transformer = bk;
  transformer.arch = "transformer";
  transformer.position = "auto";
  models["transformer"] = transformer;
  p.compat = bk;
  p.compat.act = "compat";
  p.compat.act_signal = "phase";
  try {
    for (auto* c : {&models["bk"], &models["bk_act"], &models["bk_act_halting"], &models["mamba"], &models["transformer"], &p.compat}) {
      c->validate();
      rbk::make_language_model(*c);  // the model's own cross-field checks
      rbk::check_model_and_training(*c, train, "model.", "train.");
    }
  } catch (const std::invalid_argument& e) {
    throw rbk::ConfigError(e.what());
  }
  return p;
}

rbk::SweepPlan plan_sweep(const rbk::Config& cfg, const ActPlan& p, const rbk::LmData& data) {
  rbk::SweepPlan plan;
  plan.name = "act_flops";
  for (const auto& a : p.arms) plan.grid.arms.push_back({a, {{"model", p.models.at(a).to_json()}}});
  for (int64_t k = 0; k < cfg.get_int("n_seeds"); ++k) plan.grid.seeds.push_back(static_cast<uint64_t>(cfg.get_int("seed") + k));
  plan.base = {{"train", rbk::train_options_to_json(p.train)}, {"data", rbk::data_options_to_json(data.options)}};
  plan.divergence_rule = rbk::DivergenceRule{p.train.divergence_factor, p.train.divergence_patience}.to_json();
  return plan;
}

// ---- measure: one (arm, seed) trained, then counted on valid; the bk arm also under upstream's ACT ----

json measure_cell(const ActPlan& p, const rbk::LmData& data, const std::string& sweep_dir, const rbk::SweepCell& cell,
                  const std::string& cell_dir) {
  rbk::TrainOptions t = p.train;
  t.seed = cell.seed;
  t.label = cell.id + ": ";
  const json rec = rbk::run_training_job(data, p.models.at(cell.arm), t, cell_dir,
                                         rbk::paired_init_hook(cell, sweep_dir, cell_dir, p.models.at("bk")));
  json o = rbk::cell_outcome_from_job(rec);
  const std::string status = o["status"];
  if (status == "stopped") return o;
  o["metrics"] = json::object();
  if (status != "ok") return o;
  auto model = rbk::load_model_from_checkpoint(rbk::job_checkpoint_path(cell_dir), t.device);
  const Measured m = measure(*model, data, t);
  const std::string bad = output_check_failure(m, cell.arm != "transformer");
  if (!bad.empty()) return json{{"status", "error"}, {"reason", "output check: " + bad}, {"metrics", json::object()}};
  o["metrics"] = {{"ppl", m.ppl}, {"gflops_per_token", m.gflops}, {"executed_fraction", m.fraction},
                  {"matmul_counted", m.counted_matmul}, {"matmul_analytic", m.analytic_matmul},
                  {"tokens_per_second", rec.value("tokens_per_second", json(nullptr))}};
  o["analytic"] = m.analytic;
  if (cell.arm == "bk") {
    // Compat face: upstream's ACT on the same weights.
    torch::manual_seed(cell.seed);
    auto cm = rbk::make_language_model(p.compat);
    {
      torch::NoGradGuard ng;
      auto src = model->named_parameters();
      for (auto& q : cm->named_parameters()) q.value().copy_(src[q.key()]);
    }
    cm->to(t.device);
    const Measured c = measure(*cm, data, t);
    const auto& ctr = dynamic_cast<rbk::ResNetBkLm&>(*cm).act_counters();
    const double L = static_cast<double>(p.compat.n_layers);
    const double avg_layers = ctr.upstream_weight_sum / (L * static_cast<double>(std::max<int64_t>(1, ctr.tokens)));
    o["metrics"]["compat_ppl"] = c.ppl;
    o["metrics"]["compat_gflops_per_token"] = c.gflops;
    o["metrics"]["compat_executed_fraction"] = c.fraction;
    o["metrics"]["compat_upstream_reported_reduction"] = 1.0 - avg_layers / L;
  }
  return o;
}

// ---- summarise: rows and per-seed arrays, the ratios the claims read, checks, figure points -------

void summarise(const ActPlan& p, const rbk::SweepPlan& plan, const std::map<std::string, json>& outcomes,
               rbk::ExperimentOutput& out) {
  json& seeds = out.summary["seeds"];
  seeds["seed"] = plan.grid.seeds;
  std::map<std::string, std::map<std::string, std::vector<std::optional<double>>>> col;
  int64_t cells_ok = 0;
  json failing = json::array();
  for (const auto& a : p.arms) {
    for (auto s : plan.grid.seeds) {
      const auto it = outcomes.find(a + ".seed" + std::to_string(s));
      const json o = it == outcomes.end() ? json{{"status", "pending"}} : it->second;
      const json m = o.value("metrics", json::object());
      for (const char* k : {"ppl", "gflops_per_token", "executed_fraction", "matmul_counted", "matmul_analytic",
                            "compat_upstream_reported_reduction", "compat_executed_fraction", "compat_ppl"}) {
        const json v = m.value(k, json(nullptr));
        col[a][k].push_back(v.is_number() ? std::optional<double>(v.get<double>()) : std::nullopt);
      }
      out.rows.push_back({{"status", o.value("status", "pending") == "ok" ? "ok" : "failed"}, {"arm", a}, {"seed", s},
                          {"cell_status", o.value("status", "pending")}, {"metrics", m},
                          {"analytic", o.value("analytic", json(nullptr))}, {"reason", o.value("reason", "")}});
      if (o.value("status", "") == "ok") ++cells_ok;
      if (o.value("reason", "").rfind("output check", 0) == 0) failing.push_back(a + ".seed" + std::to_string(s));
    }
    {
      // The figure's points: one (GFLOPs/token, PPL) pair per finished seed.
      std::vector<double> px, py;
      for (size_t i = 0; i < col[a]["ppl"].size(); ++i)
        if (col[a]["ppl"][i] && col[a]["gflops_per_token"][i]) {
          px.push_back(*col[a]["gflops_per_token"][i]);
          py.push_back(*col[a]["ppl"][i]);
        }
      if (!px.empty()) {
        out.arrays.push_back(rbk::make_array("points/" + a + "/gflops_per_token", px, "GFLOP", "per token, per finished seed"));
        out.arrays.push_back(rbk::make_array("points/" + a + "/valid_ppl", py, "1", "valid PPL, per finished seed"));
      }
    }
    seeds[a + "_ppl"] = array_or_null(col[a]["ppl"]);
    seeds[a + "_gflops_per_token"] = array_or_null(col[a]["gflops_per_token"]);
    std::vector<double> cnt, ana;
    for (size_t i = 0; i < col[a]["matmul_counted"].size(); ++i)
      if (col[a]["matmul_counted"][i] && col[a]["matmul_analytic"][i]) {
        cnt.push_back(*col[a]["matmul_counted"][i]);
        ana.push_back(*col[a]["matmul_analytic"][i]);
      }
    if (!cnt.empty())
      out.summary["flops"][a] = {{"matmul_counted", mean_of(cnt)}, {"matmul_analytic", mean_of(ana)},
                                 {"matmul_counted_over_analytic", mean_of(cnt) / mean_of(ana)}};
  }
  for (const char* a : {"bk_act", "bk_act_halting"})
    if (col.count(a)) seeds[std::string(a) + "_executed_fraction"] = array_or_null(col[a]["executed_fraction"]);
  seeds["compat_upstream_reported_reduction"] = array_or_null(col["bk"]["compat_upstream_reported_reduction"]);
  seeds["compat_executed_fraction"] = array_or_null(col["bk"]["compat_executed_fraction"]);
  auto present = [&](const std::string& a, const std::string& k) {
    std::vector<double> v;
    if (col.count(a))
      for (const auto& x : col[a][k])
        if (x) v.push_back(*x);
    return v;
  };
  const auto bk_g = present("bk", "gflops_per_token"), act_g = present("bk_act", "gflops_per_token"),
             mb_g = present("mamba", "gflops_per_token"), bk_p = present("bk", "ppl"), act_p = present("bk_act", "ppl"),
             mb_p = present("mamba", "ppl");
  if (!bk_g.empty() && !act_g.empty()) {
    out.summary["act_flops_reduction"] = 1.0 - mean_of(act_g) / mean_of(bk_g);
    out.summary["act_relative_ppl_increase"] = mean_of(act_p) / mean_of(bk_p) - 1.0;
  }
  const auto halt_g = present("bk_act_halting", "gflops_per_token"), halt_p = present("bk_act_halting", "ppl");
  if (!bk_g.empty() && !halt_g.empty()) {
    out.summary["halting_flops_reduction"] = 1.0 - mean_of(halt_g) / mean_of(bk_g);
    out.summary["halting_relative_ppl_increase"] = mean_of(halt_p) / mean_of(bk_p) - 1.0;
    out.summary["halting_threshold"] = p.halting_threshold;
  }
  const rbk::LmConfig& bk = p.models.at("bk");
  out.summary["halting_max_block_saving"] =
      std::max<double>(0.0, static_cast<double>(bk.n_layers - p.act_min_layers - 1)) / static_cast<double>(bk.n_layers);
  if (!bk_g.empty() && !mb_g.empty()) {
    const double ppl_ratio = mean_of(bk_p) / mean_of(mb_p);
    out.summary["bk_over_mamba_flops_ratio"] = mean_of(bk_g) / mean_of(mb_g);
    out.summary["bk_over_mamba_ppl_ratio"] = ppl_ratio;
    out.summary["ppl_matched"] = std::fabs(ppl_ratio - 1.0) <= p.ppl_match_tolerance;
  }
  const auto cp = present("bk", "compat_ppl");
  if (!cp.empty()) out.summary["compat"] = {{"output_equal_to_bk", mean_of(cp) == mean_of(bk_p)},
                                            {"executed_fraction", mean_of(present("bk", "compat_executed_fraction"))},
                                            {"upstream_reported_reduction", mean_of(present("bk", "compat_upstream_reported_reduction"))}};
  out.summary["flops"]["transformer"]["analytic"] = rbk::analytic_token_flops(p.models.at("transformer"), p.train.seq_len).to_json();
  out.summary["checks"] = {{"cells_ok", cells_ok}, {"cells_failing_output_check", failing},
                           {"outputs_finite_and_nontrivial", cells_ok > 0 && failing.empty()}};
  out.summary["n_seeds"] = plan.grid.seeds.size();
  out.summary["ppl_match_tolerance"] = p.ppl_match_tolerance;
}

}  // namespace

int main(int argc, char** argv) {
  return rbk::run_experiment(argc, argv, act_flops_spec(), [](const rbk::Config& cfg, rbk::ExperimentOutput& out) {
    const torch::Device device = rbk::experiment_device(cfg);
    const rbk::LmConfig base = rbk::lm_config_from(cfg, "model.");
    if (base.arch != "resnet_bk" || base.block != "papertime")
      throw rbk::ConfigError("model.arch = '" + base.arch + "', model.block = '" + base.block +
                             "': the arms are built from the paper-time ResNet-BK; expected resnet_bk / papertime");
    const rbk::TrainOptions train = rbk::train_options_from(cfg, "train.", device);
    const auto arms = cfg.get_string_list("arms");
    if (arms.empty() || arms.front() != "bk") throw rbk::ConfigError("arms: expected 'bk' first (the paired-init reference)");
    const std::string cache = out.checkpoint_dir.empty() ? "" : out.checkpoint_dir + "/token_cache";
    const rbk::LmData data = rbk::load_lm_data(rbk::data_options_from(cfg, "data."), cache);
    const ActPlan p = plan_act_flops(cfg, base, train, data);
    out.summary["data"] = data.summary();

    const rbk::SweepPlan plan = plan_sweep(cfg, p, data);
    const std::string sweep_dir = rbk::prepared_sweep_dir(cfg, plan, out.checkpoint_dir);
    out.summary["sweep"] = rbk::run_sweep(plan, sweep_dir,
                                          [&](const rbk::SweepCell& cell, const std::string& cell_dir) {
                                            return measure_cell(p, data, sweep_dir, cell, cell_dir);
                                          },
                                          rbk::sweep_run_options(cfg))
                               .to_json();
    summarise(p, plan, rbk::read_cell_outcomes(plan, sweep_dir), out);
  });
}
