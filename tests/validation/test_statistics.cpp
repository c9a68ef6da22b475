// Statistics of the claims ledger (C21: mean with 95 % Student-t interval, paired t-test,
// Bonferroni) checked against closed forms that do not go through Boost: the Student-t CDF for
// 1 and 2 degrees of freedom, and a tabulated t quantile.
#include "rbk/validation/statistics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

using namespace rbk::validation;

namespace {

// Boost evaluates these to near machine precision; 1e-12 absolute leaves room for the
// few ulps of the closed forms' own arithmetic and nothing more.
constexpr double kClosedFormTol = 1e-12;
// t_{0.975, 4} from standard tables (8 significant digits), so the tolerance is the table's.
constexpr double kT975Df4 = 2.7764451;
constexpr double kTableTol = 1e-6;

double t_cdf_df1(double t) { return 0.5 + std::atan(t) / M_PI; }
double t_cdf_df2(double t) { return 0.5 + t / (2.0 * std::sqrt(2.0 + t * t)); }

}  // namespace

TEST(ValidationStatistics, MeanIntervalMatchesTabulatedQuantile) {
  const std::vector<double> x = {1.9, 2.1, 2.0, 2.2, 1.8};
  const MeanInterval m = mean_with_t_interval(x);
  const double sd = std::sqrt(0.025);
  const double half = kT975Df4 * sd / std::sqrt(5.0);
  std::printf("mean %.12g [%.12g, %.12g], expected half-width %.12g, got %.12g\n", m.mean, m.lo, m.hi, half,
              m.hi - m.mean);
  EXPECT_NEAR(m.mean, 2.0, 1e-15);
  EXPECT_NEAR(m.stddev, sd, 1e-15);
  EXPECT_NEAR(m.hi - m.mean, half, kTableTol);
  EXPECT_NEAR(m.mean - m.lo, half, kTableTol);
  EXPECT_TRUE(m.has_interval);
}

TEST(ValidationStatistics, SingleValueHasNoInterval) {
  const MeanInterval m = mean_with_t_interval({3.5});
  EXPECT_FALSE(m.has_interval);
  EXPECT_EQ(m.lo, 3.5);
  EXPECT_EQ(m.hi, 3.5);
}

TEST(ValidationStatistics, PairedTTestMatchesClosedFormCdf) {
  // Two pairs -> df = 1: p(less) = F1(t).
  const std::vector<double> a2 = {1.0, 2.5}, b2 = {1.7, 2.9};
  const PairedTTest r1 = paired_t_test(a2, b2, Alternative::Less);
  const double d0 = -0.7, d1 = -0.4, mean = (d0 + d1) / 2, sd = std::sqrt(((d0 - mean) * (d0 - mean) + (d1 - mean) * (d1 - mean)) / 1.0);
  const double t1 = mean / (sd / std::sqrt(2.0));
  std::printf("df=1: t %.12g (expected %.12g), p %.12g (expected %.12g)\n", r1.t, t1, r1.p, t_cdf_df1(t1));
  EXPECT_NEAR(r1.t, t1, 1e-12);
  EXPECT_NEAR(r1.p, t_cdf_df1(t1), kClosedFormTol);

  // Three pairs -> df = 2, all three alternatives.
  const std::vector<double> a3 = {3.0, 2.0, 4.5}, b3 = {2.5, 2.2, 3.6};
  const PairedTTest g = paired_t_test(a3, b3, Alternative::Greater);
  const PairedTTest l = paired_t_test(a3, b3, Alternative::Less);
  const PairedTTest two = paired_t_test(a3, b3, Alternative::TwoSided);
  std::printf("df=2: t %.12g, p_greater %.12g (expected %.12g), p_two %.12g\n", g.t, g.p, 1 - t_cdf_df2(g.t), two.p);
  EXPECT_EQ(g.df, 2.0);
  EXPECT_NEAR(g.p, 1.0 - t_cdf_df2(g.t), kClosedFormTol);
  EXPECT_NEAR(l.p, t_cdf_df2(l.t), kClosedFormTol);
  EXPECT_NEAR(two.p, 2.0 * (1.0 - t_cdf_df2(std::fabs(two.t))), kClosedFormTol);
}

TEST(ValidationStatistics, DegenerateDifferencesTakeTheLimit) {
  const PairedTTest r = paired_t_test({1.0, 2.0, 3.0}, {2.0, 3.0, 4.0}, Alternative::Less);
  std::printf("constant difference: t %g p %g\n", r.t, r.p);
  EXPECT_EQ(r.p, 0.0);
  EXPECT_EQ(paired_t_test({1.0, 2.0, 3.0}, {2.0, 3.0, 4.0}, Alternative::Greater).p, 1.0);
  EXPECT_EQ(paired_t_test({1.0, 2.0}, {1.0, 2.0}, Alternative::TwoSided).p, 1.0);
}

TEST(ValidationStatistics, BonferroniAndBadInput) {
  EXPECT_DOUBLE_EQ(bonferroni(0.01, 3), 0.03);
  EXPECT_DOUBLE_EQ(bonferroni(0.5, 3), 1.0);
  EXPECT_THROW(bonferroni(0.1, 0), std::invalid_argument);
  EXPECT_THROW(mean_with_t_interval({}), std::invalid_argument);
  EXPECT_THROW(mean_with_t_interval({1.0, std::numeric_limits<double>::quiet_NaN()}), std::invalid_argument);
  EXPECT_THROW(paired_t_test({1.0, 2.0}, {1.0}, Alternative::Less), std::invalid_argument);
  EXPECT_THROW(paired_t_test({1.0}, {1.0}, Alternative::Less), std::invalid_argument);
  EXPECT_THROW(parse_alternative("smaller"), std::invalid_argument);
}
