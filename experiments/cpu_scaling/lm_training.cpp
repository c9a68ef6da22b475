// exp_cpu_scaling's short language-model trainings (main.cpp's top comment): C04's accuracy side
// (MoE vs dense FFN LMs, identical recipe and seeds) and C09's expert usage of the
// scattering-phase router before and after the same training.
#include "cpu_scaling.h"

#include "rbk/evaluator.h"
#include "rbk/lm_data.h"
#include "rbk/language_model.h"
#include "rbk/options.h"
#include "rbk/trainer.h"

#include <cmath>
#include <cstdio>

namespace rbk_cpu_scaling {

namespace {

std::vector<double> usage_fraction(const Tensor& counts) {  // (L, E) int64 -> fractions over E
  const Tensor c = counts.sum(0).to(torch::kDouble);
  const Tensor f = c / c.sum().clamp_min(1.0);
  return std::vector<double>(f.data_ptr<double>(), f.data_ptr<double>() + f.numel());
}


}  // namespace

LmRecipe lm_recipe(const rbk::Config& cfg) {
  LmRecipe r{rbk::lm_config_from(cfg, "model."), rbk::train_options_from(cfg, "train.", torch::kCPU)};
  rbk::check_model_and_training(r.model, r.train, "model.", "train.");
  // Every LM of this experiment derives from r.model by its router, experts or context: check each.
  rbk::LmConfig sc = r.model;
  sc.router = "scattering_phase";
  sc.bk_context = cfg.get_string("c09_bk_context");
  rbk::check_lm_config(sc, "model.");
  rbk::LmConfig moe = r.model;
  moe.router = cfg.get_string("moe_router");
  rbk::check_lm_config(moe, "model.");
  return r;
}

// Short identical training runs (C04) and the router's expert usage (C09).
void run_training(const rbk::Config& cfg, rbk::ExperimentOutput& out) {
  const LmRecipe recipe = lm_recipe(cfg);
  const rbk::LmData data = rbk::load_lm_data(rbk::data_options_from(cfg, "data."), "", rbk::LmSplits::TrainValid);
  const auto &train = data.train, &valid = data.valid;
  const int64_t E = recipe.model.num_experts;
  rbk::LmConfig base = recipe.model;
  base.vocab_size = data.vocab_size();
  const rbk::TrainOptions& to = recipe.train;

  struct Trained {
    std::shared_ptr<rbk::LanguageModel> model;
    rbk::TrainResult tr;
    rbk::EvalResult ev;
    int64_t params = 0;
  };
  auto train_one = [&](const rbk::LmConfig& mc, int64_t seed, const std::string& label,
                       std::vector<double>* usage_initialised) {
    Trained t;
    torch::manual_seed(static_cast<uint64_t>(seed));
    t.model = rbk::make_language_model(mc);
    t.params = rbk::count_parameters(*t.model);
    if (usage_initialised) {
      t.model->reset_expert_counts();
      rbk::evaluate_language_model(*t.model, valid, to.batch_size, to.seq_len, rbk::BatchLayout::Correct);
      *usage_initialised = usage_fraction(t.model->expert_counts());
    }
    rbk::TrainOptions o = to;
    o.seed = static_cast<uint64_t>(seed);
    o.label = label + ": ";
    t.tr = rbk::train_language_model(*t.model, train.ids, o);
    t.model->reset_expert_counts();
    t.ev = rbk::evaluate_language_model(*t.model, valid, to.batch_size, to.seq_len, rbk::BatchLayout::Correct);
    std::printf("[cpu_scaling] %-24s seed %lld: %lld params, %lld steps, valid loss %.4f nats (PPL %.1f), %.0f tok/s\n",
                label.c_str(), (long long)seed, (long long)t.params, (long long)t.tr.steps, t.ev.mean_nll, t.ev.ppl,
                t.tr.tokens_per_second);
    std::fflush(stdout);
    return t;
  };

  // C04: MoE vs dense, same recipe, same seeds.
  rbk::LmConfig moe_cfg = base, dense_cfg = base;
  moe_cfg.num_experts = E;
  moe_cfg.router = cfg.get_string("moe_router");
  dense_cfg.num_experts = 1;  // k = 1 >= E = 1: the MoE's dense path, a plain FFN of width 2D
  dense_cfg.router = "learned_topk";
  std::vector<double> seeds_d, loss_moe, loss_dense, tps_moe, tps_dense;
  std::vector<double> mlp_usage;
  int64_t params_moe = 0, params_dense = 0;
  for (int64_t seed : cfg.get_int_list("train_seeds")) {
    nlohmann::json row{{"family", "c04"}, {"row", "lm_train"}, {"seed", seed}};
    try {
      auto tm = train_one(moe_cfg, seed, "c04 moe " + moe_cfg.router, nullptr);
      auto td = train_one(dense_cfg, seed, "c04 dense ffn", nullptr);
      if (mlp_usage.empty()) mlp_usage = usage_fraction(tm.model->expert_counts());
      params_moe = tm.params;
      params_dense = td.params;
      const bool ok = tm.tr.status == "ok" && td.tr.status == "ok" && std::isfinite(tm.ev.mean_nll) && std::isfinite(td.ev.mean_nll);
      row.update({{"status", ok ? "ok" : "diverged"}, {"moe", {{"model", moe_cfg.to_json()}, {"train", tm.tr.to_json()},
                   {"valid", tm.ev.to_json()}, {"parameters", tm.params}}},
                  {"dense", {{"model", dense_cfg.to_json()}, {"train", td.tr.to_json()}, {"valid", td.ev.to_json()},
                   {"parameters", td.params}}}});
      if (ok) {
        seeds_d.push_back(double(seed));
        loss_moe.push_back(tm.ev.mean_nll);
        loss_dense.push_back(td.ev.mean_nll);
        tps_moe.push_back(tm.tr.tokens_per_second);
        tps_dense.push_back(td.tr.tokens_per_second);
      }
    } catch (const std::exception& e) {
      row.update({{"status", "error"}, {"message", e.what()}});
    }
    out.rows.push_back(row);
  }
  auto mean = [](const std::vector<double>& v) {
    if (v.empty()) return std::nan("");
    double s = 0;
    for (double x : v) s += x;
    return s / double(v.size());
  };
  auto& c04 = out.summary["c04"];
  const int64_t D = base.d_model;
  c04["val_loss_moe"] = number_or_null(mean(loss_moe));
  c04["val_loss_dense"] = number_or_null(mean(loss_dense));
  c04["moe_minus_dense_val_loss"] = number_or_null(mean(loss_moe) - mean(loss_dense));
  c04["seeds"] = {{"seed", seeds_d}, {"val_loss_moe", loss_moe}, {"val_loss_dense", loss_dense}};
  c04["parameters_moe"] = params_moe;
  c04["parameters_dense"] = params_dense;
  // Per block: one expert Linear(D, 2D) + Linear(2D, D) is active in both, plus the gate.
  c04["active_parameters_per_block_moe"] = 4 * D * D + 3 * D + (D * E + E);
  c04["active_parameters_per_block_dense"] = 4 * D * D + 3 * D + (D + 1);
  c04["train_tokens_per_s_moe"] = number_or_null(mean(tps_moe));
  c04["train_tokens_per_s_dense"] = number_or_null(mean(tps_dense));
  c04["lm_setup"] = {{"moe", moe_cfg.to_json()}, {"dense", dense_cfg.to_json()}, {"train_steps", to.max_steps},
                     {"batch", to.batch_size}, {"seq_len", to.seq_len}, {"lr", to.lr}, {"trainer", "rbk::train_language_model"},
                     {"train_tokens", train.ids.numel()}, {"valid_tokens", valid.ids.numel()}, {"vocab_size", base.vocab_size},
                     {"loss", "mean NLL on the valid split, nats per token (rbk::evaluate_language_model)"}};
  out.arrays.push_back(rbk::make_array("c04/val_loss_moe", loss_moe, "nats", "valid mean NLL per seed, MoE LM"));
  out.arrays.push_back(rbk::make_array("c04/val_loss_dense", loss_dense, "nats", "valid mean NLL per seed, dense LM"));

  // C09: expert usage of the scattering-phase router, initialised and after the same training.
  rbk::LmConfig sc_cfg = base;
  sc_cfg.num_experts = E;
  sc_cfg.router = "scattering_phase";
  sc_cfg.bk_context = cfg.get_string("c09_bk_context");
  nlohmann::json row{{"family", "c09"}, {"row", "lm_train_scattering_router"}, {"model", sc_cfg.to_json()}};
  auto& c09 = out.summary["c09"];
  try {
    std::vector<double> usage_init;
    auto ts = train_one(sc_cfg, cfg.get_int_list("train_seeds").front(), "c09 scattering router", &usage_init);
    const auto usage_trained = usage_fraction(ts.model->expert_counts());
    c09["expert_usage_fraction_initialised"] = usage_init;
    c09["expert_usage_fraction_trained"] = usage_trained;
    c09["expert0_fraction_initialised"] = usage_init.at(0);
    c09["expert0_fraction_trained"] = usage_trained.at(0);
    c09["usage_setup"] = "valid split through the paper-time LM (bk_context " + sc_cfg.bk_context +
                         "), every used routing slot counted, summed over layers";
    row.update({{"status", ts.tr.status == "ok" ? "ok" : ts.tr.status}, {"train", ts.tr.to_json()}, {"valid", ts.ev.to_json()},
                {"expert_usage_fraction_initialised", usage_init}, {"expert_usage_fraction_trained", usage_trained}});
    std::printf("[cpu_scaling] scattering router usage: initialised %s, trained %s\n", nlohmann::json(usage_init).dump().c_str(),
                nlohmann::json(usage_trained).dump().c_str());
  } catch (const std::exception& e) {
    row.update({{"status", "error"}, {"message", e.what()}});
  }
  out.rows.push_back(row);
  c09["mlp_gating_expert_usage_fraction"] = mlp_usage;
  c09["mlp_gating_usage_router"] = moe_cfg.router;
}

}  // namespace rbk_cpu_scaling
