// The sweep runner (sweep.h) with fake cell runners: enumeration and ids, selectors and shards,
// atomic outcome files, resume after a cell and inside a cell (identical summary to an
// uninterrupted run), merging shards, recorded failure statuses, per-seed arrays with nulls,
// and the paired-init helpers.
#include "rbk/results.h"
#include "rbk/sweep.h"
#include "rbk/sweep_options.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace rbk {
namespace {

namespace fs = std::filesystem;

std::string scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("rbk_sweep_" + std::to_string(::getpid())) / name;
  remove_directory_tree(d.string());
  return d.string();
}

SweepPlan two_arm_plan(std::vector<uint64_t> seeds = {0, 1, 2}) {
  SweepPlan p;
  p.name = "sweep_test";
  p.grid.arms = {{"mamba", {{"model.arch", "mamba"}}}, {"resnet_bk", {{"model.arch", "resnet_bk"}}}};
  p.grid.seeds = std::move(seeds);
  p.base = {{"train.max_steps", 10}};
  p.divergence_rule = {{"factor", 2.0}, {"patience", 3}};
  return p;
}

// A deterministic "training": valid_ppl depends on arm and seed only.
nlohmann::json fake_ok(const SweepCell& c) {
  const double ppl = 100.0 + 10.0 * static_cast<double>(c.arm_index) + static_cast<double>(c.seed);
  return {{"status", "ok"}, {"metrics", {{"valid_ppl", ppl}, {"test_ppl", ppl + 0.5}}}};
}

// A runner that trains `kSteps` steps with a checkpoint file in its cell directory, and returns
// "stopped" after `stop_at` steps of the call in which stop_at is reached (once per cell).
struct CheckpointingFakeRunner {
  static constexpr int kSteps = 6;
  int stop_at = -1;                 // -1: never stop
  std::string stop_cell;
  std::map<std::string, int> calls;
  std::map<std::string, int> steps_run;  // steps computed, over every call

  nlohmann::json operator()(const SweepCell& c, const std::string& dir) {
    ++calls[c.id];
    const std::string ckpt = dir + "/checkpoint.json";
    int step = 0;
    double acc = static_cast<double>(c.seed);
    if (fs::exists(ckpt)) {
      const auto j = read_json_file(ckpt);
      step = j["step"];
      acc = j["acc"];
    }
    while (step < kSteps) {
      acc = acc * 0.5 + static_cast<double>(step * (c.arm_index + 1));  // order-dependent arithmetic
      ++step;
      ++steps_run[c.id];
      if (c.id == stop_cell && step == stop_at) {
        write_json_atomic(ckpt, {{"step", step}, {"acc", acc}});
        stop_at = -1;
        return {{"status", "stopped"}};
      }
    }
    return {{"status", "ok"}, {"metrics", {{"valid_ppl", acc}, {"steps", step}}}};
  }
};

SweepRunOptions quiet(SweepSelector selector = {}, int64_t max_cells = 0) {
  static std::ostringstream sink;
  SweepRunOptions o;
  o.selector = std::move(selector);
  o.max_cells = max_cells;
  o.progress = &sink;
  o.context = {{"git_commit", "test"}};
  return o;
}

nlohmann::json summary_of(const SweepPlan& plan, const std::string& dir) {
  return sweep_summary(plan, read_cell_outcomes(plan, dir));
}

// The summary of the same plan run in one go by a runner that is never stopped.
nlohmann::json uninterrupted_summary(const SweepPlan& plan) {
  const std::string whole = scratch("uninterrupted");
  CheckpointingFakeRunner runner;
  run_sweep(plan, whole, std::ref(runner), quiet());
  return summary_of(plan, whole);
}

TEST(Sweep, EnumeratesSeedMajorWithReadableIdsAndAxes) {
  SweepGrid g;
  g.arms = {{"a", {{"model.arch", "mamba"}}}, {"b", nlohmann::json::object()}};
  g.axes = {{"train.lr", "", {0.1, 0.01}}};
  g.seeds = {3, 1};
  const auto cells = enumerate_cells(g);
  std::vector<std::string> ids;
  for (const auto& c : cells) ids.push_back(c.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"a-lr0.1.seed3", "a-lr0.01.seed3", "b-lr0.1.seed3", "b-lr0.01.seed3",
                                           "a-lr0.1.seed1", "a-lr0.01.seed1", "b-lr0.1.seed1", "b-lr0.01.seed1"}));
  EXPECT_EQ(cells[5].overrides, (nlohmann::json{{"model.arch", "mamba"}, {"train.lr", 0.01}}));
  EXPECT_EQ(cells[5].base_arm, "a");
  EXPECT_EQ(cells[5].seed_index, 1);
  EXPECT_EQ(cells[5].arm_index, 1);
  EXPECT_EQ(cells[6].reference_cell, "a-lr0.1.seed1");
  for (size_t i = 0; i < cells.size(); ++i) EXPECT_EQ(cells[i].index, static_cast<int64_t>(i));
  const auto again = enumerate_cells(g);
  for (size_t i = 0; i < cells.size(); ++i) EXPECT_EQ(again[i].id, cells[i].id);
}

