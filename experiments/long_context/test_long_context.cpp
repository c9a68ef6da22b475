// Unit tests of exp_long_context's pieces (issue 19): the probe generators (deterministic, shapes,
// the answer determined only by the key span: a predictor without it stays at chance), the memory
// fit, the keyed summary of a sweep split into two selections and merged (equal to the single
// run's), and diverged / oom cells as the validator judges them through the real registry's rules.
#include "long_context_parts.h"
#include "long_context_summary.h"

#include "rbk/context_probes.h"
#include "rbk/sweep.h"
#include "rbk/validation/registry.h"
#include "rbk/validation/verdict.h"
#include "rbk/results.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <unistd.h>

namespace fs = std::filesystem;
namespace lc = rbk::long_context;
using nlohmann::json;

namespace {

rbk::ProbeSpec passkey_spec(int64_t n, double depth = -1.0) {
  rbk::ProbeSpec s;
  s.kind = rbk::ProbeKind::Passkey;
  s.seq_len = n;
  s.depth = depth;
  return s;
}

rbk::ProbeSpec recall_spec(int64_t n) {
  rbk::ProbeSpec s;
  s.kind = rbk::ProbeKind::AssociativeRecall;
  s.seq_len = n;
  s.n_pairs = 6;
  s.n_queries = 3;
  return s;
}

// Held-out accuracy of the best lookup table feature -> most frequent answer (fitted on the first
// half, scored on the second; an unseen feature predicts the overall most frequent answer).
double lookup_accuracy(const std::vector<int64_t>& feature, const std::vector<int64_t>& answer) {
  const size_t half = feature.size() / 2;
  std::map<int64_t, std::map<int64_t, int64_t>> counts;
  std::map<int64_t, int64_t> overall;
  for (size_t i = 0; i < half; ++i) {
    ++counts[feature[i]][answer[i]];
    ++overall[answer[i]];
  }
  const auto argmax = [](const std::map<int64_t, int64_t>& m) {
    int64_t best = -1, n = -1;
    for (const auto& [k, c] : m)
      if (c > n) best = k, n = c;
    return best;
  };
  const int64_t fallback = argmax(overall);
  int64_t hits = 0;
  for (size_t i = half; i < feature.size(); ++i) {
    const auto it = counts.find(feature[i]);
    hits += (it == counts.end() ? fallback : argmax(it->second)) == answer[i];
  }
  return static_cast<double>(hits) / static_cast<double>(feature.size() - half);
}

}  // namespace

TEST(ContextProbes, GeneratorsAreDeterministicAndSeedDependent) {
  for (const auto& spec : {passkey_spec(64), recall_spec(64)}) {
    const auto a = rbk::generate_probe_batch(spec, 8, 5), b = rbk::generate_probe_batch(spec, 8, 5);
    const auto c = rbk::generate_probe_batch(spec, 8, 6);
    EXPECT_TRUE(torch::equal(a.ids, b.ids));
    EXPECT_TRUE(torch::equal(a.answers, b.answers));
    EXPECT_TRUE(torch::equal(a.answer_positions, b.answer_positions));
    EXPECT_FALSE(torch::equal(a.ids, c.ids)) << rbk::to_string(spec.kind);
  }
}

TEST(ContextProbes, PasskeyLayoutAndDepth) {
  const int64_t N = 50, B = 16;
  const auto spec = passkey_spec(N);
  const auto b = rbk::generate_probe_batch(spec, B, 1);
  ASSERT_EQ(b.ids.sizes(), (std::vector<int64_t>{B, N}));
  ASSERT_EQ(b.answers.sizes(), (std::vector<int64_t>{B, 1}));
  const auto& v = spec.vocab;
  for (int64_t i = 0; i < B; ++i) {
    const int64_t kp = b.key_positions[i][0].item<int64_t>(), ans = b.answers[i][0].item<int64_t>();
    EXPECT_EQ(b.answer_positions[i][0].item<int64_t>(), N - 1);
    EXPECT_EQ(b.ids[i][N - 1].item<int64_t>(), v.query_mark());
    EXPECT_EQ(b.ids[i][kp - 1].item<int64_t>(), v.key_mark());
    EXPECT_EQ(b.ids[i][kp].item<int64_t>(), ans);
    EXPECT_GE(ans, v.first_value());
    EXPECT_LT(ans, v.first_value() + v.n_values);
    // Exactly one key mark and one value token: the answer appears once in the context.
    EXPECT_EQ(b.ids[i].eq(v.key_mark()).sum().item<int64_t>(), 1);
    EXPECT_EQ(b.ids[i].ge(v.first_value()).sum().item<int64_t>(), 1);
  }
  // Controlled depth: 0 puts the key mark first, 1 as late as fits (N - 3).
  EXPECT_EQ(rbk::generate_probe_batch(passkey_spec(N, 0.0), 4, 2).key_positions.min().item<int64_t>(), 1);
  EXPECT_EQ(rbk::generate_probe_batch(passkey_spec(N, 1.0), 4, 2).key_positions.max().item<int64_t>(), N - 2);
  EXPECT_THROW(passkey_spec(3).validate(), std::invalid_argument);
}

