// The divergence rule (divergence.h) on synthetic loss sequences: non-finite values, a forgiven
// spike, a sustained rise diverging at the right step, factor 0, the running minimum, and resume.
#include "rbk/divergence.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

namespace rbk {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Feeds losses at steps 10, 20, 30, ... and returns the index of the first diverged one (-1: none).
int first_divergence(DivergenceMonitor& m, const std::vector<double>& losses) {
  for (size_t i = 0; i < losses.size(); ++i)
    if (m.observe(static_cast<int64_t>(10 * (i + 1)), losses[i])) return static_cast<int>(i);
  return -1;
}

TEST(Divergence, NanLossDivergesAtItsStepEvenWithRuleTwoOff) {
  DivergenceMonitor m({0.0, 3});
  EXPECT_EQ(first_divergence(m, {5.0, 4.0, kNaN, 3.0}), 2);
  EXPECT_EQ(m.divergence_step(), 30);
  EXPECT_NE(m.reason().find("step 30"), std::string::npos) << m.reason();
  EXPECT_NE(m.reason().find("non-finite loss"), std::string::npos) << m.reason();
}

TEST(Divergence, PositiveInfinityLossDiverges) {
  DivergenceMonitor m({2.0, 5});
  EXPECT_EQ(first_divergence(m, {5.0, kInf}), 1);
  EXPECT_EQ(m.divergence_step(), 20);
}

TEST(Divergence, NonFiniteGradientNormDiverges) {
  DivergenceMonitor m({0.0, 3});
  EXPECT_FALSE(m.observe(1, 5.0, 0.3));
  EXPECT_TRUE(m.observe(2, 5.0, kNaN));
  EXPECT_EQ(m.divergence_step(), 2);
  EXPECT_NE(m.reason().find("gradient"), std::string::npos) << m.reason();

  DivergenceMonitor per_step({2.0, 3});
  EXPECT_FALSE(per_step.check_finite(7, 5.0, 1.0));
  EXPECT_TRUE(per_step.check_finite(8, 5.0, -kInf));
  EXPECT_EQ(per_step.divergence_step(), 8);
}

TEST(Divergence, SpikeThatRecoversWithinPatienceIsForgiven) {
  DivergenceMonitor m({2.0, 3});
  // Minimum 4; two evaluations above 8, then back to 5 (<= 8): the count restarts.
  EXPECT_EQ(first_divergence(m, {6.0, 4.0, 9.0, 12.0, 5.0, 9.0, 9.5, 4.5}), -1);
  EXPECT_FALSE(m.diverged());
  EXPECT_EQ(m.consecutive_above(), 0);
  EXPECT_TRUE(m.reason().empty());
}

TEST(Divergence, SustainedRiseDivergesAtThePatienceThEvaluation) {
  DivergenceMonitor m({2.0, 3});
  // Minimum 3 (step 20); 6.0 is not above 2 x 3 (strictly above counts); 6.5 at steps 40, 50, 60.
  EXPECT_EQ(first_divergence(m, {5.0, 3.0, 6.0, 6.5, 7.0, 8.0, 9.0}), 5);
  EXPECT_EQ(m.divergence_step(), 60);
  EXPECT_NE(m.reason().find("since step 40"), std::string::npos) << m.reason();
  EXPECT_NE(m.reason().find("3 consecutive"), std::string::npos) << m.reason();
  // Sticky: later observations neither clear nor move it.
  EXPECT_TRUE(m.observe(70, 1.0));
  EXPECT_EQ(m.divergence_step(), 60);
}

TEST(Divergence, FactorZeroOnlyNonFiniteDiverges) {
  DivergenceMonitor m({0.0, 1});
  EXPECT_EQ(first_divergence(m, {1.0, 100.0, 1e6, 1e30, 1e300}), -1);
  EXPECT_TRUE(m.observe(99, kNaN));
}

TEST(Divergence, RunningMinimumFollowsNewLowsAndIgnoresRises) {
  DivergenceMonitor m({3.0, 2});
  EXPECT_TRUE(std::isinf(m.running_minimum()));
  m.observe(1, 10.0);
  EXPECT_DOUBLE_EQ(m.running_minimum(), 10.0);
  m.observe(2, 12.0);
  EXPECT_DOUBLE_EQ(m.running_minimum(), 10.0);
  m.observe(3, 2.0);
  EXPECT_DOUBLE_EQ(m.running_minimum(), 2.0);
  // 7 > 3 x 2 although 7 < the first loss 10: the threshold moved down with the minimum.
  EXPECT_FALSE(m.observe(4, 7.0));
  EXPECT_EQ(m.consecutive_above(), 1);
  EXPECT_TRUE(m.observe(5, 7.0));
  EXPECT_EQ(m.divergence_step(), 5);
}

TEST(Divergence, StateRoundTripContinuesTheCount) {
  const DivergenceRule rule{2.0, 3};
  DivergenceMonitor first(rule);
  first.observe(10, 4.0);
  first.observe(20, 9.0);
  first.observe(30, 9.0);
  DivergenceMonitor resumed(rule);
  resumed.load_state(nlohmann::json::parse(first.state_to_json().dump()));
  EXPECT_EQ(resumed.consecutive_above(), 2);
  EXPECT_TRUE(resumed.observe(40, 9.0));
  EXPECT_NE(resumed.reason().find("since step 20"), std::string::npos) << resumed.reason();

  DivergenceMonitor fresh(rule);
  DivergenceMonitor fresh_copy(rule);
  fresh_copy.load_state(nlohmann::json::parse(fresh.state_to_json().dump()));
  EXPECT_TRUE(std::isinf(fresh_copy.running_minimum()));
  EXPECT_THROW(fresh_copy.load_state({{"running_minimum", 1.0}}), std::invalid_argument);
}

TEST(Divergence, RuleValidatesAndStatesItselfInJson) {
  EXPECT_THROW((DivergenceRule{0.5, 3}.validate()), std::invalid_argument);
  EXPECT_THROW((DivergenceRule{-1.0, 3}.validate()), std::invalid_argument);
  EXPECT_THROW((DivergenceRule{2.0, 0}.validate()), std::invalid_argument);
  EXPECT_THROW(DivergenceMonitor(DivergenceRule{kNaN, 3}), std::invalid_argument);
  try {
    DivergenceRule{2.0, 0}.validate();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("patience"), std::string::npos) << e.what();
  }
  const auto j = DivergenceRule{2.5, 4}.to_json();
  EXPECT_DOUBLE_EQ(j.at("factor").get<double>(), 2.5);
  EXPECT_EQ(j.at("patience").get<int64_t>(), 4);
  const std::string words = j.at("rule").get<std::string>();
  EXPECT_NE(words.find("non-finite"), std::string::npos) << words;
  EXPECT_NE(words.find("2.5"), std::string::npos) << words;
  EXPECT_NE(words.find("4 consecutive"), std::string::npos) << words;
  EXPECT_NE((DivergenceRule{0.0, 3}.describe().find("off")), std::string::npos);
}

}  // namespace
}  // namespace rbk