TEST(Sweep, BadGridsAreRefusedNamingTheOffender) {
  const auto message = [](const SweepGrid& g) {
    try {
      validate_grid(g);
    } catch (const SweepError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  SweepGrid g = two_arm_plan().grid;
  g.arms.push_back(g.arms[0]);
  EXPECT_NE(message(g).find("'mamba' appears twice"), std::string::npos) << message(g);
  g = two_arm_plan().grid;
  g.arms[1].name = "res net";
  EXPECT_NE(message(g).find("'res net'"), std::string::npos) << message(g);
  g = two_arm_plan().grid;
  g.seeds = {1, 1};
  EXPECT_NE(message(g).find("seed 1 appears twice"), std::string::npos) << message(g);
  g = two_arm_plan().grid;
  g.axes = {{"model.arch", "", {"rwkv"}}};
  EXPECT_NE(message(g).find("also a grid axis"), std::string::npos) << message(g);
  g = two_arm_plan().grid;
  g.seeds.clear();
  EXPECT_NE(message(g).find("seeds"), std::string::npos) << message(g);
}

TEST(Sweep, ShardsPartitionTheGridAndGlobsSelect) {
  const auto cells = enumerate_cells(two_arm_plan().grid);
  std::multiset<std::string> seen;
  for (int i = 0; i < 4; ++i) {
    SweepSelector s;
    parse_shard(std::to_string(i) + "/4", s);
    for (const auto& c : select_cells(cells, s)) seen.insert(c.id);
  }
  EXPECT_EQ(seen.size(), cells.size());
  for (const auto& c : cells) EXPECT_EQ(seen.count(c.id), 1u) << c.id;

  SweepSelector glob;
  glob.patterns = {"resnet_bk.*", "mamba.seed2"};
  std::vector<std::string> ids;
  for (const auto& c : select_cells(cells, glob)) ids.push_back(c.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"resnet_bk.seed0", "resnet_bk.seed1", "mamba.seed2", "resnet_bk.seed2"}));

  SweepSelector typo;
  typo.patterns = {"mamab.*"};
  EXPECT_THROW(select_cells(cells, typo), SweepError);
  for (const std::string bad : {"4/4", "x", "1/0", "/2", "1/", "-1/2"}) {
    SweepSelector s;
    EXPECT_THROW(parse_shard(bad, s), SweepError) << bad;
  }
}

TEST(Sweep, OutcomesAreWrittenAtomicallyWithTheCellIdentity) {
  const auto plan = two_arm_plan();
  const std::string dir = scratch("atomic");
  const auto report = run_sweep(plan, dir, [](const SweepCell& c, const std::string&) { return fake_ok(c); }, quiet());
  EXPECT_EQ(report.ran, 6);
  EXPECT_FALSE(report.interrupted);
  for (const auto& c : enumerate_cells(plan.grid)) {
    const auto o = read_json_file(sweep_outcome_path(dir, c.id));
    EXPECT_EQ(o["cell"], c.id);
    EXPECT_EQ(o["seed"], c.seed);
    EXPECT_EQ(o["overrides"], c.overrides);
    for (const auto& e : fs::directory_iterator(sweep_cell_dir(dir, c.id)))
      EXPECT_EQ(e.path().filename(), "outcome.json") << "left behind: " << e.path();
  }
  const auto doc = read_json_file(sweep_summary_path(dir));  // run_sweep rewrites it
  EXPECT_NO_THROW(check_result_document(doc, "summary.json"));
  EXPECT_EQ(doc["status"], "ok");
}