TEST(ContextProbes, RecallLayout) {
  const int64_t N = 40, B = 16;
  const auto spec = recall_spec(N);
  const auto b = rbk::generate_probe_batch(spec, B, 3);
  ASSERT_EQ(b.answers.sizes(), (std::vector<int64_t>{B, spec.n_queries}));
  for (int64_t i = 0; i < B; ++i) {
    const auto keys = b.ids[i].slice(0, 0, 2 * spec.n_pairs, 2);
    EXPECT_EQ(std::get<0>(at::_unique(keys)).numel(), spec.n_pairs) << "keys must be distinct";
    for (int64_t q = 0; q < spec.n_queries; ++q) {
      const int64_t t = b.answer_positions[i][q].item<int64_t>(), kp = b.key_positions[i][q].item<int64_t>();
      EXPECT_EQ(b.ids[i][t].item<int64_t>(), b.ids[i][kp - 1].item<int64_t>()) << "query = the pair's key";
      EXPECT_EQ(b.ids[i][kp].item<int64_t>(), b.answers[i][q].item<int64_t>());
    }
  }
  rbk::ProbeSpec bad = recall_spec(N);
  bad.n_queries = bad.n_pairs + 1;
  EXPECT_THROW(bad.validate(), std::invalid_argument);
}

// The answer is determined only by the key span: predictors that read everything else (the query
// key, the filler next to the query, the key's depth, the first token) stay at chance, while one
// that reads the key span is always right. The check itself can fail: a feature that carries the
// answer (the positive control) is far above the bound.
TEST(ContextProbes, AnswerDependsOnlyOnTheKeySpan) {
  constexpr int64_t kSamples = 16000;
  for (const auto& spec : {passkey_spec(64), recall_spec(64)}) {
    const auto b = rbk::generate_probe_batch(spec, kSamples, 11);
    const double chance = 1.0 / static_cast<double>(spec.vocab.n_values);
    // Held-out accuracy of a no-information predictor on kSamples / 2 draws: binomial sd; 5 sd
    // keeps the false-alarm rate negligible while a leak of even a few percent points is caught.
    const double bound = chance + 5.0 * std::sqrt(chance * (1 - chance) / (kSamples / 2.0));
    std::vector<int64_t> answer, query, neighbour, depth, first, span;
    for (int64_t i = 0; i < kSamples; ++i) {
      const int64_t t = b.answer_positions[i][0].item<int64_t>(), kp = b.key_positions[i][0].item<int64_t>();
      answer.push_back(b.answers[i][0].item<int64_t>());
      query.push_back(b.ids[i][t].item<int64_t>());
      neighbour.push_back(b.ids[i][t - 1].item<int64_t>());
      depth.push_back(kp);
      first.push_back(b.ids[i][0].item<int64_t>());
      span.push_back(b.ids[i][kp].item<int64_t>());
    }
    const std::string kind = rbk::to_string(spec.kind);
    EXPECT_LT(lookup_accuracy(query, answer), bound) << kind << ": query token";
    EXPECT_LT(lookup_accuracy(depth, answer), bound) << kind << ": key depth";
    if (spec.kind == rbk::ProbeKind::Passkey) {
      EXPECT_LT(lookup_accuracy(neighbour, answer), bound) << kind << ": filler before the query";
      EXPECT_LT(lookup_accuracy(first, answer), bound) << kind << ": first token";
    }
    EXPECT_EQ(lookup_accuracy(span, answer), 1.0) << kind << ": the key span determines the answer";
    // Positive control of the check: a feature correlated with the answer is caught.
    std::vector<int64_t> leaky(answer.size());
    for (size_t i = 0; i < answer.size(); ++i) leaky[i] = answer[i] / 2;
    EXPECT_GT(lookup_accuracy(leaky, answer), bound) << kind;
  }
}

