// exp_bk_numerics — claim C01: "BK-Core computes diag((H - zI)^-1) in O(N), numerically stable to
// 32k tokens (seeds 000/001) / 1M tokens (seed 002)". upstream-audit §1.5: the authors' recursion
// overflows near N ~ 500 and the paper-time sanitiser turns that into exact zeros.
//
// For every forward mode and N = 2^k (k = n_log2_min .. n_log2_max) on random v ~ U[v_min, v_max]:
// max relative error vs the fp64 stable path (vs the fp64 causal path for causal modes), vs the
// dense complex128 oracle where N <= oracle_max_n (first batch row), fractions of non-finite and
// of exactly-zero outputs, median time per call; then a time ~ N^p fit per mode. Above the dense
// oracle's reach the stable paths are checked against an independent reference (determinant ratio
// of minors in binary128, core/reference/bk_core_continuant.h) at N = 2^independent_n_log2 over a
// fixed table of potential ranges and z (independent_check.cpp); and the stable fp32 sweep is timed
// `timing_sweeps` times, interleaved, for one time exponent per sweep.
//
// Summary keys (read by validation/):
//   summary.max_n
//   summary.modes.<mode>.{first_n_nonfinite, first_n_all_zero, max_rel_error_vs_fp64,
//       max_rel_error_vs_oracle, finite_accurate_max_n, time_exponent, zero_fraction_at_max_n,
//       nonfinite_fraction_at_max_n}
//     mode in stable_fp64, stable_fp32, causal_fp64, causal_fp32, compat_poc, compat_papertime,
//     compat_papertime_triton. Errors are null where any output was non-finite (the fraction says
//     how much); first_n_* are null when it never happened in the sweep.
//     finite_accurate_max_n: largest swept N up to which every output is finite and within
//     kAccurateRelError of the fp64 reference. time_exponent: slope of log(fastest time) vs log N
//     over N >= kFitMinN (null if fewer than two such points), from the main sweep.
//   summary.modes.stable_fp32.time_exponent_repeats: [one exponent per timing sweep] over
//       N >= kFitMinN (null if fewer than two such N); .time_exponent_full_range: the exponent over
//       every N of the sweep, of the per-N median over sweeps (null when timing_sweeps = 0).
//   summary.time_fit.{n_min, n_max, repeats, full_range_n_min, calls_per_point, point, full_range_point}
//   summary.independent_check (null when independent_n_log2 = 0):
//       {max_n, cases, max_rel_error_fp64, max_rel_error_fp32 (stable paths vs the reference, max
//       over cases and entries; null if any output was non-finite), max_reference_det_mismatch
//       (the reference's self-check), precision_bits, reference, rows: [{n, potential, v_min, v_max,
//       z_re, z_im, re_z_vs_spectrum, max_rel_error_fp64, max_rel_error_fp32,
//       reference_det_mismatch, reference_time_s}]}
//   summary.gradient.{cosine_papertime_hybrid, cosine_head_hybrid, cosine_diagonal_approx,
//       exact_vs_fd_max_rel_error, n, draws}
// Rows: one per (mode, N) of the main sweep; mode "independent_check" (one per case, as in
// summary.independent_check.rows); mode "timing_sweep_stable_fp32" (one per sweep and N).
// HDF5: <mode>/{n, max_rel_error_vs_fp64 (NaN = non-finite), max_rel_error_vs_oracle (NaN = not
// computed), zero_fraction, nonfinite_fraction, time_s, time_min_s}.
#include "independent_check.h"
#include "reference/bk_core_oracle.h"
#include "rbk/bk_core.h"
#include "rbk/experiment.h"
#include "rbk/timing.h"
#include "rbk/tensor_metrics.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

