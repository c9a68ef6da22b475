// Unit tests of exp_train_poc's seed statistics (claim C05): the Student-t interval over seeds, the
// discrimination check that decides whether the run may judge architectures, and the summary layout
// the registry reads. Every expectation below fails if the rule it guards is loosened.
#include "discrimination.h"
#include "seed_summary.h"

#include <gtest/gtest.h>

#include <cmath>

namespace tp = rbk::train_poc;

namespace {
// 97.5 % quantile of Student's t with 2 degrees of freedom, from its closed form
// t_p = (2p - 1) / sqrt(2 p (1 - p)) (valid for df = 2 only): 4.30265272974946...
const double kT975Df2 = (2 * 0.975 - 1) / std::sqrt(2 * 0.975 * (1 - 0.975));
// Interval arithmetic is a handful of double operations: 1e-12 relative is far above rounding.
constexpr double kTol = 1e-12;
}  // namespace

TEST(TrainPocSeedInterval, MatchesHandComputedStudentT) {
  const auto s = tp::seed_interval({1.0, 2.0, 3.0});
  ASSERT_TRUE(s.has_interval);
  EXPECT_EQ(s.n, 3u);
  EXPECT_NEAR(s.mean, 2.0, kTol);
  const double half = kT975Df2 * 1.0 / std::sqrt(3.0);  // sample sd of {1,2,3} is 1
  EXPECT_NEAR(s.lo, 2.0 - half, kTol);
  EXPECT_NEAR(s.hi, 2.0 + half, kTol);
}

TEST(TrainPocSeedInterval, NonFiniteSeedRemovesTheInterval) {
  const auto s = tp::seed_interval({1.0, NAN, 3.0});
  EXPECT_FALSE(s.all_finite);
  EXPECT_FALSE(s.has_interval);
  EXPECT_EQ(s.n, 2u);
}

TEST(TrainPocDiscrimination, ClearWinIsDiscriminating) {
  // mean 0.90, sd 0.01: upper end 0.90 + 4.303 * 0.01 / sqrt(3) = 0.9248 < 0.95.
  const auto d = tp::judge_discrimination({0.90, 0.91, 0.89}, 0.05);
  EXPECT_TRUE(d.discriminating) << d.reason;
  EXPECT_NEAR(d.threshold, 0.95, kTol);
  EXPECT_LT(d.ratio.hi, 0.95);
  EXPECT_TRUE(d.reason.empty());
}

TEST(TrainPocDiscrimination, MeanBelowThresholdButWideIntervalIsNot) {
  // The falsifier of a mean-only rule: mean 0.94 < 0.95, but the interval reaches above 1.
  const auto d = tp::judge_discrimination({0.93, 0.99, 0.90}, 0.05);
  EXPECT_LT(d.ratio.mean, 0.95);
  EXPECT_GT(d.ratio.hi, 0.95);
  EXPECT_FALSE(d.discriminating);
  EXPECT_NE(d.reason.find("cannot tell architectures apart"), std::string::npos) << d.reason;
}

TEST(TrainPocDiscrimination, TieWithTheBigramIsNot) {
  // The committed GPU run's situation: the Transformer ties the bigram (ratio ~1.00).
  const auto d = tp::judge_discrimination({1.001, 0.999, 1.000}, 0.05);
  EXPECT_FALSE(d.discriminating);
  EXPECT_FALSE(d.reason.empty());
}

TEST(TrainPocDiscrimination, WinSmallerThanTheMarginIsNot) {
  // 3 % better on every seed, tight interval, but the margin asks for 5 %.
  const auto d = tp::judge_discrimination({0.970, 0.971, 0.969}, 0.05);
  EXPECT_LT(d.ratio.hi, 1.0);
  EXPECT_FALSE(d.discriminating);
}

TEST(TrainPocDiscrimination, UpperEndExactlyAtThresholdIsNot) {
  // Zero spread puts the interval's upper end on the mean: strict "<" is required.
  const auto d = tp::judge_discrimination({0.95, 0.95, 0.95}, 0.05);
  EXPECT_FALSE(d.discriminating);
}

TEST(TrainPocDiscrimination, OneSeedOrAFailedSeedIsNot) {
  EXPECT_FALSE(tp::judge_discrimination({0.5}, 0.05).discriminating);
  EXPECT_FALSE(tp::judge_discrimination({0.5, NAN, 0.5}, 0.05).discriminating);
  EXPECT_FALSE(tp::judge_discrimination({}, 0.05).discriminating);
}

TEST(TrainPocDiscrimination, RejectsNonsenseMargin) {
  EXPECT_THROW(tp::judge_discrimination({0.9, 0.9}, -0.1), std::invalid_argument);
  EXPECT_THROW(tp::judge_discrimination({0.9, 0.9}, 1.0), std::invalid_argument);
}

