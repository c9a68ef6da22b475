// Stale results, rule history and the provenance check on a FIXTURE git repository that the test
// builds in a temporary directory:
//   C1  registry (D01.x: x >= 1) + experiments/{demo,mixed}/main.cpp
//   C2  results at C1: demo.gpu.json (tree hash of C1), mixed.gpu.json (the only one with z),
//       mixed.gpu.failed.json
//   C3  "demo: faster loop" changes both experiments' sources     -> every C1 result is stale
//   C4  "registry: D01.x needs x >= 2; D01.y added"               -> changed / added after C1
//   C5  mixed.cpu.json made at C4 (wrong tree hash, git_dirty=false from env)
//   C6  "mixed: move main.cpp unchanged" (an exact rename inside a declared directory)
//   C7  "other: move a.cpp with an edit" (experiments/other -> experiments/other2, not registered)
// and the same tree copied without .git (every git answer "unknown", nothing crashes).
#include "rbk/validation/git_repo.h"
#include "rbk/validation/registry.h"
#include "rbk/validation/render.h"
#include "rbk/validation/result_store.h"
#include "rbk/validation/verdict.h"
#include "rbk/results.h"
#include "rbk/shell_command.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

using namespace rbk::validation;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Identity and config for git on a CI machine without a user: set for every git the test runs.
const std::string kGit =
    "git -c user.name=rbk-test -c user.email=rbk-test@example.invalid -c commit.gpgsign=false -c init.defaultBranch=main";

std::string run(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int rc = ::pclose(p);
  if (rc != 0) ADD_FAILURE() << "command failed (" << rc << "): " << cmd << "\n" << out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

json part(const std::string& id, const std::string& value, double target) {
  return {{"id", id},
          {"statement", id + " holds"},
          {"face", "corrected"},
          {"rule", {{"experiment", id.rfind("D02", 0) == 0 ? "mixed" : "demo"}, {"value", value}, {"op", ">="}, {"target", target}}},
          {"falsifier", {{"outcome", "x is 0"}, {"value", 0}}}};
}

json registry(bool later) {
  json d01_parts = json::array({part("D01.x", "/summary/x", later ? 2.0 : 1.0)});
  if (later) d01_parts.push_back(part("D01.y", "/summary/x", 0.5));
  json claims = json::array();
  claims.push_back({{"id", "D01"}, {"title", "demo"}, {"source", "test"}, {"paper_value", "x >= 1"},
                    {"audit", {{"code", "ok"}, {"finding", "-"}}}, {"parts", d01_parts}});
  claims.push_back({{"id", "D02"}, {"title", "mixed"}, {"source", "test"}, {"paper_value", "x >= 1"},
                    {"audit", {{"code", "ok"}, {"finding", "-"}}}, {"parts", json::array({part("D02.x", "/summary/x", 1.0), part("D02.z", "/summary/z", 1.0)})}});
  return {{"schema", "rbk.claims_registry/2"},
          {"preset_preference", {"gpu", "cpu", "smoke"}},
          {"experiments", {{"demo", {{"sources", {"experiments/demo"}}}}, {"mixed", {{"sources", {"experiments/mixed"}}}}}},
          {"claims", claims}};
}

std::string result(const std::string& experiment, const std::string& preset, const std::string& commit,
                   const std::string& tree, double x, json extra = json::object()) {
  json ctx = {{"git_commit", commit}, {"git_dirty", "false"}, {"git_dirty_source", "env"}, {"device", "cpu"}};
  if (!tree.empty()) ctx["git_tree_hash"] = tree;
  json doc = {{"schema", "rbk.result/1"}, {"experiment", experiment}, {"preset", preset}, {"status", "ok"},
              {"context", ctx}, {"config", json::object()}, {"rows", json::array()}, {"summary", {{"x", x}}}};
  doc["summary"].update(extra);
  return doc.dump(1);
}

struct FixtureRepo {
  fs::path dir;
  std::string c1, c3, c4, c6, tree1;
  FixtureRepo() {
    char tmpl[] = "/tmp/rbk_git_fixture_XXXXXX";
    dir = ::mkdtemp(tmpl);
    const std::string g = kGit + " -C '" + dir.string() + "' ";
    run(g + "init -q");
    write(dir / "validation/claims_registry.json", registry(false).dump(1));
    write(dir / "experiments/demo/main.cpp", "int main() { return 0; }\n");
    write(dir / "experiments/mixed/main.cpp", "int main() { return 0; }\n");
    write(dir / "experiments/other/a.cpp", "int a() { return 0; }\n");
    run(g + "add -A && " + g + "commit -q -m 'C1: registry and sources'");
    c1 = run(g + "rev-parse HEAD");
    tree1 = run(g + "rev-parse HEAD^{tree}");
    write(dir / "results/demo/demo.gpu.json", result("demo", "gpu", c1, tree1, 1.5));
    write(dir / "results/mixed/mixed.gpu.json", result("mixed", "gpu", c1, "", 0.2, {{"z", 3.0}}));
    write(dir / "results/mixed/mixed.gpu.failed.json", result("mixed", "gpu", c1, "", 9.0));
    run(g + "add -A && " + g + "commit -q -m 'C2: results at C1'");
    write(dir / "experiments/demo/main.cpp", "int main() { return 1; }\n");
    write(dir / "experiments/mixed/main.cpp", "int main() { return 1; }\n");
    run(g + "commit -q -am 'demo: faster loop'");
    c3 = run(g + "rev-parse --short HEAD");
    write(dir / "validation/claims_registry.json", registry(true).dump(1));
    run(g + "commit -q -am 'registry: D01.x needs x >= 2; D01.y added'");
    c4 = run(g + "rev-parse HEAD");
    write(dir / "results/mixed/mixed.cpu.json", result("mixed", "cpu", c4, std::string(40, '0'), 1.2));
    run(g + "add -A && " + g + "commit -q -m 'C5: mixed cpu result at C4'");
    fs::create_directories(dir / "experiments/mixed/src");
    run(g + "mv experiments/mixed/main.cpp experiments/mixed/src/main.cpp && " + g + "commit -q -m 'mixed: move main.cpp unchanged'");
    c6 = run(g + "rev-parse --short HEAD");
    fs::create_directories(dir / "experiments/other2");
    run(g + "mv experiments/other/a.cpp experiments/other2/a.cpp");
    write(dir / "experiments/other2/a.cpp", "int a() { return 1; }\n");
    run(g + "add -A && " + g + "commit -q -m 'other: move a.cpp with an edit'");
  }
  ~FixtureRepo() { rbk::remove_directory_tree(dir.string()); }
};

}  // namespace