TEST(ContextProbes, AccuracyAndLossOnATinyModel) {
  rbk::ProbeSpec spec = passkey_spec(32);
  rbk::LmConfig c;
  c.arch = "transformer";
  c.vocab_size = spec.vocab.size();
  c.d_model = 16;
  c.n_layers = 1;
  c.n_heads = 2;
  c.ffn_dim = 32;
  c.n_seq = 64;
  torch::manual_seed(0);
  auto model = rbk::make_language_model(c);
  const auto batch = rbk::generate_probe_batch(spec, 8, 0);
  const double acc = rbk::probe_accuracy(*model, batch, torch::kCPU);
  EXPECT_GE(acc, 0.0);
  EXPECT_LE(acc, 1.0);
  rbk::ProbeTrainOptions o;
  o.steps = 3;
  o.batch_size = 4;
  const auto r = rbk::train_on_probe(*model, spec, o);
  EXPECT_EQ(r.status, "ok");
  EXPECT_EQ(r.steps, 3);
  EXPECT_TRUE(std::isfinite(r.final_loss));
}

TEST(MemoryFit, RecoversSlopeAndExponent) {
  const std::vector<double> n{256, 1024, 4096, 16384};
  std::vector<double> linear, flat, quadratic;
  for (double x : n) {
    linear.push_back(3e6 + 250.0 * x);
    flat.push_back(5e7);
    quadratic.push_back(8.0 * x * x);
  }
  const auto fl = lc::fit_memory_slope(n, linear);
  EXPECT_EQ(fl.points, 4);
  EXPECT_NEAR(fl.bytes_per_token, 250.0, 1e-6);
  EXPECT_NEAR(fl.intercept_bytes, 3e6, 1e-3);
  EXPECT_NEAR(fl.r2, 1.0, 1e-12);
  const auto ff = lc::fit_memory_slope(n, flat);
  EXPECT_NEAR(ff.loglog_exponent, 0.0, 1e-12);
  EXPECT_NEAR(ff.bytes_per_token, 0.0, 1e-12);
  EXPECT_TRUE(std::isnan(ff.r2));  // a constant has no variance to explain: no r2, never a perfect 1
  EXPECT_TRUE(ff.to_json()["r2"].is_null());
  EXPECT_NEAR(lc::fit_memory_slope(n, quadratic).loglog_exponent, 2.0, 1e-9);
  // Non-finite and non-positive points are left out; one distinct N cannot be fitted.
  const auto one = lc::fit_memory_slope({256, 256, 1024}, {1e6, 2e6, NAN});
  EXPECT_LT(one.points, 2);
  EXPECT_TRUE(std::isnan(one.bytes_per_token));
  EXPECT_TRUE(one.to_json()["bytes_per_token"].is_null());
}

TEST(ArmNames, RoundTrip) {
  std::string row, probe;
  int64_t n = 0;
  ASSERT_TRUE(lc::parse_arm(lc::arm_name("bk_compat", 1048576), row, n));
  EXPECT_EQ(row, "bk_compat");
  EXPECT_EQ(n, 1048576);
  EXPECT_FALSE(lc::parse_arm("bk_nx", row, n));
  ASSERT_TRUE(lc::parse_probe_arm(lc::probe_arm_name("bk_compat", "assoc_recall", 256), row, probe, n));
  EXPECT_EQ(row, "bk_compat");
  EXPECT_EQ(probe, "assoc_recall");
  EXPECT_EQ(n, 256);
}

