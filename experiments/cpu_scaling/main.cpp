// exp_cpu_scaling — seed 004's CPU benchmarks (claims C02, C03, C04) and the scattering-phase
// router's speed claim (C09, seeds 000/002 §3.3, Table 4). upstream-audit §10.2 describes what the
// PoC timed: D = 64, B = 8, N in {64, 256, 1024, 2048}, one forward + backward of one layer on x ~
// U(0, 1); ResNet-BK = MoE -> BK-Core (complex128 loop, NaN from N ~ 488) -> Linear(2, D) with a
// hand-written "analytic" gradient, attention = nn.MultiheadAttention(D, 4 heads) (1 head in the
// analytic-gradient benchmark 3) through autograd. Reported: 6.7x at N = 2048, crossover near
// N ~ 1000, analytic gradient 1.6x (PoC) / 2.5x (integrated) faster than autograd, sparse MoE faster
// than a dense FFN at the same accuracy; seeds 000/002: the router is 10x faster than MLP gating.
//
// Files: main.cpp (this: stages, sweep, summary, options), timed_rows.cpp (the rows), ratio_repeats.cpp
// (the deciding ratios as interleaved repeats + equal-work checks), lm_training.cpp (short LM
// trainings), cpu_scaling.h.
//
// Every timed row is one training step (forward + backward, no optimizer step) of one layer, the
// same loss for all rows: L = sum(y * r) / (B N) with a fixed random r. Rows (`rows` key):
//   C03  bk_layer_exact        the ResNet-BK block exactly as the LM runs it (rbk::resnet_bk_block_forward,
//                              paper-time block: LN, v = clamp(Linear(D,1)), BK-Core stable fp32,
//                              MoE (router `bk_router`, top-1), Linear(2, D)), exact custom backward
//        bk_layer_autograd     the same block, BK-Core gradient 'autograd' (LibTorch autograd through
//                              the stable forward written as differentiable ops) — C02 "integrated"
//        bk_layer_compat_poc   the same block with the PoC recursion (compat_poc, executed as one
//                              tensor op per step as upstream's vmap does) and the paper-time hybrid
//                              gradient; status "nonfinite_output" where its output is NaN/Inf
//        attention_mha_h4      torch::nn::MultiheadAttention(D, 4 heads), non-causal, need_weights as
//                              PyTorch's default: the PoC's final benchmark (5_Final_MoE_Scaling)
//        attention_mha_h1      the same with 1 head: the PoC's analytic-gradient benchmark (3_)
//        attention_causal      qkv Linear(D, 3D) -> rbk::causal_attention (4 heads) -> Linear(D, D):
//                              LibTorch's fused scaled_dot_product_attention where it exists
//                              (LibTorch >= 2), the explicit masked softmax on 1.13 — the summary
//                              says which (c03/attention_causal_kind)
//   C02  bkcore_exact | bkcore_autograd | bkcore_papertime_hybrid | bkcore_head_hybrid
//                              rbk::bk_core_features alone (stable forward, v ~ U[-1, 1] (B, N)
//                              float32), forward + backward with each gradient mode; each row also
//                              times the forward alone and gives the cosine / relative L2 error of
//                              its dL/dv against the exact gradient in fp64
//   C04  moe_sparse_top1       rbk::Moe, E experts, router `moe_router` (top-1), on T = B N tokens
//        ffn_dense_equal_active rbk::Moe with E = 1 (one expert, the dense softmax path = a plain
//                              FFN Linear(D, 2D) -> ReLU -> Linear(2D, D)): the same active parameters
//        ffn_dense_equal_total rbk::Moe with E = 1 and hidden width E * 2D: the same total parameters
//   C09  route_scattering_phase / route_mlp_gating
//                              Moe::route alone (no expert), forward only: the scattering-phase router
//                              on G_ii of random v ~ U[-3, 3] (audit §3.3) vs learned MLP gating
//                              (upstream's learned_topk, top-1)
//        moe_scattering_phase / moe_mlp_gating
//                              the whole MoE layer (routing + experts), forward + backward
// All rows of one N see the same random inputs (x, r, v, G_ii). Attention rows stop at
// attention_max_n (memory: B H N^2 floats per score tensor), autograd rows at autograd_max_n, the
// compat row at compat_max_n; larger N are not run (no row).
//
// Stage 1, the deciding ratios (ratio_repeats.cpp), at N = 2048 whatever n_list holds (within the
// caps above and `rows`): the two rows of each ratio are built once on the same inputs (the two
// layers of the C02 integrated ratio hold the same weights), their first, untimed call is checked
// for equal work (the *equal_work_checked / autograd_same_gradient bools below), then they are
// timed in `timing_repeats` interleaved repeats (A B, B A, A B, ...); within a repeat each side's
// time is the median of its inner calls (timing_inner_repeats, or as many as fit in
// timing_side_max_s by its first call, at least one), and each repeat gives one ratio. These keys
// are ARRAYS (one ratio per repeat), so the validator judges their 95 % interval, not one draw.
// Stage 2, the sweep: every row at every N of n_list, `warmup` untimed then `repeats` timed calls
// (single timings: min and median); at N = 2048 the rows stage 1 timed are not timed again, their
// sweep row pools stage 1's calls ("timing": "interleaved_repeats"). Sweep ratios, crossovers and
// fits use the fastest call (on a shared machine the minimum is the closest to the code's own
// cost) and only rows whose output is finite and non-trivial. A run pins `threads` (1 in the
// presets, NOTES.md), LibTorch's and OpenBLAS's own pool alike (machine/blas_threads).
// Stage 3, short training (C04, C09; lm_training.cpp), rbk::train_language_model on `data.data_dir`
// (rbk::load_lm_data; recipe from the model.* and train.* option sections): paper-time ResNet-BK LMs, stable causal BK-Core (so held-out
// loss is meaningful, audit §1.7), identical recipe and seeds: MoE (E experts, `moe_router`, top-1)
// vs dense (E = 1, same active parameters; E = model.num_experts); validation loss = mean NLL (nats/token) on the valid
// split. For C09 a scattering-phase LM (bidirectional BK-Core, as upstream) is trained with the same
// recipe and its expert usage on the valid split is counted before and after training (every used
// slot counts; resonance tokens use two).
//
// Router parameters (C09): rbk::Moe has no separate router module, so the router's parameters are
// those that exist only because of the router choice: every parameter of rbk::Moe built with that
// router (plus any registered buffer that requires grad) minus the parameters of an expert stack of
// the same shape built on its own (E x Linear(D, 2D) + Linear(2D, D)); no parameter name is used.
// The learned MLP gating's count (D E + E) shows that the counter counts.
//
// Summary keys (read by validation/; [array] = one value per interleaved repeat; N = 2048 is
// kReferenceN; null where not run or not finite):
//   timing_repeats, timing_inner_repeats, timing_side_max_s, timing_repeats_n (= 2048): stage 1's design;
//     timing_inner_calls/<row>: the inner calls each row got
//   timing_repeats_detail/<ratio key>/{family, numerator_row, denominator_row, numerator_median_s [array],
//     denominator_median_s [array], timed_first [array of row names]}: the per-repeat times behind each ratio
//   <family>/<ratio key>_spread {mean, min, max, cv (sample sd / mean), n}: for tables, one per array below
//   c02/speedup_exact_over_autograd_n2048 [array]: BK-Core alone, forward + backward, time(autograd) / time(exact)
//      speedup_exact_over_autograd_layer_n2048 [array]: the whole ResNet-BK layer, same ratio ("integrated")
//      autograd_same_gradient (bool): on stage 1's inputs, the autograd and exact fp32 gradients (dL/dv of
//        the BK-Core; every parameter gradient of the layer) and outputs differ by relative L2 <= 1e-3
//        (kSameGradientRelL2, rounding only), all finite and non-trivial; AND over the two that ran
//      autograd_same_gradient_check: the measured differences, tolerance and rule
//      backward_speedup_exact_over_autograd_n2048, speedup_papertime_hybrid_over_autograd_n2048 (sweep,
//        fastest calls), cosine_{exact,autograd,papertime_hybrid,head_hybrid}_vs_exact (fp32 gradient vs
//        the fp64 exact one, at N = 2048 or the largest swept N: cosine_n), rel_l2_autograd_vs_exact
//   c03/ratio_attention_autograd_over_bk_n2048 [array]: time(attention_mha_h4) / time(bk_layer_exact)
//      equal_work_checked (bool): both outputs finite, non-trivial, of the input's shape (B, N, D), from
//        the same input values; equal_work_check: the parts
//      ratio_attention_autograd_h1_over_bk_n2048, ratio_attention_causal_over_bk_n2048,
//      ratio_attention_autograd_over_bk_compat_n2048 (sweep, fastest calls), crossover_n_attention_autograd,
//      crossover_n_attention_causal, crossover_attention_{autograd,causal}_bound, attention_causal_kind,
//      fused_attention_available, compat_first_nonfinite_n, compat_nonfinite_fraction_n2048
//     crossover_n_*: N at which attention and the BK layer take equal time (sweep), interpolated in
//     log-log between the swept N around the last sign change; when the BK layer is faster at
//     every swept N it is the smallest swept N (an upper bound; *_bound = "at_or_below_smallest_n"),
//     null when attention is faster at every swept N (bound "above_largest_n").
//   c04/speedup_moe_over_dense_equal_active_n2048 [array]: time(ffn_dense_equal_active) / time(moe_sparse_top1)
//      equal_work_checked (bool): same input values, finite non-trivial (T, D) outputs, every token routed
//        once in both (expert counts of the checked call sum to T), the same expert parameters per token
//        (one FFN; the gates differ); equal_work_check: the parts; active_parameters_{moe,dense}: router + one expert
//      speedup_moe_over_dense_equal_total_n2048 (sweep), moe_router,
//      val_loss_moe, val_loss_dense, moe_minus_dense_val_loss (means over seeds),
//      seeds/{seed, val_loss_moe, val_loss_dense}, parameters_{moe,dense}, active_parameters_per_block_{moe,dense},
//      train_tokens_per_s_{moe,dense}, lm_setup
//   c09/router_speedup [array]: routing alone, time(MLP gating) / time(scattering router)
//      equal_work_checked (bool): both routers give every one of the same T tokens a valid expert
//        (index in [0, E), a slot with weight > 0, weights finite); equal_work_check: the parts
//      router_parameters_scattering, router_parameters_learned: parameters that exist only because of the
//        router (method above); router_parameters_method
//      layer_speedup (sweep, whole MoE layer), router_ns_per_token_{scattering,mlp} (sweep),
//      expert_usage_fraction_{initialised,trained}, expert0_fraction_{initialised,trained},
//      mlp_gating_expert_usage_fraction, mlp_gating_usage_router, usage_setup, router_speed_note
//   exponents/<row>: slope of log(fastest time) vs log N over N >= fit_min_n
//   machine/{BLAS_INFO, LAPACK_INFO, sgemm_library, blas_threads, sgemm_gflops_512}: the BLAS every
//     Linear and attention matmul runs on (ratios depend on it; the BK-Core loops do not)
//   max_n, max_n_attention (attention_mha_h4), max_n_autograd (both autograd rows), max_n_compat:
//     the largest N each kind of sweep row ran at (0 = not run)
//   fit_min_n, peak_rss_mb, reference_n, threads
// HDF5: <row>/{n, time_min_s, time_median_s}; c04/val_loss_{moe,dense}.
#include "cpu_scaling.h"

