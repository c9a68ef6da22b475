// Level-spacing statistics (claim C07). See rbk/spectral_statistics.h.
#include "rbk/spectral_statistics.h"

#include <boost/math/distributions/kolmogorov_smirnov.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace rbk {

namespace {
constexpr double kPi = 3.14159265358979323846;

std::vector<double> to_sorted_vector(const torch::Tensor& eigenvalues) {
  TORCH_CHECK(eigenvalues.dim() == 1, "spectral statistics: eigenvalues must be 1-D, got ", eigenvalues.sizes());
  TORCH_CHECK(!eigenvalues.is_complex(), "spectral statistics: eigenvalues must be real");
  auto e = eigenvalues.to(torch::kFloat64).contiguous();
  std::vector<double> v(e.data_ptr<double>(), e.data_ptr<double>() + e.numel());
  for (double x : v)
    if (!std::isfinite(x)) throw std::invalid_argument("spectral statistics: non-finite eigenvalue");
  std::sort(v.begin(), v.end());
  return v;
}

void mean_std(const std::vector<double>& v, double& mean, double& sd) {
  mean = sd = 0.0;
  if (v.empty()) return;
  mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double ss = 0.0;
  for (double x : v) ss += (x - mean) * (x - mean);
  sd = std::sqrt(ss / static_cast<double>(v.size()));  // population std, as numpy's default
}

// Legendre polynomials P_0..P_d at t in [-1, 1] (three-term recurrence: well conditioned).
void legendre_row(double t, int64_t d, double* row) {
  row[0] = 1.0;
  if (d >= 1) row[1] = t;
  for (int64_t k = 2; k <= d; ++k)
    row[k] = ((2.0 * k - 1.0) * t * row[k - 1] - (k - 1.0) * row[k - 2]) / static_cast<double>(k);
}

// Solves the small dense system A x = b in place (Gaussian elimination, partial pivoting).
std::vector<double> solve_dense(std::vector<double> a, std::vector<double> b, int64_t m) {
  for (int64_t c = 0; c < m; ++c) {
    int64_t piv = c;
    for (int64_t r = c + 1; r < m; ++r)
      if (std::fabs(a[r * m + c]) > std::fabs(a[piv * m + c])) piv = r;
    if (a[piv * m + c] == 0.0) throw std::runtime_error("unfolding fit: singular normal equations");
    if (piv != c) {
      for (int64_t k = 0; k < m; ++k) std::swap(a[c * m + k], a[piv * m + k]);
      std::swap(b[c], b[piv]);
    }
    for (int64_t r = c + 1; r < m; ++r) {
      const double f = a[r * m + c] / a[c * m + c];
      for (int64_t k = c; k < m; ++k) a[r * m + k] -= f * a[c * m + k];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(m);
  for (int64_t r = m - 1; r >= 0; --r) {
    double s = b[r];
    for (int64_t k = r + 1; k < m; ++k) s -= a[r * m + k] * x[k];
    x[r] = s / a[r * m + r];
  }
  return x;
}
}  // namespace

std::string to_string(SpacingLaw law) {
  switch (law) {
    case SpacingLaw::Poisson: return "poisson";
    case SpacingLaw::GOE: return "goe";
    case SpacingLaw::GUE: return "gue";
  }
  return "?";
}

double spacing_pdf(SpacingLaw law, double s) {
  if (s < 0) return 0.0;
  switch (law) {
    case SpacingLaw::Poisson: return std::exp(-s);
    case SpacingLaw::GOE: return 0.5 * kPi * s * std::exp(-0.25 * kPi * s * s);
    case SpacingLaw::GUE: return 32.0 / (kPi * kPi) * s * s * std::exp(-4.0 * s * s / kPi);
  }
  return 0.0;
}

double spacing_cdf(SpacingLaw law, double s) {
  if (s <= 0) return 0.0;
  switch (law) {
    case SpacingLaw::Poisson: return -std::expm1(-s);
    case SpacingLaw::GOE: return -std::expm1(-0.25 * kPi * s * s);
    // Integral of (32/pi^2) t^2 e^{-4t^2/pi} from 0 to s, by parts.
    case SpacingLaw::GUE: return std::erf(2.0 * s / std::sqrt(kPi)) - 4.0 * s / kPi * std::exp(-4.0 * s * s / kPi);
  }
  return 0.0;
}

CompatSpacingStats compat_spacing_statistics(const torch::Tensor& eigenvalues) {
  const auto lev = to_sorted_vector(eigenvalues);
  CompatSpacingStats r;
  if (lev.size() < 2) throw std::invalid_argument("compat spacing statistics: need >= 2 eigenvalues");
  std::vector<double> s(lev.size() - 1);
  for (size_t i = 0; i + 1 < lev.size(); ++i) s[i] = lev[i + 1] - lev[i];
  double m = std::accumulate(s.begin(), s.end(), 0.0) / static_cast<double>(s.size());
  if (m > 1e-10)  // upstream's guard
    for (double& x : s) x /= m;
  mean_std(s, r.mean, r.std);
  r.fit_error = std::fabs(r.mean - 1.0) + std::fabs(r.std - kCompatTargetStd);
  r.verified = r.fit_error < kCompatTolerance;
  return r;
}

KsResult ks_test(const std::vector<double>& samples, SpacingLaw law) {
  if (samples.empty()) throw std::invalid_argument("ks_test: no samples");
  std::vector<double> x = samples;
  std::sort(x.begin(), x.end());
  const double n = static_cast<double>(x.size());
  double d = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double f = spacing_cdf(law, x[i]);
    d = std::max(d, std::max((i + 1) / n - f, f - i / n));
  }
  KsResult r;
  r.statistic = d;
  boost::math::kolmogorov_smirnov_distribution<double> dist(n);
  // The complement underflows to -0 for huge sqrt(n) D; a probability is never negative.
  r.p_value = std::max(0.0, boost::math::cdf(boost::math::complement(dist, d)));
  return r;
}

std::vector<double> spacing_ratios(const std::vector<double>& lev) {
  std::vector<double> r;
  for (size_t i = 1; i + 1 < lev.size(); ++i) {
    const double a = lev[i] - lev[i - 1], b = lev[i + 1] - lev[i];
    const double hi = std::max(a, b);
    if (hi > 0.0) r.push_back(std::min(a, b) / hi);
  }
  return r;
}

void finish_spacing_analysis(SpacingAnalysis& a, const SpacingAnalysisOptions& opt) {
  if (a.spacings.size() < 4) throw std::invalid_argument("spacing analysis: fewer than 4 bulk spacings");
  mean_std(a.spacings, a.mean, a.std);
  a.ks_poisson = ks_test(a.spacings, SpacingLaw::Poisson);
  a.ks_goe = ks_test(a.spacings, SpacingLaw::GOE);
  a.ks_gue = ks_test(a.spacings, SpacingLaw::GUE);
  a.hist_density.assign(static_cast<size_t>(opt.hist_bins), 0.0);
  const double w = opt.hist_max / static_cast<double>(opt.hist_bins);
  for (double s : a.spacings) {
    const auto b = static_cast<int64_t>(std::floor(s / w));
    if (b >= 0 && b < opt.hist_bins) a.hist_density[b] += 1.0;
  }
  for (double& h : a.hist_density) h /= (static_cast<double>(a.spacings.size()) * w);
  const std::pair<double, SpacingLaw> ks[3] = {{a.ks_poisson.statistic, SpacingLaw::Poisson},
                                               {a.ks_goe.statistic, SpacingLaw::GOE},
                                               {a.ks_gue.statistic, SpacingLaw::GUE}};
  a.ks_best = std::min_element(std::begin(ks), std::end(ks))->second;
  const std::pair<double, SpacingLaw> rr[3] = {{std::fabs(a.ratio_mean - kRatioPoisson), SpacingLaw::Poisson},
                                               {std::fabs(a.ratio_mean - kRatioGOE), SpacingLaw::GOE},
                                               {std::fabs(a.ratio_mean - kRatioGUE), SpacingLaw::GUE}};
  a.ratio_best = std::min_element(std::begin(rr), std::end(rr))->second;
}

SpacingAnalysis analyse_spacings(const torch::Tensor& eigenvalues, const SpacingAnalysisOptions& opt) {
  if (!(opt.bulk_fraction > 0.0 && opt.bulk_fraction <= 1.0))
    throw std::invalid_argument("spacing analysis: bulk_fraction must be in (0, 1]");
  const auto lev = to_sorted_vector(eigenvalues);
  const auto n = static_cast<int64_t>(lev.size());
  const auto drop = static_cast<int64_t>(std::floor(0.5 * (1.0 - opt.bulk_fraction) * static_cast<double>(n)));
  const int64_t i0 = drop, i1 = n - drop;  // bulk window [i0, i1)
  const int64_t m = i1 - i0;
  if (m < 8) throw std::invalid_argument("spacing analysis: bulk window holds fewer than 8 levels");
  SpacingAnalysis a;
  a.n_levels = m;
  // Too high a degree on few levels would follow the fluctuations it is meant to remove.
  const int64_t deg = std::max<int64_t>(1, std::min<int64_t>(opt.unfold_degree, m / 10));
  const double lo = lev[i0], hi = lev[i1 - 1];
  const double c = 0.5 * (lo + hi), hw = hi > lo ? 0.5 * (hi - lo) : 1.0;
  const int64_t p = deg + 1;
  std::vector<double> ata(p * p, 0.0), atb(p, 0.0), row(p);
  for (int64_t i = i0; i < i1; ++i) {
    legendre_row((lev[i] - c) / hw, deg, row.data());
    // Staircase at level i counts i + 1/2 levels below (midpoint of the jump).
    const double y = static_cast<double>(i) + 0.5;
    for (int64_t r = 0; r < p; ++r) {
      atb[r] += row[r] * y;
      for (int64_t k = 0; k < p; ++k) ata[r * p + k] += row[r] * row[k];
    }
  }
  const auto coef = solve_dense(ata, atb, p);
  std::vector<double> unfolded(m);
  double ss = 0.0;
  for (int64_t i = i0; i < i1; ++i) {
    legendre_row((lev[i] - c) / hw, deg, row.data());
    double v = 0.0;
    for (int64_t r = 0; r < p; ++r) v += coef[r] * row[r];
    unfolded[i - i0] = v;
    ss += (v - (static_cast<double>(i) + 0.5)) * (v - (static_cast<double>(i) + 0.5));
  }
  a.unfold_rms = std::sqrt(ss / static_cast<double>(m));
  a.spacings.resize(m - 1);
  for (int64_t i = 0; i + 1 < m; ++i) a.spacings[i] = unfolded[i + 1] - unfolded[i];
  std::vector<double> bulk(lev.begin() + i0, lev.begin() + i1);
  const auto r = spacing_ratios(bulk);
  a.n_ratios = static_cast<int64_t>(r.size());
  a.ratio_mean = r.empty() ? 0.0 : std::accumulate(r.begin(), r.end(), 0.0) / static_cast<double>(r.size());
  finish_spacing_analysis(a, opt);
  return a;
}

SpacingAnalysis pool_spacing_analyses(const std::vector<SpacingAnalysis>& parts, const SpacingAnalysisOptions& opt) {
  SpacingAnalysis a;
  double rsum = 0.0, ss = 0.0;
  for (const auto& p : parts) {
    a.spacings.insert(a.spacings.end(), p.spacings.begin(), p.spacings.end());
    a.n_levels += p.n_levels;
    a.n_ratios += p.n_ratios;
    rsum += p.ratio_mean * static_cast<double>(p.n_ratios);
    ss += p.unfold_rms * p.unfold_rms * static_cast<double>(p.n_levels);
  }
  a.ratio_mean = a.n_ratios > 0 ? rsum / static_cast<double>(a.n_ratios) : 0.0;
  a.unfold_rms = a.n_levels > 0 ? std::sqrt(ss / static_cast<double>(a.n_levels)) : 0.0;
  finish_spacing_analysis(a, opt);
  return a;
}

torch::Tensor laplacian_matrix(int64_t n) {
  TORCH_CHECK(n >= 2, "laplacian_matrix: N must be >= 2, got ", n);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto h = torch::diag(torch::full({n}, -2.0, f64));
  auto off = torch::ones({n - 1}, f64);
  return h + torch::diag(off, 1) + torch::diag(off, -1);
}

torch::Tensor sample_goe(int64_t n, std::mt19937_64& gen) {
  std::normal_distribution<double> g(0.0, 1.0);
  std::vector<double> a(static_cast<size_t>(n * n));
  for (double& x : a) x = g(gen);
  auto t = torch::tensor(a, torch::TensorOptions().dtype(torch::kFloat64)).reshape({n, n});
  return 0.5 * (t + t.transpose(0, 1));
}

torch::Tensor sample_gue(int64_t n, std::mt19937_64& gen) {
  std::normal_distribution<double> g(0.0, std::sqrt(0.5));
  std::vector<double> re(static_cast<size_t>(n * n)), im(static_cast<size_t>(n * n));
  for (size_t i = 0; i < re.size(); ++i) {
    re[i] = g(gen);
    im[i] = g(gen);
  }
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto t = torch::complex(torch::tensor(re, f64), torch::tensor(im, f64)).reshape({n, n});
  return 0.5 * (t + t.transpose(0, 1).conj());
}

torch::Tensor hermitian_eigenvalues(const torch::Tensor& h) {
  TORCH_CHECK(h.dim() == 2 && h.size(0) == h.size(1), "hermitian_eigenvalues: need a square matrix, got ", h.sizes());
  return torch::linalg_eigvalsh(h, "L");
}

}  // namespace rbk