namespace {

const std::vector<std::string> kRows{"bk", "mamba"};
const std::vector<int64_t> kLengths{8192, 32768, 131072, 1048576};

rbk::SweepPlan fake_plan() {
  rbk::SweepPlan plan;
  plan.name = "long_context";
  for (const auto& r : kRows)
    for (const int64_t n : kLengths) plan.grid.arms.push_back({lc::arm_name(r, n), {{"train.seq_len", n}}});
  plan.grid.seeds = {0, 1, 2};
  plan.divergence_rule = {{"factor", 0.0}};
  return plan;
}

// Deterministic outcomes: bk wins by ~1 PPL at every length; bk at 1M diverges in seed 1; Mamba at
// 128k is out of memory in seed 0 and diverges at 1M in seed 2.
json fake_runner(const rbk::SweepCell& cell, const std::string&) {
  std::string row;
  int64_t n = 0;
  lc::parse_arm(cell.arm, row, n);
  if (row == "bk" && n == 1048576 && cell.seed == 1)
    return {{"status", "diverged"}, {"reason", "non-finite loss"}, {"divergence", {{"step", 7}, {"reason", "non-finite loss"}}},
            {"metrics", {{"steps", 7}}}};
  if (row == "mamba" && n == 131072 && cell.seed == 0) return {{"status", "oom"}, {"reason", "CUDA out of memory"}};
  if (row == "mamba" && n == 1048576 && cell.seed == 2)
    return {{"status", "diverged"}, {"reason", "loss spike"}, {"divergence", {{"step", 3}, {"reason", "loss spike"}}}};
  const double ppl = 30.0 + std::log2(static_cast<double>(n)) + 0.1 * static_cast<double>(cell.seed) + (row == "mamba" ? 1.0 + 0.05 * static_cast<double>(cell.seed * cell.seed) : 0.0);
  return {{"status", "ok"},
          {"metrics", {{"valid_ppl", ppl}, {"valid_ppl_short", ppl + 2}, {"final_train_loss", std::log(ppl)}}},
          {"details", {{"peak_memory_bytes", 1e8 + 10.0 * static_cast<double>(n)}, {"tokens_per_second", 1000.0},
                       // Mamba's cells report a process-wide peak (as on a CPU whose reset is refused).
                       {"peak_memory_per_cell", row != "mamba"}}}};
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("rbk_long_context_test_" + std::to_string(::getpid()));
    rbk::remove_directory_tree(path.string());  // not std::filesystem: see rbk/results.h
    fs::create_directories(path);
  }
  ~TempDir() { rbk::remove_directory_tree(path.string()); }
};

json run_into(const rbk::SweepPlan& plan, const std::string& dir, const std::vector<std::string>& patterns) {
  rbk::prepare_sweep_dir(plan, dir);
  rbk::SweepRunOptions o;
  o.selector.patterns = patterns;
  std::ostringstream quiet;
  o.progress = &quiet;
  rbk::run_sweep(plan, dir, fake_runner, o);
  return lc::keyed_sweep_summary(plan, rbk::read_cell_outcomes(plan, dir), kRows, kLengths);
}

}  // namespace

TEST(KeyedSummary, MergedSplitSweepsEqualTheSingleRun) {
  TempDir tmp;
  const auto plan = fake_plan();
  const json single = run_into(plan, (tmp.path / "single").string(), {});
  run_into(plan, (tmp.path / "a").string(), {"bk_*"});
  run_into(plan, (tmp.path / "b").string(), {"mamba_*"});
  const std::string merged = (tmp.path / "merged").string();
  rbk::merge_sweeps({(tmp.path / "a").string(), (tmp.path / "b").string()}, merged, json::object());
  const json from_merge = lc::keyed_sweep_summary(plan, rbk::read_cell_outcomes(plan, merged), kRows, kLengths);
  EXPECT_EQ(single, from_merge) << single.dump(1);

  // The keys the registry reads, with the stability rule applied.
  EXPECT_EQ(single["seeds"]["bk_ppl_n32768"].size(), 3u);
  EXPECT_TRUE(single["seeds"]["bk_ppl_n1048576"][1].is_null()) << "a diverged seed has no PPL";
  EXPECT_EQ(single["stable"]["bk_n8192"], true);
  EXPECT_EQ(single["stable"]["bk_n1048576"], false);
  EXPECT_EQ(single["stable"]["mamba_n1048576"], false);
  EXPECT_FALSE(single["stable"].contains("mamba_n131072")) << "an oom cell is not a divergence";
  EXPECT_NE(single["stable_undetermined"]["mamba_n131072"].get<std::string>().find("oom"), std::string::npos);
  EXPECT_EQ(single["cells_by_row"]["mamba"]["n131072"]["status"][0], "oom");
  EXPECT_EQ(single["cells_by_row"]["bk"]["n1048576"]["divergence_step"][1], 7);
  // Memory fit over the medians: exactly 10 bytes per token in the fake runner.
  EXPECT_NEAR(single["memory_fit"]["bk"]["bytes_per_token"].get<double>(), 10.0, 1e-6);
  // A peak that is not the cell's own is never fitted: no slope, and the reason.
  EXPECT_TRUE(single["memory_fit"]["mamba"]["bytes_per_token"].is_null());
  EXPECT_NE(single["memory_fit"]["mamba"].value("why_no_fit", "").find("not per cell"), std::string::npos);

  // A selection that ran only some seeds: those not run are left out of the stability flag.
  const json partial = run_into(plan, (tmp.path / "partial").string(), {"bk_n8192.seed0"});
  EXPECT_EQ(partial["stable"]["bk_n8192"], true);
  EXPECT_EQ(partial["stable_seeds"]["bk_n8192"], 1);
  EXPECT_FALSE(partial["stable"].contains("bk_n32768"));
  EXPECT_EQ(partial["stable_undetermined"]["bk_n32768"], "no cell has run");
}

