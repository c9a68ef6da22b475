// Statistics the claims ledger needs over multi-seed results (claim C21; seed 002 §4.6 says its
// comparisons are "paired t-tests with Bonferroni correction over 5 random seeds"):
//   * mean with a two-sided Student-t confidence interval,
//   * the paired t-test (one- or two-sided) on per-seed differences,
//   * Bonferroni adjustment of a p-value for a family of m comparisons.
// All distribution functions come from Boost.Math, so nothing here hand-rolls a CDF.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace rbk::validation {

// Confidence level of every interval the ledger prints. 95 % is what the seeds' "±" would most
// plausibly mean and what a reader expects; it is a named constant so it is printed, not assumed.
constexpr double kConfidenceLevel = 0.95;

struct MeanInterval {
  std::size_t n = 0;
  double mean = 0.0;
  double stddev = 0.0;        // sample standard deviation (n - 1); 0 when n == 1
  double lo = 0.0, hi = 0.0;  // Student-t interval; equal to mean when n == 1 (no spread known)
  bool has_interval = false;  // false when n < 2
};

// Throws std::invalid_argument on an empty sample or a non-finite value (a NaN seed must be
// reported as a failed row upstream, never averaged into a number).
MeanInterval mean_with_t_interval(const std::vector<double>& x, double level = kConfidenceLevel);

enum class Alternative { TwoSided, Less, Greater };  // H1 about mean(a - b)
Alternative parse_alternative(const std::string& s);   // "two_sided" | "less" | "greater"
std::string to_string(Alternative a);

struct PairedTTest {
  std::size_t n = 0;
  double mean_difference = 0.0;  // mean(a - b)
  double t = 0.0;
  double df = 0.0;
  double p = 1.0;                // unadjusted
};

// Paired t-test of a against b (same length >= 2, paired by index = seed). When every difference
// is identical the t statistic is infinite: p is then 0 if the sign agrees with the alternative
// (or the difference is non-zero for two_sided) and 1 otherwise, which is the limit of the test.
PairedTTest paired_t_test(const std::vector<double>& a, const std::vector<double>& b, Alternative alt);

// min(1, p * m): the Bonferroni family-wise adjustment for m comparisons (m >= 1).
double bonferroni(double p, std::size_t m);

}  // namespace rbk::validation