namespace {

using rbk::BkContext;
using rbk::BkForwardMode;
using torch::Tensor;

// "Accurate" for finite_accurate_max_n: 1e-3 relative is far above fp32 rounding (~1e-7) and far
// below the O(1) errors of overflowed or zeroed outputs, so the verdict does not hinge on it.
constexpr double kAccurateRelError = 1e-3;
// Time fits use N >= bk_numerics::kFitMinN (2^16, see independent_check.h) and each point's
// fastest repetition: on a shared 2-core machine the median carries other processes' load, the
// minimum is the closest to the code's own cost.
using bk_numerics::kFitMinN;
// Central-difference step for the gradient check (fp64): truncation ~h^2, rounding ~eps/h.
constexpr double kFdStep = 1e-5;

struct ModeSpec {
  std::string name;
  BkForwardMode forward;
  BkContext context;
  torch::ScalarType dtype;
};

const std::vector<ModeSpec>& all_modes() {
  static const std::vector<ModeSpec> modes = {
      {"stable_fp64", BkForwardMode::Stable, BkContext::Bidirectional, torch::kDouble},
      {"stable_fp32", BkForwardMode::Stable, BkContext::Bidirectional, torch::kFloat},
      {"causal_fp64", BkForwardMode::Stable, BkContext::Causal, torch::kDouble},
      {"causal_fp32", BkForwardMode::Stable, BkContext::Causal, torch::kFloat},
      {"compat_poc", BkForwardMode::CompatPoc, BkContext::Bidirectional, torch::kFloat},
      {"compat_papertime", BkForwardMode::CompatPapertime, BkContext::Bidirectional, torch::kFloat},
      {"compat_papertime_triton", BkForwardMode::CompatPapertimeTriton, BkContext::Bidirectional, torch::kFloat},
  };
  return modes;
}

std::vector<std::string> mode_names() {
  std::vector<std::string> n;
  for (const auto& m : all_modes()) n.push_back(m.name);
  return n;
}

nlohmann::json number_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

// Max |got - ref| / |ref| over all entries; +inf if any entry of got is non-finite.
double max_rel_error(const Tensor& got, const Tensor& ref) {
  const Tensor g = got.to(torch::kComplexDouble);
  if (!torch::isfinite(torch::view_as_real(g)).all().item<bool>()) return std::numeric_limits<double>::infinity();
  return ((g - ref).abs() / ref.abs()).max().item<double>();
}

nlohmann::json gradient_checks(const rbk::Config& cfg) {
  const int64_t n = cfg.get_int("grad_n"), draws = cfg.get_int("grad_draws");
  double cos_pt = 0, cos_head = 0, cos_diag = 0, fd_err = 0;
  for (int64_t d = 0; d < draws; ++d) {
    const Tensor v = torch::rand({1, n}, torch::kDouble) * 2 - 1;  // audit §1.4: v ~ U[-1, 1], z = i
    const Tensor gf = torch::randn({1, n, 2}, torch::kDouble);
    const Tensor g = torch::view_as_complex(gf.contiguous());
    const Tensor exact = rbk::bk_core_diagonal_vjp_exact(rbk::laplacian_with_potential(v), {0, 1}, g, BkContext::Bidirectional);
    const Tensor G = rbk::bk_core_diagonal(rbk::laplacian_with_potential(v.to(torch::kFloat)), {0, 1},
                                             BkForwardMode::CompatPapertime);
    cos_pt += rbk::cosine_similarity(rbk::hybrid_gradient(G, gf, rbk::BkGradientMode::PapertimeHybrid).to(torch::kDouble), exact);
    cos_head += rbk::cosine_similarity(rbk::hybrid_gradient(G, gf, rbk::BkGradientMode::HeadHybrid).to(torch::kDouble), exact);
    const Tensor Gd = G.to(torch::kComplexDouble);
    cos_diag += rbk::cosine_similarity(-torch::real(torch::conj(g) * Gd * Gd), exact);
    if (d == 0) {  // one finite-difference check of the exact gradient per run
      Tensor fd = torch::empty_like(v);
      auto loss = [&](const Tensor& vv) {
        return torch::real(torch::conj(g) * rbk::bk_core_diagonal(rbk::laplacian_with_potential(vv), {0, 1})).sum().item<double>();
      };
      for (int64_t j = 0; j < n; ++j) {
        Tensor vp = v.clone(), vm = v.clone();
        vp[0][j] += kFdStep;
        vm[0][j] -= kFdStep;
        fd[0][j] = (loss(vp) - loss(vm)) / (2 * kFdStep);
      }
      fd_err = ((exact - fd).norm() / fd.norm()).item<double>();
    }
  }
  return {{"n", n},
          {"draws", draws},
          {"cosine_papertime_hybrid", cos_pt / draws},
          {"cosine_head_hybrid", cos_head / draws},
          {"cosine_diagonal_approx", cos_diag / draws},
          {"exact_vs_fd_max_rel_error", fd_err}};
}

void run(const rbk::Config& cfg, rbk::ExperimentOutput& out) {
  const int64_t B = cfg.get_int("batch");
  const int64_t kmin = cfg.get_int("n_log2_min"), kmax = cfg.get_int("n_log2_max");
  if (kmin > kmax) throw rbk::ConfigError("config key 'n_log2_min' (" + std::to_string(kmin) + ") must be <= 'n_log2_max' (" + std::to_string(kmax) + ")");
  const int64_t oracle_max_n = cfg.get_int("oracle_max_n");
  const int repeats = static_cast<int>(cfg.get_int("repeats"));
  const double vmin = cfg.get_real("v_min"), vmax = cfg.get_real("v_max");
  if (vmin >= vmax) throw rbk::ConfigError("config key 'v_min' must be < 'v_max'");
  const c10::complex<double> z(cfg.get_real("z_re"), cfg.get_real("z_im"));
  const auto wanted = cfg.get_string_list("modes");

  struct Series {
    std::vector<double> n, err, err_oracle, zero, nonfinite, time, time_min;
  };
  std::map<std::string, Series> series;

  for (int64_t k = kmin; k <= kmax; ++k) {
    const int64_t N = int64_t(1) << k;
    const Tensor v = torch::rand({B, N}, torch::kDouble) * (vmax - vmin) + vmin;
    const rbk::Tridiagonal h64 = rbk::laplacian_with_potential(v);
    const Tensor ref_bi = rbk::bk_core_diagonal(h64, z, BkForwardMode::Stable, BkContext::Bidirectional);
    const Tensor ref_causal = rbk::bk_core_diagonal(h64, z, BkForwardMode::Stable, BkContext::Causal);
    Tensor oracle_bi, oracle_causal;
    if (N <= oracle_max_n) {
      const rbk::Tridiagonal row0{h64.diag.narrow(0, 0, 1), h64.upper.narrow(0, 0, 1), h64.lower.narrow(0, 0, 1)};
      oracle_bi = rbk::reference::bk_core_diagonal_dense(row0, z, BkContext::Bidirectional);
      // The causal oracle costs O(N^4): keep it to small N.
      if (N <= 256) oracle_causal = rbk::reference::bk_core_diagonal_dense(row0, z, BkContext::Causal);
    }
    for (const auto& m : all_modes()) {
      if (std::find(wanted.begin(), wanted.end(), m.name) == wanted.end()) continue;
      nlohmann::json row = {{"mode", m.name}, {"n", N}, {"batch", B}};
      try {
        const rbk::Tridiagonal h = rbk::laplacian_with_potential(v.to(m.dtype));
        Tensor G;
        const auto t = rbk::time_repeated([&] { G = rbk::bk_core_diagonal(h, z, m.forward, m.context); }, 1, repeats);
        const Tensor& ref = m.context == BkContext::Causal ? ref_causal : ref_bi;
        const Tensor ri = torch::view_as_real(G);
        const double nonfinite = 1.0 - torch::isfinite(ri).all(-1).to(torch::kDouble).mean().item<double>();
        const double zero = (G.abs() == 0).to(torch::kDouble).mean().item<double>();
        const double err = max_rel_error(G, ref);
        double err_oracle = std::numeric_limits<double>::quiet_NaN();
        const Tensor& oracle = m.context == BkContext::Causal ? oracle_causal : oracle_bi;
        if (oracle.defined()) err_oracle = max_rel_error(G.narrow(0, 0, 1), oracle);
        row.update({{"status", "ok"},
                    {"time_median_s", t.median_s},
                    {"time_min_s", t.min_s},
                    {"repeats", t.repeats},
                    {"ns_per_element", 1e9 * t.median_s / double(B * N)},
                    {"max_rel_error_vs_fp64", number_or_null(err)},
                    {"max_rel_error_vs_oracle", number_or_null(err_oracle)},
                    {"nonfinite_fraction", nonfinite},
                    {"zero_fraction", zero}});
        auto& s = series[m.name];
        s.n.push_back(double(N));
        s.err.push_back(std::isfinite(err) ? err : std::numeric_limits<double>::quiet_NaN());
        s.err_oracle.push_back(err_oracle);
        s.zero.push_back(zero);
        s.nonfinite.push_back(nonfinite);
        s.time.push_back(t.median_s);
        s.time_min.push_back(t.min_s);
        std::printf("[bk_numerics] N=2^%-2lld %-24s %9.3f ms  err_vs_fp64 %-10.3g oracle %-10.3g nonfinite %.3f zero %.3f\n",
                    (long long)k, m.name.c_str(), 1e3 * t.median_s, err, err_oracle, nonfinite, zero);
        std::fflush(stdout);
      } catch (const std::exception& e) {
        row.update({{"status", "error"}, {"message", e.what()}});
        std::printf("[bk_numerics] N=2^%lld %s: error %s\n", (long long)k, m.name.c_str(), e.what());
      }
      out.rows.push_back(row);
    }
  }

  nlohmann::json modes = nlohmann::json::object();
  for (const auto& [name, s] : series) {
    nlohmann::json j;
    j["first_n_nonfinite"] = nullptr;
    j["first_n_all_zero"] = nullptr;
    double max_err = 0, max_err_oracle = -1;
    bool any_nonfinite = false, accurate_so_far = true;
    int64_t accurate_max_n = 0;
    std::vector<double> fit_n, fit_t;
    for (size_t i = 0; i < s.n.size(); ++i) {
      if (s.nonfinite[i] > 0 && j["first_n_nonfinite"].is_null()) j["first_n_nonfinite"] = int64_t(s.n[i]);
      if (s.zero[i] == 1.0 && j["first_n_all_zero"].is_null()) j["first_n_all_zero"] = int64_t(s.n[i]);
      any_nonfinite = any_nonfinite || !std::isfinite(s.err[i]);
      if (std::isfinite(s.err[i])) max_err = std::max(max_err, s.err[i]);
      if (std::isfinite(s.err_oracle[i])) max_err_oracle = std::max(max_err_oracle, s.err_oracle[i]);
      accurate_so_far = accurate_so_far && std::isfinite(s.err[i]) && s.err[i] <= kAccurateRelError;
      if (accurate_so_far) accurate_max_n = int64_t(s.n[i]);
      if (s.n[i] >= kFitMinN) {
        fit_n.push_back(s.n[i]);
        fit_t.push_back(s.time_min[i]);
      }
    }
    j["max_rel_error_vs_fp64"] = any_nonfinite ? nlohmann::json(nullptr) : nlohmann::json(max_err);
    j["max_rel_error_vs_oracle"] = max_err_oracle < 0 ? nlohmann::json(nullptr) : nlohmann::json(max_err_oracle);
    j["finite_accurate_max_n"] = accurate_max_n;
    j["time_exponent"] = fit_n.size() >= 2 ? nlohmann::json(rbk::fit_power_law_exponent(fit_n, fit_t)) : nlohmann::json(nullptr);
    j["zero_fraction_at_max_n"] = s.zero.back();
    j["nonfinite_fraction_at_max_n"] = s.nonfinite.back();
    modes[name] = j;

    std::vector<int64_t> n_int(s.n.begin(), s.n.end());
    out.arrays.push_back(rbk::make_int_array(name + "/n", n_int, "1", "sequence length N"));
    out.arrays.push_back(rbk::make_array(name + "/max_rel_error_vs_fp64", s.err, "1",
                                         "max_i |G_i - G_ref_i| / |G_ref_i| vs the fp64 stable path; NaN = non-finite output"));
    out.arrays.push_back(rbk::make_array(name + "/max_rel_error_vs_oracle", s.err_oracle, "1",
                                         "same vs the dense complex128 oracle (batch row 0); NaN = not computed"));
    out.arrays.push_back(rbk::make_array(name + "/zero_fraction", s.zero, "1", "fraction of outputs exactly 0"));
    out.arrays.push_back(rbk::make_array(name + "/nonfinite_fraction", s.nonfinite, "1", "fraction of outputs NaN/Inf"));
    out.arrays.push_back(rbk::make_array(name + "/time_s", s.time, "s", "median wall time of one (B, N) call"));
    out.arrays.push_back(rbk::make_array(name + "/time_min_s", s.time_min, "s", "fastest repetition of one (B, N) call"));
  }
  const int sweeps = static_cast<int>(cfg.get_int("timing_sweeps"));
  if (sweeps > 0 && modes.contains("stable_fp32"))
    out.summary["time_fit"] = bk_numerics::linear_time_sample(kmin, kmax, B, vmin, vmax, z, sweeps, repeats, modes["stable_fp32"], out);
  out.summary["modes"] = modes;
  out.summary["max_n"] = int64_t(1) << kmax;
  out.summary["accurate_rel_error_threshold"] = kAccurateRelError;
  const int64_t ind_log2 = cfg.get_int("independent_n_log2");
  out.summary["independent_check"] = ind_log2 > 0 ? bk_numerics::independent_check(ind_log2, out) : nlohmann::json(nullptr);
  std::printf("[bk_numerics] gradient checks (N=%lld, %lld draws)\n", (long long)cfg.get_int("grad_n"),
              (long long)cfg.get_int("grad_draws"));
  out.summary["gradient"] = gradient_checks(cfg);
  std::printf("[bk_numerics] %s\n", out.summary["gradient"].dump().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  rbk::ExperimentSpec spec{"bk_numerics", {"C01", "C02", "C03"}, "BK-Core accuracy, overflow and O(N) scaling per forward mode", {}};
  spec.schema.add_int("batch", 1, 1024, "rows B of each (B, N) call")
      .add_int("n_log2_min", 1, 24, "smallest N = 2^k")
      .add_int("n_log2_max", 1, 24, "largest N = 2^k")
      .add_int("oracle_max_n", 0, 4096, "compare with the dense complex128 oracle up to this N (O(N^3))")
      .add_int("repeats", 1, 1000, "timed repetitions per point (median reported)")
      .add_real("v_min", -10, 10, "potential v ~ U[v_min, v_max]")
      .add_real("v_max", -10, 10, "potential v ~ U[v_min, v_max]")
      .add_real("z_re", -10, 10, "Re z")
      .add_real("z_im", 1e-6, 10, "Im z (> 0)")
      .add_string_list("modes", mode_names(), "forward modes to sweep")
      .add_int("grad_n", 1, 4096, "N for the gradient cosines (audit §1.4 uses 16)")
      .add_int("grad_draws", 1, 100000, "random draws averaged for the gradient cosines")
      .add_int("timing_sweeps", 0, 100, "interleaved repeats of the stable fp32 timing sweep (one time exponent each; 0 = none)")
      .add_int("independent_n_log2", 0, 24, "N = 2^k of the check against the binary128 continuant reference (0 = none)")
      .add_int("threads", 0, 256, "CPU threads (0 = all cores); 1 for timings of record on a shared machine");
  return rbk::run_experiment(argc, argv, spec, run);
}