TEST(Sweep, ResumeAfterACellSkipsFinishedCellsAndGivesTheSameSummary) {
  const auto plan = two_arm_plan();
  const std::string parts = scratch("parts");
  CheckpointingFakeRunner runner;
  auto report = run_sweep(plan, parts, std::ref(runner), quiet({}, 2));
  EXPECT_TRUE(report.interrupted);
  EXPECT_EQ(report.ran, 2);
  EXPECT_EQ(report.interrupted_at, "mamba.seed1");
  report = run_sweep(plan, parts, std::ref(runner), quiet());
  EXPECT_FALSE(report.interrupted);
  EXPECT_EQ(report.already_finished, 2);
  EXPECT_EQ(report.ran, 4);
  for (const auto& [id, n] : runner.calls) EXPECT_EQ(n, 1) << id << " ran twice";
  EXPECT_EQ(summary_of(plan, parts), uninterrupted_summary(plan));
}

TEST(Sweep, ResumeInsideACellContinuesFromItsCheckpoint) {
  const auto plan = two_arm_plan();
  const std::string parts = scratch("parts_inside");
  CheckpointingFakeRunner runner;
  runner.stop_cell = "resnet_bk.seed0";
  runner.stop_at = 3;
  auto report = run_sweep(plan, parts, std::ref(runner), quiet());
  EXPECT_TRUE(report.interrupted);
  EXPECT_EQ(report.interrupted_at, "resnet_bk.seed0");
  EXPECT_EQ(report.ran, 1);
  EXPECT_FALSE(fs::exists(sweep_outcome_path(parts, "resnet_bk.seed0")));
  EXPECT_TRUE(fs::exists(sweep_cell_dir(parts, "resnet_bk.seed0") + "/checkpoint.json"));
  report = run_sweep(plan, parts, std::ref(runner), quiet());
  EXPECT_FALSE(report.interrupted);
  EXPECT_EQ(runner.calls["resnet_bk.seed0"], 2);
  EXPECT_EQ(summary_of(plan, parts), uninterrupted_summary(plan));

  // The second call continued from the checkpoint the sweep kept in the cell directory: the steps
  // of both calls add up to one run's (a cleared cell directory would give 3 + 6).
  EXPECT_EQ(runner.steps_run["resnet_bk.seed0"], CheckpointingFakeRunner::kSteps);
}

TEST(Sweep, MergedShardsEqualTheWholeAndConflictsAreRefused) {
  const auto plan = two_arm_plan();
  const std::string whole = scratch("m_whole"), a = scratch("m_a"), b = scratch("m_b"), merged = scratch("m_merged");
  const auto runner = [](const SweepCell& c, const std::string&) { return fake_ok(c); };
  run_sweep(plan, whole, runner, quiet());
  SweepSelector s0, s1;
  parse_shard("0/2", s0);
  parse_shard("1/2", s1);
  run_sweep(plan, a, runner, quiet(s0));
  run_sweep(plan, b, runner, quiet(s1));
  EXPECT_NE(summary_of(plan, a), summary_of(plan, whole));
  merge_sweeps({a, b, whole}, merged, {{"git_commit", "x"}});  // `whole` duplicates every cell, identically
  EXPECT_EQ(summary_of(plan, merged), summary_of(plan, whole));
  EXPECT_TRUE(fs::exists(sweep_summary_path(merged)));

  // A cell finished in two directories with different metrics is refused, naming both.
  auto o = read_json_file(sweep_outcome_path(a, "mamba.seed0"));
  o["metrics"]["valid_ppl"] = 1.0;
  const std::string c = scratch("m_conflict"), refused = scratch("m_refused");
  run_sweep(plan, c, runner, quiet());
  write_json_atomic(sweep_outcome_path(c, "mamba.seed0"), o);
  try {
    merge_sweeps({a, c}, refused, {{"git_commit", "x"}});
    ADD_FAILURE() << "conflicting merge accepted";
  } catch (const SweepError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("mamba.seed0"), std::string::npos) << m;
    EXPECT_NE(m.find(a), std::string::npos) << m;
    EXPECT_NE(m.find(c), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(refused)) << "a refused merge wrote its output";

  // Different plans are refused.
  const std::string other = scratch("m_other");
  run_sweep(two_arm_plan({0, 1}), other, runner, quiet());
  EXPECT_THROW(merge_sweeps({a, other}, scratch("m_refused2"), {}), SweepError);
}

