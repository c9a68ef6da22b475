// Level-spacing statistics of a spectrum (claim C07, papers 000/001 Theorem 4 and Table 2).
// Two faces of one analysis:
//   compat    upstream's verify_gue_statistics (upstream-audit 4.3): all spacings divided by their
//             own mean, population std, fit_error = |mean - 1| + |std - 0.52|, verified < 0.3.
//   corrected unfolding by a smooth polynomial fit of the integrated density of states on a bulk
//             window, nearest-neighbour spacings, histogram, Kolmogorov-Smirnov against Poisson,
//             the GOE surmise (pi s/2) e^{-pi s^2/4} (the formula the papers print) and the GUE
//             surmise (32/pi^2) s^2 e^{-4 s^2/pi}; plus the spacing ratio <r~> (Atas et al. 2013),
//             which needs no unfolding.
// Also: the matrices the experiment studies (upstream's Laplacian H0, GOE/GUE samples).
#pragma once
#include <torch/torch.h>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace rbk {

// Reference values of <r~> = <min(s_n, s_{n-1}) / max(s_n, s_{n-1})>.
// Poisson 2 ln 2 - 1 exactly; GOE 0.5307 and GUE 0.5996 are the large-N numerical values of
// Atas, Bogomolny, Giraud, Roux, PRL 110, 084101 (2013), Table I.
constexpr double kRatioPoisson = 0.38629436111989057;
constexpr double kRatioGOE = 0.5307;
constexpr double kRatioGUE = 0.5996;
// Upstream's hard-coded "Wigner" target std (it is the GOE surmise std sqrt(4/pi - 1) = 0.5227).
constexpr double kCompatTargetStd = 0.52;
constexpr double kCompatTolerance = 0.3;

enum class SpacingLaw { Poisson, GOE, GUE };
std::string to_string(SpacingLaw law);

// Probability density and CDF of the reference spacing laws (unit mean).
double spacing_pdf(SpacingLaw law, double s);
double spacing_cdf(SpacingLaw law, double s);

struct CompatSpacingStats {
  double mean = 0, std = 0, fit_error = 0;
  bool verified = false;
};
// Upstream's metric on all eigenvalues (sorted here), no unfolding.
CompatSpacingStats compat_spacing_statistics(const torch::Tensor& eigenvalues);  // (N,) any real dtype

struct KsResult {
  double statistic = 0;  // sup |F_emp - F|
  double p_value = 0;    // asymptotic Kolmogorov distribution (Boost.Math), sqrt(n) D
};
// One-sample KS test of samples (any order) against a reference law.
KsResult ks_test(const std::vector<double>& samples, SpacingLaw law);

struct SpacingAnalysisOptions {
  double bulk_fraction = 0.8;   // central fraction of the sorted levels kept (edges dropped)
  int64_t unfold_degree = 9;    // polynomial degree of the smooth integrated DOS fit
  double hist_max = 4.0;        // histogram range [0, hist_max]
  int64_t hist_bins = 40;
};

struct SpacingAnalysis {
  int64_t n_levels = 0;        // levels in the bulk window
  std::vector<double> spacings;  // unfolded bulk nearest-neighbour spacings
  double mean = 0, std = 0;
  double ratio_mean = 0;         // <r~> on the bulk window (raw levels, no unfolding)
  int64_t n_ratios = 0;
  KsResult ks_poisson, ks_goe, ks_gue;
  std::vector<double> hist_density;  // hist_bins values, normalised as a density
  // The law whose KS statistic is smallest, and the law whose <r~> is nearest.
  SpacingLaw ks_best = SpacingLaw::Poisson;
  SpacingLaw ratio_best = SpacingLaw::Poisson;
  double unfold_rms = 0;  // rms of (staircase - fit) over the bulk, in units of levels
};

// Corrected analysis of one spectrum.
SpacingAnalysis analyse_spacings(const torch::Tensor& eigenvalues,  // (N,) real, any order
                                 const SpacingAnalysisOptions& opt);

// Pools the unfolded spacings of several spectra of one ensemble (ratios averaged by count).
SpacingAnalysis pool_spacing_analyses(const std::vector<SpacingAnalysis>& parts, const SpacingAnalysisOptions& opt);

// Fills the derived fields (mean, std, KS, histogram, best laws) from spacings and ratio_mean.
void finish_spacing_analysis(SpacingAnalysis& a, const SpacingAnalysisOptions& opt);

// Spacing ratios r~_n over consecutive sorted levels (0/0 pairs skipped).
std::vector<double> spacing_ratios(const std::vector<double>& sorted_levels);

// Upstream's H0: dense symmetric Laplacian stencil, diagonal -2, off-diagonals +1 (upstream-audit 4.3).
torch::Tensor laplacian_matrix(int64_t n);  // -> (N, N) float64

// Drawn with std::mt19937_64 so a seed gives the same matrix under LibTorch 1.13 and 2.11.
// GOE: (A + A^T)/2 with A_ij ~ N(0,1) real. GUE: (A + A^H)/2 with A_ij ~ N(0,1/2) + i N(0,1/2).
torch::Tensor sample_goe(int64_t n, std::mt19937_64& gen);  // -> (N, N) float64
torch::Tensor sample_gue(int64_t n, std::mt19937_64& gen);  // -> (N, N) complex128

// Eigenvalues of a Hermitian matrix via LAPACK, ascending, in the matrix's real dtype.
torch::Tensor hermitian_eigenvalues(const torch::Tensor& h);  // (N, N) -> (N,)

}  // namespace rbk