// The validator judges the recorded cells through the project's registry: a diverged bk cell at
// 1M fails C12.bk_stable_1m, an oom Mamba cell at 128k leaves C12.mamba_diverges_128k missing (not
// passed), and the paired tests read the per-seed arrays with their nulls.
TEST(KeyedSummary, ValidatorJudgesDivergedAndOomCells) {
  TempDir tmp;
  const auto plan = fake_plan();
  const json keyed = run_into(plan, (tmp.path / "s").string(), {});
  const json doc{{"schema", "rbk.result/1"}, {"experiment", "long_context"}, {"status", "partial"}, {"summary", keyed}};
  const auto registry = rbk::validation::load_registry(std::string(RBK_SOURCE_DIR) + "/validation/claims_registry.json");
  const auto part = [&](const std::string& claim, const std::string& id) -> const rbk::validation::ClaimPart& {
    const auto* c = registry.find(claim);
    if (!c) throw std::runtime_error("no claim " + claim);
    for (const auto& p : c->parts)
      if (p.id == id) return p;
    throw std::runtime_error("no part " + id);
  };
  using rbk::validation::Outcome;
  const auto eval = [&](const std::string& claim, const std::string& id) {
    return rbk::validation::evaluate_rule_on_document(part(claim, id).rule, doc, "test document", 3);
  };
  EXPECT_EQ(eval("C12", "C12.bk_stable_1m").outcome, Outcome::Fail);
  EXPECT_EQ(eval("C12", "C12.mamba_diverges_128k").outcome, Outcome::Missing);
  const auto ttest = eval("C12", "C12.bk_beats_mamba_32k");
  EXPECT_TRUE(ttest.outcome == Outcome::Pass || ttest.outcome == Outcome::Fail) << ttest.reason;
  EXPECT_EQ(ttest.outcome, Outcome::Pass) << ttest.comparison << " " << ttest.reason;

  // With Mamba diverging at 128k in one seed, the rule holds.
  json diverged = doc;
  diverged["summary"]["stable"]["mamba_n131072"] = false;
  EXPECT_EQ(rbk::validation::evaluate_rule_on_document(part("C12", "C12.mamba_diverges_128k").rule, diverged, "doc", 3).outcome,
            Outcome::Pass);
}

// The result's rows: cells with an outcome always, pending cells only where the command selected
// them; the pending rest is named under not_selected (so a finished selection reads status ok).
TEST(PartRows, PendingCellsOutsideTheSelectionAreNamedNotRows) {
  TempDir tmp;
  const auto plan = fake_plan();
  const std::string dir = (tmp.path / "bk_only").string();
  run_into(plan, dir, {"bk_*"});
  const json generic = rbk::sweep_summary(plan, rbk::read_cell_outcomes(plan, dir));
  const json& cells = generic.at("cells");
  std::set<std::string> selected;
  for (const auto& c : rbk::enumerate_cells(plan.grid))
    if (c.arm == lc::arm_name("mamba", kLengths.front())) selected.insert(c.id);
  json not_selected = json::array();
  const json rows = lc::part_rows(cells, selected, "sweep", not_selected);
  size_t bk = 0, mamba_first = 0;
  for (const auto& r : rows) {
    EXPECT_EQ(r.at("part"), "sweep");
    if (r.at("arm").get<std::string>().rfind("bk_", 0) == 0) ++bk;
    if (r.at("arm") == lc::arm_name("mamba", kLengths.front())) {
      ++mamba_first;
      EXPECT_EQ(r.at("status"), "pending");
    }
  }
  EXPECT_EQ(bk, kLengths.size() * 3) << "every finished cell is a row, selected or not";
  EXPECT_EQ(mamba_first, 3u) << "a selected pending cell is a row";
  EXPECT_EQ(rows.size() + not_selected.size(), cells.size());
  EXPECT_EQ(not_selected.size(), (kLengths.size() - 1) * 3) << "mamba's other lengths, every seed";
  for (const auto& id : not_selected) {
    const std::string s = id.get<std::string>();
    EXPECT_EQ(s.rfind("mamba_", 0), 0u) << s;
    EXPECT_EQ(s.rfind(lc::arm_name("mamba", kLengths.front()) + ".", 0), std::string::npos) << s;
  }
}
