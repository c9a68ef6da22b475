// HTT / AR-SSM tables, semiseparable structure, model sizes (structure.h).
#include "structure.h"

#include "probe.h"
#include "rbk/resnet_bk_lm.h"
#include "rbk/memory_model.h"
#include "rbk/model_sizing.h"
#include "rbk/phase1_model.h"
#include "rbk/semiseparable.h"
#include "rbk/timing.h"

#include <cmath>
#include <stdexcept>

namespace memory_search {

using json = nlohmann::json;

double fitted_power_exponent(const std::vector<double>& x, const std::vector<double>& y) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = static_cast<double>(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double lx = std::log(x[i]), ly = std::log(y[i]);
    sx += lx;
    sy += ly;
    sxx += lx * lx;
    sxy += lx * ly;
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// The Table-10 baseline as upstream built it (audit §9.2 / Table 10): Embedding(V, D) +
// L x nn.TransformerEncoderLayer(D, FFN 4D) (12 D^2 + 13 D each) + Linear(D, V).
rbk::ParameterBreakdown upstream_baseline_breakdown(int64_t V, int64_t D, int64_t L) {
  rbk::ParameterBreakdown b;
  b.embedding = V * D;
  b.layers = L * (12 * D * D + 13 * D);
  b.head = D * V + V;
  return b;
}

double reduction(double base, double opt) { return base > 0 ? 1.0 - opt / base : 0.0; }

}  // namespace

void run_htt_tables(const rbk::Config& cfg, const std::string& scratch, json& summary, json& rows) {
  const int64_t V = cfg.get_int("htt.vocab_size"), D = cfg.get_int("htt.d_model"), L = cfg.get_int("htt.n_layers");
  rbk::Phase1Config pc;
  pc.vocab_size = V;
  pc.d_model = D;
  pc.n_layers = L;
  pc.htt_rank = cfg.get_int("htt.rank");
  const auto closed = rbk::phase1_parameter_breakdown(pc);
  const auto counted = rbk::Phase1Lm(pc).count_by_component();
  const auto base = upstream_baseline_breakdown(V, D, L);
  // rbk's causal Transformer at the same size (no position table): counted by instantiation.
  rbk::LmConfig tc;
  tc.arch = "transformer";
  tc.vocab_size = V;
  tc.d_model = D;
  tc.n_layers = L;
  tc.n_seq = 8;
  tc.n_heads = 8;
  tc.ffn_dim = 4 * D;
  tc.position = "none";
  const int64_t transformer_count = rbk::count_parameters(*rbk::make_language_model(tc));
  json& h = summary["htt"];
  h["config"] = pc.to_json();
  h["baseline_definition"] = "Embedding(V, D) + L x TransformerEncoderLayer(D, 8 heads, FFN 4D) + Linear(D, V), closed form";
  h["embedding_baseline_params"] = base.embedding;
  h["embedding_params"] = counted.embedding;
  h["embedding_reduction"] = reduction(base.embedding, counted.embedding);
  h["layers_baseline_params"] = base.layers;
  h["layers_params"] = counted.layers;
  h["layers_reduction"] = reduction(base.layers, counted.layers);
  h["head_baseline_params"] = base.head;
  h["head_params"] = counted.head;
  h["head_reduction"] = reduction(base.head, counted.head);
  h["total_baseline_params"] = base.total();
  h["total_params"] = counted.total();
  h["total_reduction"] = reduction(base.total(), counted.total());
  h["closed_form"] = closed.to_json();
  h["instantiated"] = counted.to_json();
  h["closed_form_equals_instantiated"] = closed.total() == counted.total() && closed.embedding == counted.embedding &&
                                          closed.layers == counted.layers && closed.head == counted.head;
  h["rbk_transformer_params"] = transformer_count;
  rows.push_back({{"part", "htt_params"}, {"status", "ok"}, {"closed_form", closed.to_json()}, {"instantiated", counted.to_json()},
                  {"baseline", base.to_json()}});

  // Table 11: one training step's peak (fresh process each, no budget), both sides fp32: no
  // autocast on CUDA either, so that the compat row below halves an fp32 peak, as it says.
  const double timeout = cfg.get_real("probe_timeout_s");
  json spec = {{"vocab_size", V}, {"d_model", D}, {"n_layers", L}, {"seq_len", cfg.get_int("htt.seq_len")},
               {"batch", cfg.get_int("htt.batch")}, {"training", true}, {"steps", 2}, {"autocast", false},
               {"loss_chunk_tokens", cfg.get_int("loss_chunk_tokens")}, {"checkpoint_blocks", false},
               {"budget_bytes", 0}, {"device", cfg.get_string("device")}, {"threads", cfg.get_int("probe_threads")},
               {"htt_rank", pc.htt_rank}, {"seed", cfg.get_int("seed")}};
  json measured;
  for (const char* arch : {"transformer", "phase1"}) {
    spec["arch"] = arch;
    measured[arch] = run_probe_process(spec, scratch, timeout);
    rows.push_back({{"part", "htt_vram"}, {"arch", arch}, {"status", measured[arch].value("status", "error")},
                    {"probe", measured[arch]}});
  }
  const bool both_ok = measured["transformer"].value("status", "") == "ok" && measured["phase1"].value("status", "") == "ok";
  for (const char* arch : {"transformer", "phase1"})
    if (measured[arch].value("status", "") == "ok" && measured[arch].value("autocast", true))
      throw std::runtime_error(std::string("htt_vram: the ") + arch + " probe ran under autocast; the fp32 comparison needs it off");
  if (both_ok) {
    json& v = h["vram"];
    const double pb = measured["transformer"].value("parameters", int64_t{0}), po = measured["phase1"].value("parameters", int64_t{0});
    const double peak_b = measured["transformer"]["peak_bytes"].get<double>(), peak_o = measured["phase1"]["peak_bytes"].get<double>();
    v["precision"] = "fp32 weights, gradients and AdamW moments on both sides";
    v["param_baseline_mb"] = pb * 4 / kMiB;
    v["param_optimized_mb"] = po * 4 / kMiB;
    v["param_reduction"] = reduction(pb, po);
    v["peak_baseline_mb"] = peak_b / kMiB;
    v["peak_optimized_mb"] = peak_o / kMiB;
    v["peak_reduction"] = reduction(peak_b, peak_o);
    // Activations: the measured peak less the training state (weights, gradients, two moments).
    const double act_b = peak_b - 16.0 * pb, act_o = peak_o - 16.0 * po;
    v["activation_definition"] = "measured peak - 16 bytes x parameters (fp32 weights, gradients, AdamW moments)";
    v["activation_baseline_mb"] = act_b / kMiB;
    v["activation_optimized_mb"] = act_o / kMiB;
    v["activation_reduction"] = reduction(act_b, act_o);
    // Compat row: upstream's comparison put an fp32 baseline against an fp16 optimised model.
    // Not measurable in fp16 on this CPU: the optimised side is scaled by the analytic model's
    // fp16 / fp32 ratio (every tensor halves), which is what the protocol's precision change does.
    json& c = h["vram_compat"];
    c["definition"] = "fp32 baseline (measured) vs fp16 optimised (measured fp32 peak x 0.5, analytic)";
    c["peak_baseline_mb"] = peak_b / kMiB;
    c["peak_optimized_mb"] = 0.5 * peak_o / kMiB;
    c["peak_reduction"] = reduction(peak_b, 0.5 * peak_o);
  }
}

void run_semiseparable(const rbk::Config& cfg, json& summary, json& rows) {
  json& s = summary["semiseparable"];
  const int64_t B = cfg.get_int("semi.batch"), reps = cfg.get_int("semi.repeats");
  std::vector<double> ns, ts, band_ns, band_bytes;
  torch::manual_seed(cfg.get_int("seed") + 11);
  double max_err = 0.0;
  for (int64_t n : cfg.get_int_list("semi.matvec_n")) {
    const auto h = rbk::random_semiseparable(n, rbk::semiseparable_rank(n));
    const auto x = torch::randn({B, n});
    torch::Tensor y;
    const auto st = rbk::time_repeated([&] { y = rbk::semiseparable_matvec(h, x); }, 1, static_cast<int>(reps));
    TORCH_CHECK(torch::isfinite(y).all().item<bool>(), "semiseparable matvec: non-finite output");
    ns.push_back(static_cast<double>(n));
    ts.push_back(st.median_s);
    band_ns.push_back(static_cast<double>(n));
    band_bytes.push_back(4.0 * static_cast<double>(rbk::semiseparable_stored_elements(n, rbk::semiseparable_rank(n))));
    json row = {{"part", "semiseparable_matvec"}, {"status", "ok"}, {"n", n}, {"rank", rbk::semiseparable_rank(n)},
                {"batch", B}, {"median_s", st.median_s}, {"operator_bytes_fp32", band_bytes.back()}};
    if (n <= cfg.get_int("semi.dense_max_n")) {
      const auto dense = rbk::semiseparable_dense(h);
      torch::Tensor yd;
      const auto sd = rbk::time_repeated([&] { yd = torch::matmul(x, dense.t()); }, 1, static_cast<int>(reps));
      const double err = ((yd - y).abs().max() / yd.abs().max()).item<double>();
      max_err = std::max(max_err, err);
      row["dense_median_s"] = sd.median_s;
      row["dense_rel_max_diff"] = err;
      s["dense_n"].push_back(n);
      s["dense_s"].push_back(sd.median_s);
    }
    rows.push_back(row);
  }
  s["matvec_n"] = ns;
  s["matvec_s"] = ts;
  s["matvec_time_exponent"] = fitted_power_exponent(ns, ts);
  s["matvec_time_exponent_points"] = ns.size();
  if (s.contains("dense_n") && s["dense_n"].size() >= 2) {
    std::vector<double> dn, dt;
    for (auto& v : s["dense_n"]) dn.push_back(v.get<double>());
    for (auto& v : s["dense_s"]) dt.push_back(v.get<double>());
    s["dense_time_exponent"] = fitted_power_exponent(dn, dt);
  }
  s["matvec_vs_dense_max_rel_diff"] = max_err;
  s["param_memory_exponent"] = fitted_power_exponent(band_ns, band_bytes);
  s["param_memory_definition"] = "bytes of the stored operator (band 3N - 2 + U, V 2 N ceil(log2 N)) vs N";
  // "610x": upstream's formula and a like-for-like layer comparison, at d = 4096.
  s["param_ratio_upstream_formula_d4096"] = rbk::param_ratio_upstream_formula(4096);
  s["param_ratio_upstream_formula_definition"] = "4 d^2 / (3 d + 2 d floor(log2 d)), d = d_model = 4096 (upstream-audit 6.2)";
  s["param_ratio_like_for_like_d4096"] = rbk::param_ratio_like_for_like(4096);
  s["param_ratio_like_for_like_definition"] =
      "one Transformer layer (attention + FFN + LayerNorms) / one layer of upstream's Phase-2 model that replaced it";
  // Memory against attention at the same N (counted tensors, forward + backward).
  const int64_t mn = cfg.get_int("semi.memory_n"), md = cfg.get_int("semi.memory_d");
  const double att = rbk::attention_layer_elements(mn, md, 1), semi = rbk::semiseparable_layer_elements(mn, md, 1);
  s["memory_n"] = mn;
  s["memory_d"] = md;
  s["attention_layer_bytes"] = 4.0 * att;
  s["semiseparable_layer_bytes"] = 4.0 * semi;
  s["memory_reduction_vs_attention"] = 1.0 - semi / att;
  s["memory_definition"] = "tensors held for forward + backward, one head, batch 1, fp32: attention Q, K, V, N x N scores and "
                           "probabilities, output; semiseparable band + U, V, x V, input and output";
  s["upstream_estimated_savings"] = rbk::upstream_estimated_memory_savings(mn, 1, false);
  s["upstream_estimated_savings_checkpointing"] = rbk::upstream_estimated_memory_savings(mn, 1, true);
}

void run_model_sizes(const rbk::Config& cfg, json& summary, json& rows) {
  struct Size {
    const char* name;
    int64_t d, l, n;
  };
  const int64_t V = 50000, E = 4;
  const bool instantiate_large = cfg.get_bool("sizes.instantiate_large");
  json& out = summary["model_sizes"];
  out["definition"] = "paper-time ResNet-BK LM (V = 50,000, E = 4, top-1, learned positions); fp16 bytes = 2 x parameters";
  for (const Size& z : {Size{"small", 256, 6, 2048}, Size{"medium", 512, 16, 8192}, Size{"large", 2048, 48, 32768}}) {
    const int64_t D = z.d, L = z.l, N = z.n;
    // upstream-audit §2.3's closed form.
    const int64_t closed = V * D + N * D + L * (2 * D + E * (4 * D * D + 3 * D) + (D * E + E) + (D + 1) + 3 * D + 1) + 2 * D +
                           (D * V + V);
    json row = {{"part", "model_size"}, {"status", "ok"}, {"name", z.name}, {"d_model", D}, {"n_layers", L}, {"n_seq", N},
                {"closed_form_params", closed}};
    int64_t counted = -1;
    if (std::string(z.name) != "large" || instantiate_large) {
      // Instantiated without the full model: one layer at full width, V and N extrapolated
      // affinely (model_sizing.h's estimator), plus L - 1 more blocks counted on one built block.
      rbk::LmConfig c;
      c.arch = "resnet_bk";
      c.vocab_size = V;
      c.d_model = D;
      c.n_layers = 1;
      c.n_seq = N;
      c.num_experts = E;
      c.top_k = 1;
      c.init = "torch_default";
      const int64_t one_layer = rbk::estimate_parameter_count(c);
      torch::nn::Module holder;
      rbk::make_resnet_bk_block(holder, "b_", c);
      counted = one_layer + (L - 1) * rbk::count_parameters(holder);
      row["instantiated_params"] = counted;
      row["instantiation"] = "one block built at full width; V, N extrapolated affinely from tiny builds; L - 1 blocks added";
    }
    const int64_t params = counted > 0 ? counted : closed;
    out[z.name] = {{"params", params}, {"closed_form_params", closed}, {"fp16_param_bytes", 2 * params},
                   {"source", counted > 0 ? "instantiated" : "closed_form"}};
    if (counted > 0) out[z.name]["instantiated_params"] = counted;
    rows.push_back(row);
  }
}

}  // namespace memory_search
