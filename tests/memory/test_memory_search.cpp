// The memory search (memory_model.h) on synthetic memory functions, and the analytic memory
// model against the measured CPU allocation of a small training run (claims C15, C22).
#include "rbk/lm_loss.h"
#include "rbk/language_model.h"
#include "rbk/memory_model.h"
#include "rbk/peak_memory.h"
#include "rbk/torch_compat.h"

#include <set>

#include <gtest/gtest.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

// A synthetic probe: memory(d) = a d^2 + b, fits when memory <= budget.
struct Synthetic {
  double a = 3.0, b = 100.0, budget = 0.0;
  int calls = 0;
  rbk::ProbeOutcome operator()(int64_t d) {
    ++calls;
    const double m = a * static_cast<double>(d) * static_cast<double>(d) + b;
    return {m <= budget, {{"memory", m}}};
  }
  int64_t true_threshold(int64_t step) const {  // largest multiple of step that fits
    int64_t best = -1;
    for (int64_t d = step; a * d * d + b <= budget; d += step) best = d;
    return best;
  }
};

Synthetic with_budget(double budget) {
  Synthetic f;
  f.budget = budget;
  return f;
}

// The grid the tests search: d_model in steps of 64 from 256.
rbk::SearchOptions grid_of_64() {
  rbk::SearchOptions o;
  o.start = 256;
  o.step = 64;
  return o;
}

TEST(MemorySearch, FindsKnownThresholdOnSyntheticFunction) {
  for (double budget : {5e4, 3e6, 1.2e7, 7.7e8}) {
    Synthetic f = with_budget(budget);
    rbk::SearchOptions o = grid_of_64();
    auto r = rbk::search_largest_fitting(o, std::ref(f));
    EXPECT_EQ(r.largest_fitting, f.true_threshold(64)) << "budget " << budget;
    EXPECT_FALSE(r.ended_at_upper_end);
    if (r.largest_fitting > 0) {
      EXPECT_EQ(r.smallest_failing, r.largest_fitting + 64);
    }
    // Every value probed once.
    std::set<int64_t> uniq(r.order.begin(), r.order.end());
    EXPECT_EQ(uniq.size(), r.order.size());
    EXPECT_EQ(static_cast<int>(r.order.size()), f.calls);
  }
}

TEST(MemorySearch, NothingFitsWhenTheFirstStepFails) {
  Synthetic f;
  f.budget = 50.0;  // below b: nothing fits
  rbk::SearchOptions o;
  auto r = rbk::search_largest_fitting(o, std::ref(f));
  EXPECT_EQ(r.largest_fitting, -1);
  EXPECT_EQ(r.smallest_failing, 64);
  EXPECT_FALSE(r.ended_at_upper_end);
}

TEST(MemorySearch, ReportsHittingItsUpperEnd) {
  Synthetic f = with_budget(1e30);  // everything fits: the doubling reaches the termination guard
  rbk::SearchOptions o = grid_of_64();
  o.hard_upper = 4096;
  auto r = rbk::search_largest_fitting(o, std::ref(f));
  EXPECT_TRUE(r.ended_at_upper_end);
  EXPECT_EQ(r.largest_fitting, 4096);
  EXPECT_EQ(r.smallest_failing, -1);
  EXPECT_TRUE(r.to_json()["ended_at_upper_end"].get<bool>());
}

TEST(MemorySearch, OrderOfProbesDoesNotChangeTheAnswer) {
  // An exhaustive scan in shuffled orders agrees with the search for monotone functions.
  for (double budget : {2e5, 4.4e6}) {
    Synthetic f = with_budget(budget);
    rbk::SearchOptions o = grid_of_64();
    const auto r = rbk::search_largest_fitting(o, std::ref(f));
    for (uint64_t seed : {1u, 2u, 3u}) {
      const int64_t scan = rbk::exhaustive_largest_fitting(64, 4 * r.smallest_failing, seed, [&](int64_t d) { return f(d).fits; });
      EXPECT_EQ(scan, r.largest_fitting) << "seed " << seed;
    }
    // Starting elsewhere (so probing in another order) gives the same answer.
    for (int64_t start : {64, 128, 1024, 8192}) {
      Synthetic g = f;
      rbk::SearchOptions o2 = o;
      o2.start = start;
      EXPECT_EQ(rbk::search_largest_fitting(o2, std::ref(g)).largest_fitting, r.largest_fitting) << "start " << start;
    }
  }
}