TEST(Sweep, FailureStatusesAreRecordedAndOnlyErrorsRetried) {
  const auto plan = two_arm_plan({0, 1});
  const std::string dir = scratch("statuses");
  std::map<std::string, int> calls;
  std::map<std::string, int> steps_run;  // steps computed, over every call
  const auto runner = [&](const SweepCell& c, const std::string&) -> nlohmann::json {
    ++calls[c.id];
    if (c.id == "mamba.seed0") return {{"status", "diverged"}, {"divergence", {{"step", 40}, {"reason", "step 40: loss up"}}}};
    if (c.id == "resnet_bk.seed0") throw std::runtime_error("CUDA out of memory. Tried to allocate 2.00 GiB\nstack...");
    if (c.id == "mamba.seed1") return {{"status", "skipped"}, {"reason", "n_seq above the memory budget"}};
    if (calls[c.id] == 1) throw std::runtime_error("disk hiccup");
    return fake_ok(c);
  };
  run_sweep(plan, dir, runner, quiet());
  auto outcomes = read_cell_outcomes(plan, dir);
  EXPECT_EQ(outcomes["mamba.seed0"]["status"], "diverged");
  EXPECT_EQ(outcomes["mamba.seed0"]["divergence"]["step"], 40);
  EXPECT_EQ(outcomes["resnet_bk.seed0"]["status"], "oom");
  EXPECT_EQ(outcomes["resnet_bk.seed0"]["reason"], "CUDA out of memory. Tried to allocate 2.00 GiB");
  EXPECT_EQ(outcomes["mamba.seed1"]["status"], "skipped");
  EXPECT_EQ(outcomes["resnet_bk.seed1"]["status"], "error");
  EXPECT_EQ(outcomes["resnet_bk.seed1"]["reason"], "disk hiccup");

  run_sweep(plan, dir, runner, quiet());
  outcomes = read_cell_outcomes(plan, dir);
  EXPECT_EQ(outcomes["resnet_bk.seed1"]["status"], "ok");
  EXPECT_EQ(calls["resnet_bk.seed1"], 2);
  for (const std::string id : {"mamba.seed0", "resnet_bk.seed0", "mamba.seed1"}) EXPECT_EQ(calls[id], 1) << id;

  // A malformed outcome is an error naming what is missing, not a crash.
  const std::string bad = scratch("bad_outcome");
  run_sweep(two_arm_plan({0}), bad, [](const SweepCell&, const std::string&) -> nlohmann::json {
    return {{"status", "diverged"}};
  }, quiet());
  const auto o = read_json_file(sweep_outcome_path(bad, "mamba.seed0"));
  EXPECT_EQ(o["status"], "error");
  EXPECT_NE(o["reason"].get<std::string>().find("divergence.step"), std::string::npos) << o.dump();
}

TEST(Sweep, SummaryArraysFollowTheSeedOrderWithNulls) {
  const auto plan = two_arm_plan({5, 2, 9});
  const std::string dir = scratch("arrays");
  SweepSelector not_last;
  not_last.patterns = {"*.seed5", "*.seed2"};
  run_sweep(plan, dir, [](const SweepCell& c, const std::string&) -> nlohmann::json {
    if (c.id == "resnet_bk.seed2") return {{"status", "diverged"}, {"divergence", {{"step", 3}, {"reason", "nan"}}}};
    return fake_ok(c);
  }, quiet(not_last));
  const auto s = summary_of(plan, dir);
  EXPECT_EQ(s["seeds"]["seed"], (nlohmann::json{5, 2, 9}));
  EXPECT_EQ(s["seeds"]["mamba_valid_ppl"], (nlohmann::json{105.0, 102.0, nullptr}));
  EXPECT_EQ(s["seeds"]["resnet_bk_valid_ppl"], (nlohmann::json{115.0, nullptr, nullptr}));
  EXPECT_EQ(s["seeds"]["resnet_bk_status"], (nlohmann::json{"ok", "diverged", "pending"}));
  EXPECT_EQ(s["counts"], (nlohmann::json{{"ok", 3}, {"diverged", 1}, {"pending", 2}}));
  EXPECT_EQ(s["cells"].size(), 6u);
  EXPECT_EQ(s["cells"][3]["cell"], "resnet_bk.seed2");
  EXPECT_EQ(s["divergence_rule"], plan.divergence_rule);
}

TEST(Sweep, ADirectoryWithAnotherPlanIsRefused) {
  const std::string dir = scratch("plan");
  const auto runner = [](const SweepCell& c, const std::string&) { return fake_ok(c); };
  run_sweep(two_arm_plan({0}), dir, runner, quiet());
  EXPECT_THROW(run_sweep(two_arm_plan({0, 1}), dir, runner, quiet()), SweepError);
  const auto round_trip = SweepPlan::from_json(two_arm_plan().to_json());
  EXPECT_EQ(round_trip.to_json(), two_arm_plan().to_json());
  EXPECT_THROW(SweepPlan::from_json({{"name", "x"}}), SweepError);
}

