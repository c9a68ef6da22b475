// Student-t intervals, paired t-tests and Bonferroni adjustment for the claims ledger (C21).
#include "rbk/validation/statistics.h"

#include <boost/math/distributions/students_t.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace rbk::validation {

namespace {

void require_finite(const std::vector<double>& x, const char* what) {
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) {
      throw std::invalid_argument(std::string(what) + ": element " + std::to_string(i) +
                                  " is not finite; a non-finite seed must be reported, not averaged");
    }
  }
}

}  // namespace

MeanInterval mean_with_t_interval(const std::vector<double>& x, double level) {
  if (x.empty()) throw std::invalid_argument("mean_with_t_interval: empty sample");
  if (!(level > 0.0 && level < 1.0)) throw std::invalid_argument("mean_with_t_interval: level must be in (0, 1)");
  require_finite(x, "mean_with_t_interval");
  MeanInterval r;
  r.n = x.size();
  double sum = 0.0;
  for (double v : x) sum += v;
  r.mean = sum / static_cast<double>(r.n);
  r.lo = r.hi = r.mean;
  if (r.n < 2) return r;
  double ss = 0.0;
  for (double v : x) ss += (v - r.mean) * (v - r.mean);
  r.stddev = std::sqrt(ss / static_cast<double>(r.n - 1));
  boost::math::students_t dist(static_cast<double>(r.n - 1));
  const double t_crit = boost::math::quantile(boost::math::complement(dist, (1.0 - level) / 2.0));
  const double half = t_crit * r.stddev / std::sqrt(static_cast<double>(r.n));
  r.lo = r.mean - half;
  r.hi = r.mean + half;
  r.has_interval = true;
  return r;
}

Alternative parse_alternative(const std::string& s) {
  if (s == "two_sided") return Alternative::TwoSided;
  if (s == "less") return Alternative::Less;
  if (s == "greater") return Alternative::Greater;
  throw std::invalid_argument("alternative '" + s + "' is not one of two_sided, less, greater");
}

std::string to_string(Alternative a) {
  switch (a) {
    case Alternative::TwoSided: return "two_sided";
    case Alternative::Less: return "less";
    case Alternative::Greater: return "greater";
  }
  return "?";
}

PairedTTest paired_t_test(const std::vector<double>& a, const std::vector<double>& b, Alternative alt) {
  if (a.size() != b.size()) {
    throw std::invalid_argument("paired_t_test: samples differ in length (" + std::to_string(a.size()) + " vs " +
                                std::to_string(b.size()) + "); pairs are matched by seed");
  }
  if (a.size() < 2) throw std::invalid_argument("paired_t_test: needs at least 2 pairs, got " + std::to_string(a.size()));
  require_finite(a, "paired_t_test a");
  require_finite(b, "paired_t_test b");
  std::vector<double> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  const MeanInterval m = mean_with_t_interval(d);
  PairedTTest r;
  r.n = d.size();
  r.df = static_cast<double>(r.n - 1);
  r.mean_difference = m.mean;
  if (m.stddev == 0.0) {
    // Degenerate: no spread. Take the limit of the statistic instead of dividing by zero.
    const double inf = std::numeric_limits<double>::infinity();
    r.t = m.mean > 0 ? inf : (m.mean < 0 ? -inf : 0.0);
    bool agrees = false;
    if (alt == Alternative::TwoSided) agrees = m.mean != 0.0;
    if (alt == Alternative::Less) agrees = m.mean < 0.0;
    if (alt == Alternative::Greater) agrees = m.mean > 0.0;
    r.p = agrees ? 0.0 : 1.0;
    return r;
  }
  r.t = m.mean / (m.stddev / std::sqrt(static_cast<double>(r.n)));
  boost::math::students_t dist(r.df);
  switch (alt) {
    case Alternative::TwoSided:
      r.p = 2.0 * boost::math::cdf(boost::math::complement(dist, std::fabs(r.t)));
      break;
    case Alternative::Less:
      r.p = boost::math::cdf(dist, r.t);
      break;
    case Alternative::Greater:
      r.p = boost::math::cdf(boost::math::complement(dist, r.t));
      break;
  }
  r.p = std::min(1.0, std::max(0.0, r.p));
  return r;
}

double bonferroni(double p, std::size_t m) {
  if (m < 1) throw std::invalid_argument("bonferroni: family size must be >= 1");
  return std::min(1.0, p * static_cast<double>(m));
}

}  // namespace rbk::validation