#include "rbk/torch_compat.h"

#include <ATen/Version.h>
#include <dlfcn.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

namespace fs = std::filesystem;

namespace {

using namespace rbk_cpu_scaling;

// Cosine of the autograd gradient with the exact one must be this close to 1 for the two to count
// as "the same gradient" in the sweep's log line; fp32 forward of N ~ 1e4 steps loses ~1e-5 at most.
constexpr double kSameGradientCosine = 1.0 - 1e-4;
// Fewest interleaved repeats of a deciding ratio: a Student-t interval from fewer is too wide to
// separate the thresholds in the registry (issue 16 asks for >= 5).
constexpr int64_t kMinTimingRepeats = 5;

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

// The BLAS behind LibTorch's CPU GEMMs decides the cost of every Linear and of attention's
// matmuls, not of BK-Core's own loops; so every ratio here depends on it. Recorded: LibTorch's
// BLAS_INFO, the shared library that provides sgemm_ (Debian's LibTorch 1.13 takes whatever
// libblas.so.3 the system's alternatives point to: netlib's reference BLAS or OpenBLAS), and a
// measured fp32 GEMM rate. LibTorch 1.13 does not pass its thread count to OpenBLAS, whose pthread
// build would then use every core for the attention GEMMs while the BK-Core loops use one: the
// run's thread count is handed to OpenBLAS here, where the library has that entry point.
nlohmann::json machine_blas() {
  nlohmann::json j;
  const std::string cfgs = at::show_config();
  for (const char* key : {"BLAS_INFO=", "LAPACK_INFO="}) {
    const auto p = cfgs.find(key);
    j[std::string(key).substr(0, std::string(key).size() - 1)] =
        p == std::string::npos ? "" : cfgs.substr(p + std::strlen(key), cfgs.find_first_of(", \n", p) - p - std::strlen(key));
  }
  std::string lib = "unknown";
  Dl_info info{};
  if (void* sym = dlsym(RTLD_DEFAULT, "sgemm_"); sym && dladdr(sym, &info) && info.dli_fname) {
    std::error_code ec;
    const auto canon = fs::canonical(info.dli_fname, ec);
    lib = ec ? std::string(info.dli_fname) : canon.string();
  }
  j["sgemm_library"] = lib;
  using SetThreads = void (*)(int);
  using GetThreads = int (*)();
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(at::get_num_threads());
  auto get = reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  j["blas_threads"] = get ? nlohmann::json(get()) : nlohmann::json("not OpenBLAS: LibTorch's setting");
  const int64_t n = 512;  // 2 n^3 = 0.27 GFLOP: long enough to time, short on any BLAS
  const Tensor a = torch::randn({n, n}), b = torch::randn({n, n});
  Tensor c;
  const auto t = rbk::time_repeated([&] { c = torch::mm(a, b); }, 1, 5);
  TORCH_CHECK(torch::isfinite(c).all().item<bool>(), "GEMM probe: non-finite product");
  j["sgemm_gflops_512"] = 2.0 * n * n * n / t.min_s * 1e-9;
  return j;
}

// N where attention and BK take equal time (see the file comment). ns ascending, ratio = t_attn / t_bk.
std::pair<nlohmann::json, std::string> crossover(const std::vector<double>& ns, const std::vector<double>& ratio) {
  if (ns.empty()) return {nullptr, "not_measured"};
  int last_slower = -1;
  for (size_t i = 0; i < ns.size(); ++i)
    if (ratio[i] < 1.0) last_slower = static_cast<int>(i);
  if (last_slower < 0) return {ns.front(), "at_or_below_smallest_n"};
  if (last_slower == static_cast<int>(ns.size()) - 1) return {nullptr, "above_largest_n"};
  const size_t i = static_cast<size_t>(last_slower);
  const double l0 = std::log(ns[i]), l1 = std::log(ns[i + 1]);
  const double r0 = std::log(ratio[i]), r1 = std::log(ratio[i + 1]);
  return {std::exp(l0 + (0.0 - r0) * (l1 - l0) / (r1 - r0)), "interpolated"};
}

// ---- plan: every option checked before any timing (a bad one exits 2 at once) ------------------------

void check_options(const rbk::Config& cfg, const LmRecipe& lm) {
  if (cfg.get_int("d_model") % 4 != 0) throw rbk::ConfigError("config key 'd_model' must be a multiple of 4 (4 attention heads)");
  if (lm.train.max_steps > 0 && cfg.get_int_list("train_seeds").empty())
    throw rbk::ConfigError("config key 'train_seeds' must list at least one seed when 'train.max_steps' > 0");
  if (const int64_t r = cfg.get_int("timing_repeats"); r > 0 && r < kMinTimingRepeats)
    throw rbk::ConfigError("config key 'timing_repeats' = " + std::to_string(r) + ": expected 0 (no deciding ratios) or >= " +
                           std::to_string(kMinTimingRepeats) + " (a ratio is judged on its interval)");
}

// ---- measure: every row at every N (stage 2; the deciding ratios at N = 2048 are stage 1) --------------

// Per row: N -> fastest time of the rows with finite, non-trivial outputs (t_ok) and of all rows
// that ran (t_ran: the fits of the compat path use them too), each row's extra keys and series.
struct SweepTimes {
  struct Series {
    std::vector<int64_t> n;
    std::vector<double> tmin, tmed;
  };
  std::map<std::string, std::map<int64_t, double>> t_ok, t_ran;
  std::map<std::string, std::map<int64_t, nlohmann::json>> extra;
  std::map<std::string, Series> series;
  int64_t compat_first_nonfinite = -1;
  double compat_nonfinite_ref = std::nan("");