TEST(TrainPocSummary, PerSeedArraysRatiosAndDecision) {
  tp::SummaryInputs in;
  in.seeds = {4, 5, 6};
  in.train_rotation = {10, 20, 30};
  in.variants = {"correct_causal", "transformer"};
  in.refs = {700.0, 600.0, 420.0, 400.0};  // unigram valid/test, bigram valid/test
  in.discrimination_margin = 0.05;
  auto run = [](double test) {
    tp::SeedRun r;
    r.status = "ok";
    r.test_ppl = test;
    r.valid_ppl = test * 1.1;
    r.train_ppl_final = test * 0.9;
    r.train_ppl_per_epoch = {test * 2, test * 0.9};
    return r;
  };
  in.runs["correct_causal"] = {run(440.0), run(420.0), run(430.0)};
  in.runs["transformer"] = {run(360.0), run(364.0), run(356.0)};
  nlohmann::json s;
  tp::write_seed_summary(in, s);
  EXPECT_EQ(s["n_seeds"], 3);
  EXPECT_EQ(s["seeds"]["seed"], nlohmann::json({4, 5, 6}));
  EXPECT_EQ(s["seeds"]["bigram_test_ppl"], nlohmann::json({400.0, 400.0, 400.0}));
  EXPECT_EQ(s["seeds"]["correct_causal_test_ppl"], nlohmann::json({440.0, 420.0, 430.0}));
  EXPECT_NEAR(s["seeds"]["correct_causal_over_bigram_test_ppl"][0].get<double>(), 1.1, kTol);
  EXPECT_NEAR(s["seeds"]["correct_causal_over_unigram_test_ppl"][1].get<double>(), 0.7, kTol);
  EXPECT_NEAR(s["seeds"]["transformer_over_bigram_test_ppl"][2].get<double>(), 0.89, kTol);
  // upstream_layout_bug was not trained: its ratio is all null, so no rule can pass on it.
  EXPECT_EQ(s["seeds"]["upstream_layout_bug_over_bigram_test_ppl"], nlohmann::json({nullptr, nullptr, nullptr}));
  EXPECT_TRUE(s["discriminating"].get<bool>());
  EXPECT_FALSE(s.contains("discriminating_reason"));
  EXPECT_DOUBLE_EQ(s["discrimination_margin"].get<double>(), 0.05);

  // The same runs with the Transformer at the bigram's level: not discriminating, with a reason.
  in.runs["transformer"] = {run(398.0), run(404.0), run(401.0)};
  nlohmann::json t;
  tp::write_seed_summary(in, t);
  EXPECT_FALSE(t["discriminating"].get<bool>());
  ASSERT_TRUE(t.contains("discriminating_reason"));
  EXPECT_NE(t["discriminating_reason"].get<std::string>().find("cannot tell architectures apart"), std::string::npos);

  // Without a Transformer there is no control: never discriminating.
  in.variants = {"correct_causal"};
  in.runs.erase("transformer");
  nlohmann::json u;
  tp::write_seed_summary(in, u);
  EXPECT_FALSE(u["discriminating"].get<bool>());
}

// A cell outcome carries its SeedRun through JSON (a run split over calls rebuilds the summary from
// the outcomes): every field survives, and a number that did not exist (NaN) comes back as NaN, not
// as 0 (a 0 test PPL would enter the per-seed ratios as a perfect model).
TEST(TrainPocSummary, SeedRunSurvivesItsCellOutcome) {
  tp::SeedRun r;
  r.status = "ok";
  r.parameters = 10160000;
  r.valid_ppl = 407.6;
  r.test_ppl = 362.4;
  r.test_bits_per_byte = 1.75;
  r.train_ppl_final = 355.6;
  r.train_seconds = 26.9;
  r.tokens_per_second = 159000.0;
  r.train_ppl_per_epoch = {1046.9, 477.7, 355.6};
  const tp::SeedRun back = tp::seed_run_from_json(nlohmann::json::parse(tp::seed_run_to_json(r).dump()));
  EXPECT_EQ(back.status, "ok");
  EXPECT_EQ(back.parameters, r.parameters);
  EXPECT_EQ(back.valid_ppl, r.valid_ppl);
  EXPECT_EQ(back.test_ppl, r.test_ppl);
  EXPECT_EQ(back.test_bits_per_byte, r.test_bits_per_byte);
  EXPECT_EQ(back.train_ppl_final, r.train_ppl_final);
  EXPECT_EQ(back.train_seconds, r.train_seconds);
  EXPECT_EQ(back.tokens_per_second, r.tokens_per_second);
  EXPECT_EQ(back.train_ppl_per_epoch, r.train_ppl_per_epoch);

  tp::SeedRun diverged;
  diverged.status = "diverged";
  diverged.train_ppl_per_epoch = {900.0, NAN};
  const tp::SeedRun d = tp::seed_run_from_json(nlohmann::json::parse(tp::seed_run_to_json(diverged).dump()));
  EXPECT_EQ(d.status, "diverged");
  EXPECT_TRUE(std::isnan(d.test_ppl));
  EXPECT_TRUE(std::isnan(d.valid_ppl));
  ASSERT_EQ(d.train_ppl_per_epoch.size(), 2u);
  EXPECT_EQ(d.train_ppl_per_epoch[0], 900.0);
  EXPECT_TRUE(std::isnan(d.train_ppl_per_epoch[1]));
}
