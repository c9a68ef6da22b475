// exp_bk_numerics, part 2 (see independent_check.h).
#include "independent_check.h"

#include "reference/bk_core_continuant.h"
#include "rbk/bk_core.h"
#include "rbk/timing.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

namespace bk_numerics {

using torch::Tensor;

namespace {

nlohmann::json number_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

// Max |got - ref| / |ref| over all entries; +inf if any entry of got is non-finite.
double max_rel_error(const Tensor& got, const Tensor& ref) {
  const Tensor g = got.to(torch::kComplexDouble);
  if (!torch::isfinite(torch::view_as_real(g)).all().item<bool>()) return std::numeric_limits<double>::infinity();
  return ((g - ref).abs() / ref.abs()).max().item<double>();
}

struct IndependentCase {
  const char* potential;  // "small" |v| <= 1/8, "unit" |v| <= 1 (the model's range), "large" |v| <= 10
  double v_half_width;
  double z_re, z_im;
  const char* where;  // Re z relative to the spectrum of H0 + diag(v): "inside" or "outside"
};

// Im z from 1/128 (~1e-2, the hardest: G is least damped) to 1 (the model's z); Re z inside the
// spectrum ([-4 - |v|, |v|]) and beyond its edge. Every z and every v is exactly representable in
// fp32, so the fp64 path, the fp32 path and the reference see the same H (the fp32 path still
// rounds a = -2 + v and its own arithmetic, which is what its error measures).
constexpr IndependentCase kCases[] = {
    {"small", 0.125, -2.0, 1.0 / 128, "inside"}, {"small", 0.125, -2.0, 1.0, "inside"},
    {"small", 0.125, 1.0, 0.125, "outside"},     {"unit", 1.0, 0.0, 1.0, "inside"},
    {"unit", 1.0, -2.0, 1.0 / 128, "inside"},    {"unit", 1.0, 3.0, 0.125, "outside"},
    {"large", 10.0, 0.0, 1.0, "inside"},         {"large", 10.0, -5.0, 1.0 / 128, "inside"},
    {"large", 10.0, 12.0, 0.125, "outside"},
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

nlohmann::json independent_check(int64_t n_log2, rbk::ExperimentOutput& out) {
  const int64_t N = int64_t(1) << n_log2;
  double max64 = 0, max32 = 0, max_mismatch = 0;
  nlohmann::json case_rows = nlohmann::json::array();
  for (const IndependentCase& c : kCases) {
    const c10::complex<double> z(c.z_re, c.z_im);
    // Draw in fp64, keep only fp32-representable values (see kCases).
    const Tensor v32 = ((torch::rand({1, N}, torch::kDouble) * 2 - 1) * c.v_half_width).to(torch::kFloat);
    const Tensor v64 = v32.to(torch::kDouble);
    const auto t0 = std::chrono::steady_clock::now();
    const auto ref = rbk::reference::bk_core_diagonal_continuant(rbk::laplacian_with_potential(v64), z);
    const double ref_time = seconds_since(t0);
    const Tensor g64 = rbk::bk_core_diagonal(rbk::laplacian_with_potential(v64), z);
    const Tensor g32 = rbk::bk_core_diagonal(rbk::laplacian_with_potential(v32), z);
    const double e64 = max_rel_error(g64, ref.diag), e32 = max_rel_error(g32, ref.diag);
    const double mismatch = ref.det_mismatch.max().item<double>();
    max64 = std::max(max64, e64);  // +inf (non-finite output) propagates and is written as null
    max32 = std::max(max32, e32);
    max_mismatch = std::max(max_mismatch, mismatch);
    nlohmann::json row = {{"n", N},
                          {"potential", c.potential},
                          {"v_min", -c.v_half_width},
                          {"v_max", c.v_half_width},
                          {"z_re", c.z_re},
                          {"z_im", c.z_im},
                          {"re_z_vs_spectrum", c.where},
                          {"max_rel_error_fp64", number_or_null(e64)},
                          {"max_rel_error_fp32", number_or_null(e32)},
                          {"reference_det_mismatch", number_or_null(mismatch)},
                          {"reference_time_s", ref_time}};
    case_rows.push_back(row);
    row["mode"] = "independent_check";
    row["status"] = "ok";
    out.rows.push_back(row);
    std::printf("[bk_numerics] independent N=2^%lld %-5s z=%g%+gi: fp64 %.3e fp32 %.3e (det mismatch %.1e, ref %.2f s)\n",
                (long long)n_log2, c.potential, c.z_re, c.z_im, e64, e32, mismatch, ref_time);
    std::fflush(stdout);
  }
  return {{"reference",
           "G_ii = theta_{i-1} phi_{i+1} / det(H - zI) from the leading and trailing minors' three-term "
           "recursions with exponent tracking, in binary128 (core/reference/bk_core_continuant.h); v and z "
           "fp32-representable so every path sees the same H"},
          {"precision_bits", rbk::reference::continuant_precision_bits()},
          {"max_n", N},
          {"cases", int64_t(case_rows.size())},
          {"max_rel_error_fp64", number_or_null(max64)},
          {"max_rel_error_fp32", number_or_null(max32)},
          {"max_reference_det_mismatch", number_or_null(max_mismatch)},
          {"rows", case_rows}};
}

nlohmann::json linear_time_sample(int64_t kmin, int64_t kmax, int64_t B, double vmin, double vmax,
                                  c10::complex<double> z, int sweeps, int calls, nlohmann::json& stable_fp32,
                                  rbk::ExperimentOutput& out) {
  std::vector<rbk::Tridiagonal> inputs;
  std::vector<double> ns;
  for (int64_t k = kmin; k <= kmax; ++k) {
    const int64_t N = int64_t(1) << k;
    inputs.push_back(rbk::laplacian_with_potential((torch::rand({B, N}, torch::kDouble) * (vmax - vmin) + vmin).to(torch::kFloat)));
    ns.push_back(double(N));
  }
  // times[s][j]: sweep s, size ns[j]. Sweeps run one after the other over all sizes, so a burst of
  // load from other processes lands in one sweep's points rather than in every point of one size.
  std::vector<std::vector<double>> times(sweeps, std::vector<double>(ns.size()));
  for (int s = 0; s < sweeps; ++s) {
    for (size_t j = 0; j < ns.size(); ++j) {
      Tensor G;
      const auto t = rbk::time_repeated([&] { G = rbk::bk_core_diagonal(inputs[j], z); }, 0, calls);
      times[s][j] = t.min_s;
      out.rows.push_back({{"mode", "timing_sweep_stable_fp32"}, {"status", "ok"}, {"sweep", s}, {"n", int64_t(ns[j])},
                          {"batch", B}, {"calls", calls}, {"time_min_s", t.min_s}, {"time_median_s", t.median_s}});
    }
  }
  nlohmann::json repeats = nlohmann::json::array();
  for (int s = 0; s < sweeps; ++s) {
    std::vector<double> fn, ft;
    for (size_t j = 0; j < ns.size(); ++j)
      if (ns[j] >= double(kFitMinN)) {
        fn.push_back(ns[j]);
        ft.push_back(times[s][j]);
      }
    if (fn.size() >= 2) repeats.push_back(rbk::fit_power_law_exponent(fn, ft));
  }
  std::vector<double> med;
  for (size_t j = 0; j < ns.size(); ++j) {
    std::vector<double> col;
    for (int s = 0; s < sweeps; ++s) col.push_back(times[s][j]);
    med.push_back(rbk::median(col));
  }
  stable_fp32["time_exponent_repeats"] = repeats.empty() ? nlohmann::json(nullptr) : repeats;
  stable_fp32["time_exponent_full_range"] =
      ns.size() >= 2 ? nlohmann::json(rbk::fit_power_law_exponent(ns, med)) : nlohmann::json(nullptr);
  std::printf("[bk_numerics] linear-time sample (%d sweeps): exponents over N >= %lld %s, full range %s\n", sweeps,
              (long long)kFitMinN, stable_fp32["time_exponent_repeats"].dump().c_str(),
              stable_fp32["time_exponent_full_range"].dump().c_str());
  return {{"n_min", kFitMinN},
          {"n_max", int64_t(1) << kmax},
          {"repeats", sweeps},
          {"full_range_n_min", int64_t(1) << kmin},
          {"calls_per_point", calls},
          {"point", "fastest of calls_per_point calls of one (batch, N) stable fp32 forward, one thread"},
          {"full_range_point", "median over the sweeps of each N's point"}};
}

}  // namespace bk_numerics