  double tmin_at(const std::string& row, int64_t N) const {
    auto it = t_ok.find(row);
    if (it == t_ok.end()) return std::nan("");
    auto jt = it->second.find(N);
    return jt == it->second.end() ? std::nan("") : jt->second;
  }
  double ratio(const std::string& num, const std::string& den, int64_t N) const { return tmin_at(num, N) / tmin_at(den, N); }
  bool has_extra(const std::string& row, int64_t N) const { return extra.count(row) && extra.at(row).count(N); }
  // Largest N a row ran at (0: never).
  int64_t max_n_of(const std::string& row) const {
    auto it = series.find(row);
    return it == series.end() || it->second.n.empty() ? int64_t(0) : it->second.n.back();
  }
};

// One row at one N: timed (or taken from the pooled stage-1 repeats at the reference N), its outputs
// checked; the row's JSON is appended to out.rows. Rows a configuration does not build are left out.
void measure_row(const rbk::Config& cfg, const std::string& row, int64_t N, const RowInputs& in,
                 const std::map<std::string, PooledRow>& pooled, SweepTimes& st, rbk::ExperimentOutput& out) {
  const int64_t B = cfg.get_int("batch");
  const int warmup = static_cast<int>(cfg.get_int("warmup")), repeats = static_cast<int>(cfg.get_int("repeats"));
  nlohmann::json j{{"family", family_of(row)}, {"row", row}, {"n", N}, {"batch", B}, {"d_model", cfg.get_int("d_model")}};
  try {
    Measured m;
    std::string timing = "sweep";
    if (N == kReferenceN && pooled.count(row)) {
      m = pooled.at(row).m;
      timing = "interleaved_repeats";
    } else {
      TimedRow t;
      if (!make_timed_row(row, in, cfg, t)) return;
      const rbk::TimingStats ts = rbk::time_repeated(t.step, warmup, repeats);
      m = inspect_row(t);
      m.t = ts;
    }
    j["timing"] = timing;
    const bool ok = m.finite && m.nontrivial;
    j.update({{"status", ok ? "ok" : (m.finite ? "trivial_output" : "nonfinite_output")},
              {"time_min_s", m.t.min_s}, {"time_median_s", m.t.median_s}, {"time_max_s", m.t.max_s},
              {"repeats", m.t.repeats}, {"ns_per_token", 1e9 * m.t.min_s / double(B * N)},
              {"nonfinite_fraction", m.nonfinite_fraction}});
    j.update(m.extra);
    st.t_ran[row][N] = m.t.min_s;
    if (ok) st.t_ok[row][N] = m.t.min_s;
    st.extra[row][N] = m.extra;
    auto& s = st.series[row];
    s.n.push_back(N);
    s.tmin.push_back(m.t.min_s);
    s.tmed.push_back(m.t.median_s);
    if (row == "bk_layer_compat_poc") {
      if (!m.finite && st.compat_first_nonfinite < 0) st.compat_first_nonfinite = N;
      if (N == kReferenceN) st.compat_nonfinite_ref = m.nonfinite_fraction;
    }
    std::printf("[cpu_scaling] N=%-5lld %-24s %10.3f ms (median %.3f)  %s\n", (long long)N, row.c_str(), 1e3 * m.t.min_s,
                1e3 * m.t.median_s, j["status"].get<std::string>().c_str());
  } catch (const std::exception& e) {
    j.update({{"status", "error"}, {"message", e.what()}});
    std::printf("[cpu_scaling] N=%lld %s: error %s\n", (long long)N, row.c_str(), e.what());
  }
  std::fflush(stdout);
  out.rows.push_back(j);
}

// ---- summarise: one block of keys per claim, then the exponents of time ~ N^p --------------------------

void summarise_c03(const SweepTimes& st, const std::vector<int64_t>& n_list, nlohmann::json& c03) {
  c03["ratio_attention_autograd_h1_over_bk_n2048"] = number_or_null(st.ratio("attention_mha_h1", "bk_layer_exact", kReferenceN));
  c03["ratio_attention_causal_over_bk_n2048"] = number_or_null(st.ratio("attention_causal", "bk_layer_exact", kReferenceN));
  const auto ran_at_ref = [&](const std::string& row) {
    auto it = st.t_ran.find(row);
    return it != st.t_ran.end() && it->second.count(kReferenceN) ? it->second.at(kReferenceN) : std::nan("");
  };
  c03["ratio_attention_autograd_over_bk_compat_n2048"] = number_or_null(ran_at_ref("attention_mha_h4") / ran_at_ref("bk_layer_compat_poc"));
  c03["compat_first_nonfinite_n"] = st.compat_first_nonfinite < 0 ? nlohmann::json(nullptr) : nlohmann::json(st.compat_first_nonfinite);
  c03["compat_nonfinite_fraction_n2048"] = number_or_null(st.compat_nonfinite_ref);
  c03["fused_attention_available"] = rbk::fused_attention_available();
  c03["attention_causal_kind"] = rbk::fused_attention_available() ? "sdpa_fused" : "explicit_masked_softmax";
  for (const auto& [attn, key] : std::vector<std::pair<std::string, std::string>>{{"attention_mha_h4", "attention_autograd"},
                                                                                 {"attention_causal", "attention_causal"}}) {
    std::vector<double> ns, rs;
    for (int64_t N : n_list) {
      const double q = st.ratio(attn, "bk_layer_exact", N);
      if (std::isfinite(q)) {
        ns.push_back(double(N));
        rs.push_back(q);
      }
    }
    auto [cn, bound] = crossover(ns, rs);
    c03["crossover_n_" + key] = cn;
    c03["crossover_" + key + "_bound"] = bound;
  }
}

void summarise_c02(const SweepTimes& st, const std::vector<int64_t>& n_list, nlohmann::json& c02) {
  c02["speedup_papertime_hybrid_over_autograd_n2048"] =
      number_or_null(st.ratio("bkcore_autograd", "bkcore_papertime_hybrid", kReferenceN));
  double bwd = std::nan("");
  if (st.has_extra("bkcore_autograd", kReferenceN) && st.has_extra("bkcore_exact", kReferenceN)) {
    const double ba = st.tmin_at("bkcore_autograd", kReferenceN) -
                      st.extra.at("bkcore_autograd").at(kReferenceN).at("time_forward_min_s").get<double>();
    const double be = st.tmin_at("bkcore_exact", kReferenceN) -
                      st.extra.at("bkcore_exact").at(kReferenceN).at("time_forward_min_s").get<double>();
    if (ba > 0 && be > 0) bwd = ba / be;
  }
  c02["backward_speedup_exact_over_autograd_n2048"] = number_or_null(bwd);
  // Cosines at the reference N, else at the largest N every bkcore row ran at.
  int64_t n_cos = -1;
  for (int64_t N : n_list)
    if (N <= kReferenceN && st.has_extra("bkcore_autograd", N) && st.has_extra("bkcore_exact", N)) n_cos = N;
  c02["cosine_n"] = n_cos < 0 ? nlohmann::json(nullptr) : nlohmann::json(n_cos);
  for (const std::string mode : {"exact", "autograd", "papertime_hybrid", "head_hybrid"}) {
    const std::string row = "bkcore_" + mode;
    nlohmann::json c = nullptr, e = nullptr;
    if (n_cos > 0 && st.has_extra(row, n_cos)) {
      c = st.extra.at(row).at(n_cos).value("cosine_vs_exact_fp64", nlohmann::json(nullptr));
      e = st.extra.at(row).at(n_cos).value("rel_l2_vs_exact_fp64", nlohmann::json(nullptr));
    }
    c02["cosine_" + mode + "_vs_exact"] = c;
    if (mode == "autograd") c02["rel_l2_autograd_vs_exact"] = e;
  }
  if (c02["cosine_autograd_vs_exact"].is_number() && c02["cosine_autograd_vs_exact"].get<double>() < kSameGradientCosine)
    std::printf("[cpu_scaling] WARNING: autograd and exact gradients differ (cosine %.8f)\n",
                c02["cosine_autograd_vs_exact"].get<double>());
}

void summarise_c04_c09(const rbk::Config& cfg, const SweepTimes& st, nlohmann::json& c04, nlohmann::json& c09) {
  const int64_t B = cfg.get_int("batch");
  c04["speedup_moe_over_dense_equal_total_n2048"] = number_or_null(st.ratio("ffn_dense_equal_total", "moe_sparse_top1", kReferenceN));
  c04["moe_router"] = cfg.get_string("moe_router");
  c09["layer_speedup"] = number_or_null(st.ratio("moe_mlp_gating", "moe_scattering_phase", kReferenceN));
  c09["router_ns_per_token_scattering"] = number_or_null(1e9 * st.tmin_at("route_scattering_phase", kReferenceN) / double(B * kReferenceN));
  c09["router_ns_per_token_mlp"] = number_or_null(1e9 * st.tmin_at("route_mlp_gating", kReferenceN) / double(B * kReferenceN));
  rbk::MoeOptions mo;
  mo.d_model = cfg.get_int("d_model");
  mo.num_experts = cfg.get_int("num_experts");
  mo.router = rbk::RouterKind::ScatteringPhase;
  c09["router_parameters_scattering"] = router_owned_parameters(mo);
  mo.router = rbk::RouterKind::LearnedTopK;
  c09["router_parameters_learned"] = router_owned_parameters(mo);
  c09["router_parameters_method"] =
      "parameters (and buffers that require grad) of rbk::Moe with this router minus those of an expert stack of "
      "the same shape built on its own; no parameter names used";
  c09["router_speed_note"] =
      "routing alone (Moe::route, forward); the scattering router is given G_ii, which the paper-time block "
      "computes anyway for its BK features";
}

// Exponents of time ~ N^p per row (fastest repetitions, N >= fit_min_n; compat rows include
// non-finite points: their time is still the cost of the arithmetic), the series as arrays, and
// the largest N each kind of row ran at (validation judges an N = 2048 claim only where it was swept).
void summarise_scaling(const rbk::Config& cfg, const SweepTimes& st, const std::vector<int64_t>& n_list, rbk::ExperimentOutput& out) {
  auto& ex = out.summary["exponents"];
  for (const auto& [row, s] : st.series) {
    std::vector<double> xs, ys;
    for (size_t i = 0; i < s.n.size(); ++i)
      if (s.n[i] >= cfg.get_int("fit_min_n")) {
        xs.push_back(double(s.n[i]));
        ys.push_back(s.tmin[i]);
      }
    ex[row] = xs.size() >= 2 ? nlohmann::json(rbk::fit_power_law_exponent(xs, ys)) : nlohmann::json(nullptr);
    out.arrays.push_back(rbk::make_int_array(row + "/n", s.n, "1", "sequence length N"));
    out.arrays.push_back(rbk::make_array(row + "/time_min_s", s.tmin, "s", "fastest repetition of one training step"));
    out.arrays.push_back(rbk::make_array(row + "/time_median_s", s.tmed, "s", "median of the repetitions"));
  }
  out.summary["max_n"] = n_list.empty() ? int64_t(0) : *std::max_element(n_list.begin(), n_list.end());
  out.summary["max_n_attention"] = st.max_n_of("attention_mha_h4");
  out.summary["max_n_autograd"] = std::min(st.max_n_of("bkcore_autograd"), st.max_n_of("bk_layer_autograd"));
  out.summary["max_n_compat"] = st.max_n_of("bk_layer_compat_poc");
  out.summary["fit_min_n"] = cfg.get_int("fit_min_n");
  out.summary["reference_n"] = kReferenceN;
  out.summary["threads"] = at::get_num_threads();
}

void run(const rbk::Config& cfg, rbk::ExperimentOutput& out) {
  const LmRecipe lm = lm_recipe(cfg);  // checked before any timing: a bad option exits 2 at once
  check_options(cfg, lm);
  out.summary["machine"] = machine_blas();
  std::printf("[cpu_scaling] BLAS %s\n", out.summary["machine"].dump().c_str());

  // Stage 1: the deciding ratios as interleaved repeats at N = 2048 (ratio_repeats.cpp).
  const int64_t B = cfg.get_int("batch");
  const RowInputs reference_inputs = make_row_inputs(B, kReferenceN, cfg.get_int("d_model"));
  std::map<std::string, PooledRow> pooled;
  run_ratio_repeats(cfg, reference_inputs, out, pooled);

  // Stage 2: the sweep.
  const auto n_list = cfg.get_int_list("n_list");
  SweepTimes st;
  for (int64_t N : n_list) {
    const RowInputs in = N == kReferenceN ? reference_inputs : make_row_inputs(B, N, cfg.get_int("d_model"));
    for (const auto& row : cfg.get_string_list("rows")) measure_row(cfg, row, N, in, pooled, st, out);
  }

  summarise_c03(st, n_list, out.summary["c03"]);
  summarise_c02(st, n_list, out.summary["c02"]);
  summarise_c04_c09(cfg, st, out.summary["c04"], out.summary["c09"]);
  summarise_scaling(cfg, st, n_list, out);

  if (lm.train.max_steps > 0) run_training(cfg, out);
  out.summary["peak_rss_mb"] = peak_rss_mb();
  std::printf("[cpu_scaling] summary %s\n", out.summary.dump().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  rbk::ExperimentSpec spec{"cpu_scaling", {"C02", "C03", "C04", "C09"},
                           "one-layer training-step time vs N on the CPU: ResNet-BK layer vs attention (C03), exact vs "
                           "autograd BK-Core gradient (C02), sparse MoE vs dense FFN (C04), scattering vs MLP router (C09)",
                           {}};
  // The routers options.h knows, less scattering_phase: it routes by G_ii, which these rows do not
  // compute, and is timed as its own rows (route_scattering_phase, moe_scattering_phase).
  std::vector<std::string> routers_by_gate;
  for (const auto& r : rbk::router_choices())
    if (r != "scattering_phase") routers_by_gate.push_back(r);
  spec.schema.add_int("batch", 1, 1024, "batch B of every timed layer (PoC: 8)")
      .add_int("d_model", 4, 4096, "width D (PoC: 64)")
      .add_int("num_experts", 1, 64, "experts E of the timed MoE rows (PoC: 4; the LMs': model.num_experts)")
      .add_int_list("n_list", 2, 1 << 20, "sequence lengths N")
      .add_string_list("rows", all_rows(), "rows to time (see the file comment)")
      .add_int("attention_max_n", 0, 1 << 20, "largest N of the attention rows (memory: B H N^2 floats)")
      .add_int("autograd_max_n", 0, 1 << 20, "largest N of the autograd rows (one op per recursion step)")
      .add_int("compat_max_n", 0, 1 << 20, "largest N of the compat (PoC recursion) row")
      .add_int("warmup", 0, 100, "untimed calls before timing")
      .add_int("repeats", 1, 1000, "timed calls per sweep point (fastest and median reported)")
      .add_int("timing_repeats", 0, 1000, "interleaved repeats of each deciding ratio at N = 2048 (0 = none, else >= 5)")
      .add_int("timing_inner_repeats", 1, 1000, "most timed calls per side within one repeat (their median is the side's time)")
      .add_real("timing_side_max_s", 0.0, 3600.0,
                "a side gets as many inner calls (1..timing_inner_repeats) as fit in this many seconds, judged by its first call")
      .add_int("fit_min_n", 1, 1 << 20, "smallest N in the time ~ N^p fits")
      .add_string("bk_router", routers_by_gate, "MoE router inside the timed ResNet-BK layer")
      .add_string("moe_router", routers_by_gate, "router of the sparse MoE (C04 rows and LM)")
      .add_int_list("train_seeds", 0, 2147483647, "seeds of the C04 MoE/dense pairs (the first also trains the C09 LM)")
      .add_string("c09_bk_context", {"bidirectional", "causal"}, "BK-Core context of the C09 scattering-router LM (upstream: bidirectional)")
      .add_int("threads", 0, 256, "CPU threads (0 = all cores); 1 for timings of record on a shared machine");
  // The short LM trainings: data.* (valid split only), model.* (paper-time block, causal stable
  // BK-Core; num_experts is the MoE and scattering LMs' E, the dense LM has 1), train.* (bounded
  // by max_steps, 0 = no training).
  rbk::add_data_options(spec.schema, "data.");
  rbk::add_lm_config_options(spec.schema, "model.", {{"bk_context", "causal"}});
  rbk::add_train_options(spec.schema, "train.", {{"epochs", 1000}});
  return rbk::run_experiment(argc, argv, spec, run);
}

