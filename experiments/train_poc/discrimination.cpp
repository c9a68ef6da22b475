#include "discrimination.h"

#include <boost/math/distributions/students_t.hpp>

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace rbk::train_poc {

SeedInterval seed_interval(const std::vector<double>& x, double level) {
  if (!(level > 0.0 && level < 1.0)) throw std::invalid_argument("seed_interval: level must be in (0, 1)");
  SeedInterval r;
  double sum = 0.0;
  for (double v : x)
    if (std::isfinite(v)) {
      sum += v;
      ++r.n;
    }
  r.all_finite = !x.empty() && r.n == x.size();
  if (r.n == 0) {
    r.mean = r.lo = r.hi = NAN;
    return r;
  }
  r.mean = sum / static_cast<double>(r.n);
  r.lo = r.hi = r.mean;
  if (!r.all_finite || r.n < 2) return r;
  double ss = 0.0;
  for (double v : x) ss += (v - r.mean) * (v - r.mean);
  const double sd = std::sqrt(ss / static_cast<double>(r.n - 1));
  boost::math::students_t dist(static_cast<double>(r.n - 1));
  const double t_crit = boost::math::quantile(boost::math::complement(dist, (1.0 - level) / 2.0));
  const double half = t_crit * sd / std::sqrt(static_cast<double>(r.n));
  r.lo = r.mean - half;
  r.hi = r.mean + half;
  r.has_interval = true;
  return r;
}

Discrimination judge_discrimination(const std::vector<double>& ratios, double margin, double level) {
  if (!(margin >= 0.0 && margin < 1.0)) throw std::invalid_argument("judge_discrimination: margin must be in [0, 1)");
  Discrimination d;
  d.margin = margin;
  d.threshold = 1.0 - margin;
  d.ratio = seed_interval(ratios, level);
  char buf[512];
  if (ratios.size() < 2) {
    std::snprintf(buf, sizeof buf,
                  "only %zu seed(s): no interval over seeds, so this run cannot tell architectures apart "
                  "(n_seeds >= 2 needed, 3 or more meant)", ratios.size());
    d.reason = buf;
  } else if (!d.ratio.all_finite) {
    std::snprintf(buf, sizeof buf,
                  "%zu of %zu seeds have no finite transformer/bigram test PPL ratio (a run diverged, failed or "
                  "the transformer was not trained): this run cannot tell architectures apart",
                  ratios.size() - d.ratio.n, ratios.size());
    d.reason = buf;
  } else if (!(d.ratio.hi < d.threshold)) {
    std::snprintf(buf, sizeof buf,
                  "the training budget cannot tell architectures apart: transformer_over_bigram_test_ppl over %zu "
                  "seeds has mean %.4f and 95%% interval [%.4f, %.4f], whose upper end is not below 1 - margin = "
                  "%.4f (the same-size Transformer does not beat the bigram by the %.1f%% margin)",
                  d.ratio.n, d.ratio.mean, d.ratio.lo, d.ratio.hi, d.threshold, 100.0 * margin);
    d.reason = buf;
  } else {
    d.discriminating = true;
  }
  return d;
}

std::vector<double> elementwise_ratio(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size())
    throw std::invalid_argument("elementwise_ratio: " + std::to_string(a.size()) + " vs " + std::to_string(b.size()) +
                                " values; pairs are matched by seed");
  std::vector<double> r(a.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    r[i] = (std::isfinite(a[i]) && std::isfinite(b[i]) && b[i] > 0.0) ? a[i] / b[i] : NAN;
  return r;
}

}  // namespace rbk::train_poc