TEST(ValidationGit, ShellQuoting) {
  EXPECT_EQ(shell_quote("a b"), "'a b'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  const GitRepo none("/nonexistent/rbk/dir");
  EXPECT_FALSE(none.available());
  EXPECT_FALSE(none.commit_exists("abcdef0"));
}

// Staleness compares content, not commit lists: a file moved without a byte changed is the same
// code (C6), a moved and edited one is not (C7). Without the exact-rename detection the first
// expectation fails (C6 touches experiments/mixed).
TEST(ValidationGit, MovedUnchangedSourceIsNotAChange) {
  if (std::system("git --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "git is not installed";
  FixtureRepo repo;
  const GitRepo git(repo.dir.string());
  const auto touched = git.commits_since(repo.c4, {"experiments/mixed"});
  ASSERT_TRUE(touched.has_value());
  ASSERT_EQ(touched->size(), 1u);
  EXPECT_EQ((*touched)[0].hash, repo.c6);
  const std::vector<std::string> declared_then = {"experiments/mixed"};
  const auto moved = git.changed_sources_since(repo.c4, {"experiments/mixed"}, &declared_then);
  ASSERT_TRUE(moved.has_value());
  EXPECT_TRUE(moved->empty()) << (*moved)[0];
  // The same bytes arriving from a path that was not a source then (or when the old list is not
  // known) are new code for this experiment.
  const std::vector<std::string> elsewhere = {"experiments/elsewhere"};
  const auto moved_in = git.changed_sources_since(repo.c4, {"experiments/mixed"}, &elsewhere);
  ASSERT_TRUE(moved_in.has_value());
  ASSERT_EQ(moved_in->size(), 1u);
  EXPECT_NE((*moved_in)[0].find("moved in experiments/mixed/main.cpp"), std::string::npos) << (*moved_in)[0];
  const auto unknown_then = git.changed_sources_since(repo.c4, {"experiments/mixed"});
  ASSERT_TRUE(unknown_then.has_value());
  EXPECT_EQ(unknown_then->size(), 1u);
  const auto since_c1 = git.changed_sources_since(repo.c1, {"experiments/mixed"}, &declared_then);
  ASSERT_TRUE(since_c1.has_value());
  // C3's edit before C6's move: not an exact rename, so the old path is gone and the new one added.
  EXPECT_EQ(since_c1->size(), 2u);
  const std::vector<std::string> other_then = {"experiments/other"};
  const auto edited = git.changed_sources_since(repo.c4, {"experiments/other2"}, &other_then);
  ASSERT_TRUE(edited.has_value());
  ASSERT_EQ(edited->size(), 1u);
  EXPECT_NE((*edited)[0].find("experiments/other2/a.cpp"), std::string::npos) << (*edited)[0];
  const auto left = git.changed_sources_since(repo.c4, {"experiments/other"});
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(left->size(), 1u);
  EXPECT_FALSE(git.changed_sources_since("0123456789abcdef", {"experiments/mixed"}).has_value());

  // The store reads the sources declared then from the registry at the result's commit.
  ResultStore store(repo.dir.string(), "", load_registry((repo.dir / "validation/claims_registry.json").string()));
  const ResultSource& mixed = store.get("mixed");
  ASSERT_TRUE(mixed.stale.has_value());
  EXPECT_FALSE(*mixed.stale) << mixed.stale_text();
  EXPECT_TRUE(mixed.stale_commits.empty());
}

TEST(ValidationGit, StaleChoiceRuleHistoryAndProvenance) {
  if (std::system("git --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "git is not installed";
  FixtureRepo repo;
  const std::string reg_path = (repo.dir / "validation/claims_registry.json").string();
  const Registry reg = load_registry(reg_path);
  ResultStore store(repo.dir.string(), "", reg);
  VerdictEngine engine(reg, store);
  std::vector<ClaimVerdict> verdicts;
  for (const auto& c : reg.claims) verdicts.push_back(engine.judge(c));

  // demo: its only result predates a change to its sources: STALE, listing that commit.
  const ResultSource& demo = store.get("demo");
  std::printf("demo: %s; provenance %s (%s)\n", demo.stale_text().c_str(), demo.provenance_check.c_str(),
              demo.dirty_check.c_str());
  ASSERT_TRUE(demo.stale.has_value());
  EXPECT_TRUE(*demo.stale);
  ASSERT_EQ(demo.stale_commits.size(), 1u);
  EXPECT_EQ(demo.stale_commits[0].hash, repo.c3);
  EXPECT_EQ(demo.stale_commits[0].subject, "demo: faster loop");
  EXPECT_NE(demo.stale_text().find(repo.c3 + " demo: faster loop"), std::string::npos);
  EXPECT_EQ(demo.provenance_check, "verified");
  EXPECT_EQ(demo.dirty_check, "git_dirty=false (from env) agrees with the tree hash");
  EXPECT_TRUE(verdicts[0].parts[0].stale);

  // mixed: the stale gpu result loses to the non-stale cpu one; the failed run is listed, not judged.
  const ResultSource& mixed = store.get("mixed");
  std::printf("mixed: %s %s; %s; provenance %s\n", mixed.display_path.c_str(), mixed.preset.c_str(),
              mixed.stale_text().c_str(), mixed.provenance_check.c_str());
  EXPECT_EQ(mixed.preset, "cpu");
  ASSERT_TRUE(mixed.stale.has_value());
  EXPECT_FALSE(*mixed.stale);
  ASSERT_EQ(mixed.failed_runs.size(), 1u);
  EXPECT_EQ(mixed.failed_runs[0], "results/mixed/mixed.gpu.failed.json");
  ASSERT_EQ(mixed.ignored.size(), 1u);
  EXPECT_NE(mixed.ignored[0].find("mixed.gpu.json (stale"), std::string::npos) << mixed.ignored[0];
  EXPECT_EQ(mixed.provenance_check.rfind("MISMATCH", 0), 0u) << mixed.provenance_check;
  EXPECT_NE(mixed.dirty_check.find("CONTRADICTS"), std::string::npos) << mixed.dirty_check;
  EXPECT_EQ(verdicts[1].parts[0].outcome, Outcome::Pass);  // 1.2 >= 1, not the stale 0.2
  EXPECT_FALSE(verdicts[1].parts[0].stale);
  EXPECT_TRUE(verdicts[1].parts[0].not_covered_by_chosen.empty());
  // z: the cpu result has no z, so the stale gpu result (preferred preset) judges it, marked STALE.
  ASSERT_EQ(mixed.stale_preferred.size(), 1u);
  const RuleResult& z = verdicts[1].parts.at(1);
  EXPECT_EQ(z.outcome, Outcome::Pass) << z.reason;  // 3 >= 1, read from the stale gpu file
  EXPECT_TRUE(z.stale);
  EXPECT_NE(z.evidence.find("mixed.gpu.json"), std::string::npos) << z.evidence;
  EXPECT_NE(z.not_covered_by_chosen.find("mixed.cpu.json"), std::string::npos) << z.not_covered_by_chosen;
  // Table cells read the same way: x from the chosen cpu file, z from the stale gpu file, marked.
  TableCell cell;
  cell.experiment = "mixed";
  cell.value = "/summary/x";
  EXPECT_EQ(render_cell(cell, store).text, "1.2");
  cell.value = "/summary/z";
  EXPECT_EQ(render_cell(cell, store).text, "3 (STALE gpu result)");
  cell.value = "/summary/w";
  EXPECT_EQ(render_cell(cell, store).text, "not yet measured");

  // Rule history against the registry at C1 (the demo result's commit).
  const RuleResult& x = verdicts[0].parts.at(0);
  const RuleResult& y = verdicts[0].parts.at(1);
  ASSERT_TRUE(x.change && y.change);
  std::printf("D01.x: %s\nD01.y: %s\n", x.change->text().c_str(), y.change->text().c_str());
  EXPECT_EQ(x.change->kind, RuleChange::Changed);
  EXPECT_EQ(x.change->before.at("target"), 1.0);
  EXPECT_EQ(x.change->after.at("target"), 2.0);
  EXPECT_NE(x.change->text().find("CHANGED after its result"), std::string::npos);
  EXPECT_EQ(y.change->kind, RuleChange::Added);
  const RuleResult& d02 = verdicts[1].parts.at(0);
  ASSERT_TRUE(d02.change);
  EXPECT_EQ(d02.change->kind, RuleChange::Same);  // registry at C4 == now

  // The ledger lists both in its summary sections.
  const std::string md = render_claims_markdown(reg, verdicts, store, RenderContext{"test", "registry", ""});
  EXPECT_NE(md.find("## Stale results"), std::string::npos);
  EXPECT_NE(md.find("- `demo` (`results/demo/demo.gpu.json`): STALE"), std::string::npos) << md;
  EXPECT_NE(md.find("- D01.x: CHANGED after its result"), std::string::npos) << md;
  EXPECT_NE(md.find("- D01.y: added after its result"), std::string::npos) << md;
  EXPECT_NE(md.find("`results/mixed/mixed.gpu.failed.json`"), std::string::npos);
  EXPECT_NE(md.find("; passed over: `results/mixed/mixed.gpu.json` (stale: "), std::string::npos) << md;
  EXPECT_NE(md.find("judges only parts the chosen file does not cover"), std::string::npos) << md;
  EXPECT_NE(md.find("- Judged on a STALE result: results/mixed/mixed.gpu.json"), std::string::npos) << md;
  EXPECT_NE(md.find("judged on this STALE result: "), std::string::npos) << md;
  const json vj = verdicts_to_json(reg, verdicts, store, RenderContext{"test", "registry", ""});
  EXPECT_EQ(vj["sources"]["demo"]["stale"], true);
  EXPECT_EQ(vj["sources"]["demo"]["path"], "results/demo/demo.gpu.json");
  EXPECT_EQ(vj["sources"]["demo"]["provenance_check"], "verified");
  EXPECT_EQ(vj["sources"]["mixed"]["stale"], false);
  EXPECT_EQ(vj["claims"][0]["parts"][0]["rule_history"]["state"], "changed_after_result");
  EXPECT_TRUE(vj["claims"][1]["parts"][1].contains("not_covered_by_chosen"));
  EXPECT_FALSE(vj["claims"][1]["parts"][0].contains("not_covered_by_chosen"));
}

TEST(ValidationGit, NoGitMeansUnknownNeverACrash) {
  if (std::system("git --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "git is not installed";
  FixtureRepo repo;
  char tmpl[] = "/tmp/rbk_nogit_XXXXXX";
  const fs::path copy = ::mkdtemp(tmpl);
  // cp -R, not fs::copy: std::filesystem's tree walks crash under the LibTorch 2.11 wheel (results.h).
  for (const char* sub : {"validation", "experiments", "results"})
    ASSERT_TRUE(rbk::run_shell_command("cp -R " + rbk::shell_quote((repo.dir / sub).string()) + " " +
                                       rbk::shell_quote((copy / sub).string())).exited_zero());
  {
    const Registry reg = load_registry((copy / "validation/claims_registry.json").string());
    ResultStore store(copy.string(), "", reg);
    EXPECT_FALSE(store.git().available());
    VerdictEngine engine(reg, store);
    const ClaimVerdict v = engine.judge(reg.claims[0]);
    const ResultSource& demo = store.get("demo");
    std::printf("no git: %s; provenance %s; rule %s\n", demo.stale_text().c_str(), demo.provenance_check.c_str(),
                v.parts[0].change->text().c_str());
    EXPECT_FALSE(demo.stale.has_value());
    EXPECT_NE(demo.stale_text().find("staleness unknown (no git"), std::string::npos);
    EXPECT_EQ(demo.provenance_check, "unverifiable (no git)");
    ASSERT_TRUE(v.parts[0].change);
    EXPECT_EQ(v.parts[0].change->kind, RuleChange::Unknown);
    EXPECT_EQ(v.parts[0].change->note, "no git");
    EXPECT_EQ(v.parts[0].outcome, Outcome::Fail);  // 1.5 >= 2 fails: judged all the same
  }
  rbk::remove_directory_tree(copy.string());
}