TEST(MemorySearch, AHintChangesTheProbesNotTheAnswer) {
  // From any hint (exact, off by some steps either way, far off, past the guard, below one step)
  // the search finds what it finds from `start`; an exact hint costs two probes.
  for (double budget : {5e4, 3e6, 1.2e7, 7.7e8}) {
    Synthetic f = with_budget(budget);
    rbk::SearchOptions o = grid_of_64();
    o.hard_upper = 1 << 16;
    const auto plain = rbk::search_largest_fitting(o, std::ref(f));
    const int64_t t = plain.largest_fitting;
    ASSERT_GT(t, 0) << "budget " << budget;
    for (int64_t hint : {t, t + 64, t - 64, t + 7 * 64, t - 5 * 64, 3 * t + 64, int64_t{1}, int64_t{100}, int64_t{1} << 20}) {
      if (hint < 1) continue;  // t - 5 steps below the grid when t is small
      Synthetic g = f;
      rbk::SearchOptions oh = o;
      oh.hint = hint;
      const auto r = rbk::search_largest_fitting(oh, std::ref(g));
      EXPECT_EQ(r.largest_fitting, plain.largest_fitting) << "budget " << budget << " hint " << hint;
      EXPECT_EQ(r.smallest_failing, plain.smallest_failing) << "budget " << budget << " hint " << hint;
      std::set<int64_t> uniq(r.order.begin(), r.order.end());
      EXPECT_EQ(uniq.size(), r.order.size());
      if (hint == t) {
        EXPECT_EQ(r.order, (std::vector<int64_t>{t, t + 64})) << "budget " << budget;
      }
      if (hint == t + 64) {
        EXPECT_EQ(r.order, (std::vector<int64_t>{t + 64, t})) << "budget " << budget;
      }
    }
  }
  // At the ends of the grid: nothing fits, everything fits up to the guard.
  for (int64_t hint : {int64_t{64}, int64_t{640}, int64_t{1} << 20}) {
    Synthetic none;
    none.budget = 50.0;
    Synthetic all;
    all.budget = 1e30;
    rbk::SearchOptions o;
    o.hard_upper = 4096;
    o.hint = hint;
    const auto rn = rbk::search_largest_fitting(o, std::ref(none));
    EXPECT_EQ(rn.largest_fitting, -1) << "hint " << hint;
    EXPECT_EQ(rn.smallest_failing, 64) << "hint " << hint;
    const auto ra = rbk::search_largest_fitting(o, std::ref(all));
    EXPECT_TRUE(ra.ended_at_upper_end) << "hint " << hint;
    EXPECT_EQ(ra.largest_fitting, 4096) << "hint " << hint;
  }
}

TEST(MemorySearch, RejectsBadOptions) {
  Synthetic f;
  rbk::SearchOptions o;
  o.step = 0;
  EXPECT_THROW(rbk::search_largest_fitting(o, std::ref(f)), std::invalid_argument);
  o.step = 64;
  o.hint = -64;
  EXPECT_THROW(rbk::search_largest_fitting(o, std::ref(f)), std::invalid_argument);
  EXPECT_THROW(rbk::parse_memory_arch("mamba"), std::invalid_argument);
  EXPECT_EQ(rbk::layers_for_width(512), 12);
  EXPECT_EQ(rbk::layers_for_width(1024), 8);
  EXPECT_EQ(rbk::layers_for_width(1088), 6);
}

// The analytic model against the measured CPU allocation of two AdamW steps of a Transformer LM
// whose training state (~190 MB) dwarfs the runtime's noise. Measured: VmHWM after a clear_refs
// reset, minus VmRSS at the reset (after malloc_trim).
TEST(MemoryModel, MatchesMeasuredCpuAllocationOfSmallModel) {
  rbk::LmConfig c;
  c.arch = "transformer";
  c.vocab_size = 20000;
  c.d_model = 256;
  c.n_layers = 2;
  c.n_seq = 32;
  c.n_heads = 8;
  c.ffn_dim = 1024;
  torch::manual_seed(0);
  torch::set_num_threads(1);
  const auto ids = torch::randint(c.vocab_size, {1, 33}, torch::TensorOptions().dtype(torch::kInt64));
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  const int64_t rss0 = rbk::cpu_current_rss_bytes();
  const std::string scope = rbk::reset_peak_memory(torch::Device("cpu"));
  if (rss0 < 0 || scope != "since_reset") GTEST_SKIP() << "no /proc peak-RSS reset on this system";
  int64_t params = 0, largest = 0;
  {
    auto model = rbk::make_language_model(c);
    for (const auto& p : model->parameters()) {
      params += p.numel();
      largest = std::max<int64_t>(largest, p.numel());
    }
    auto plist = model->parameters();
    torch::optim::AdamW opt(plist, torch::optim::AdamWOptions(1e-4));
    for (int s = 0; s < 2; ++s) {
      for (auto& p : plist)
        if (p.grad().defined()) p.mutable_grad().zero_();
      auto f = model->forward_features(ids.narrow(1, 0, 32));
      auto loss = rbk::chunked_linear_cross_entropy(f.reshape({32, 256}), model->head_weight(), model->head_bias(),
                                                    ids.narrow(1, 1, 32).reshape({-1}), 128);
      loss.backward();
      opt.step();
    }
  }
  const double measured = static_cast<double>(rbk::cpu_peak_rss_bytes() - rss0);
  rbk::MemoryProbeShape s;
  s.arch = rbk::MemoryArch::Transformer;
  s.vocab_size = c.vocab_size;
  s.d_model = 256;
  s.n_layers = 2;
  s.seq_len = 32;
  s.parameters = params;
  s.largest_parameter = largest;
  s.training = true;
  s.fused_attention = rbk::fused_attention_available();
  const double predicted = rbk::estimate_probe_memory(s).total();
  // Tolerance: 15%. The training state (16 B x 11.8M parameters = 189 MB) is exact; what the model
  // approximates (AdamW's temporaries, the allocator's rounding and the runtime's lazily created
  // buffers such as the BLAS workspace, ~10 MB) is a few percent of it. A model that forgot the
  // moments (-25%) or counted them twice (+25%) fails.
  constexpr double kRelTolerance = 0.15;
  EXPECT_NEAR(predicted / measured, 1.0, kRelTolerance) << "predicted " << predicted << " measured " << measured;
  // The state alone is most of it: a check that the measurement saw the allocation at all.
  EXPECT_GT(measured, 16.0 * params * 0.9);
}

}  // namespace