TEST(SweepOptions, TheDirectoryDefaultsUnderTheCheckpointsAndAnotherPlanIsAConfigError) {
  ConfigSchema schema;
  add_sweep_options(schema);
  ASSERT_NE(schema.find("sweep_dir"), nullptr);
  ASSERT_NE(schema.find("max_cells"), nullptr);
  EXPECT_EQ(schema.find("sweep_dir")->default_value, "");  // a preset need not name them
  EXPECT_EQ(schema.find("max_cells")->default_value, 0);

  const std::string checkpoints = scratch("options_checkpoints");
  const Config unnamed({{"sweep_dir", ""}, {"max_cells", 3}}, "test");
  EXPECT_EQ(prepared_sweep_dir(unnamed, two_arm_plan({0}), checkpoints), checkpoints + "/sweep");
  EXPECT_TRUE(fs::exists(checkpoints + "/sweep/plan.json"));
  EXPECT_EQ(sweep_run_options(unnamed).max_cells, 3);

  const std::string named = scratch("options_named");
  const Config with_dir({{"sweep_dir", named}, {"max_cells", 0}}, "test");
  EXPECT_EQ(prepared_sweep_dir(with_dir, two_arm_plan({0}), checkpoints), named);
  try {
    prepared_sweep_dir(with_dir, two_arm_plan({0, 1}), checkpoints);
    FAIL() << "a sweep directory holding another plan was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("sweep_dir = '" + named + "'"), std::string::npos) << e.what();
  }
}

struct TinyNet : torch::nn::Module {
  TinyNet(int64_t in, int64_t hidden) {
    fc1 = register_module("fc1", torch::nn::Linear(in, hidden));
    fc2 = register_module("fc2", torch::nn::Linear(hidden, 2));
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};

TEST(Sweep, PairedInitCopiesMatchingParametersWhateverCellWritesTheFile) {
  SweepPlan plan = two_arm_plan({7});
  const auto cells = enumerate_cells(plan.grid);  // mamba.seed7 (reference), resnet_bk.seed7
  const auto build_reference = [] {
    torch::manual_seed(7);
    return std::make_shared<TinyNet>(4, 3);
  };
  const auto reference = build_reference();

  // Order 1: the reference cell writes the init, the other arm (hidden width 5) copies.
  const std::string dir1 = scratch("paired1");
  apply_paired_init(cells[0], dir1, *reference, build_reference);
  torch::manual_seed(11);
  auto other = std::make_shared<TinyNet>(4, 5);
  const auto rec = apply_paired_init(cells[1], dir1, *other, build_reference);
  // fc1.weight (5x4 vs 3x4), fc1.bias (5 vs 3) and fc2.weight (2x5 vs 2x3) differ; fc2.bias matches.
  EXPECT_EQ(rec["copied"], (nlohmann::json{"fc2.bias"}));
  EXPECT_EQ(rec["n_not_copied"], 3);
  EXPECT_TRUE(torch::equal(other->fc2->bias, reference->fc2->bias));
  EXPECT_FALSE(torch::equal(other->fc1->weight.narrow(0, 0, 3), reference->fc1->weight));

  // Order 2: the other arm runs first (another shard); it builds the reference's init itself, with
  // the random stream left as it was.
  const std::string dir2 = scratch("paired2");
  torch::manual_seed(11);
  auto other2 = std::make_shared<TinyNet>(4, 5);
  torch::manual_seed(123);
  const auto expected_next = torch::rand({4});
  torch::manual_seed(123);
  const auto rec2 = apply_paired_init(cells[1], dir2, *other2, build_reference);
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected_next)) << "apply_paired_init moved the CPU generator";
  EXPECT_EQ(rec2, rec);
  for (const auto& p : other->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), other2->named_parameters()[p.key()])) << p.key();
  const auto saved = load_parameter_file(sweep_init_path(dir2, 7));
  for (const auto& p : reference->named_parameters()) EXPECT_TRUE(torch::equal(saved.at(p.key()), p.value())) << p.key();

  const std::string junk = scratch("junk.pt");
  std::ofstream(junk) << "not a pickle";
  EXPECT_THROW(load_parameter_file(junk), SweepError);
}

}  // namespace
}  // namespace rbk
