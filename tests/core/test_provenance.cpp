// Provenance that a reviewer can check (issue 16): the tracked-tree hash of a fixture repository
// equals git's own tree for a clean tree and moves when a tracked file changes, untracked files
// are flagged, RBK_GIT_* claims are checked against git, the BLAS in use and a measured sgemm
// rate are recorded, and a GPU-only experiment without a device exits 77 and writes nothing.
// (Scratch trees go with remove_directory_tree, not std::filesystem::remove_all: see results.h.)
#include "rbk/experiment.h"
#include "rbk/results.h"
#include "rbk/run_context.h"
#include "rbk/torch_compat.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace rbk {
namespace {

namespace fs = std::filesystem;

std::string sh(const std::string& cmd) {
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return out;
  std::array<char, 256> buf{};
  while (fgets(buf.data(), buf.size(), pipe)) out += buf.data();
  pclose(pipe);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool have_git() { return std::system("git --version >/dev/null 2>&1") == 0; }

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

// A throw-away repository with two committed files; removed at the end of the test.
class GitFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_git()) GTEST_SKIP() << "git is not installed";
    dir_ = fs::temp_directory_path() / ("rbk_git_fixture_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    remove_directory_tree(dir_.string());
    fs::create_directories(dir_ / "src");
    write_file(dir_ / "README", "fixture\n");
    write_file(dir_ / "src" / "a.txt", "one\n");
    write_file(dir_ / ".gitignore", "ignored/\n");
    git("init -q");
    git("add -A");
    git("-c user.name=rbk -c user.email=rbk@example.invalid -c commit.gpgsign=false commit -q --no-verify -m fixture");
  }
  void TearDown() override {
    if (!dir_.empty()) remove_directory_tree(dir_.string());
  }
  std::string git(const std::string& args) { return sh("git -C '" + dir_.string() + "' " + args + " 2>&1"); }
  std::string head_tree() { return git("rev-parse 'HEAD^{tree}'"); }
  fs::path dir_;
};

TEST_F(GitFixture, CleanTreeHashEqualsHeadTree) {
  const GitState g = capture_git_state(dir_.string());
  ASSERT_TRUE(g.is_repo) << g.error;
  std::printf("commit %s tree %s head_tree %s\n", g.commit.c_str(), g.tree_hash.c_str(), head_tree().c_str());
  EXPECT_EQ(g.commit, git("rev-parse HEAD"));
  EXPECT_EQ(g.tree_hash, head_tree());
  EXPECT_EQ(g.dirty, "false");
  ASSERT_TRUE(g.untracked_present.has_value());
  EXPECT_FALSE(*g.untracked_present);
}

TEST_F(GitFixture, ModifiedTrackedFileChangesTreeHashAndLeavesIndexAlone) {
  const std::string index_before = git("ls-files --stage --debug");
  write_file(dir_ / "src" / "a.txt", "two\n");  // same size as before: only the content differs
  const GitState g = capture_git_state(dir_.string());
  ASSERT_TRUE(g.is_repo) << g.error;
  EXPECT_FALSE(g.tree_hash.empty());
  EXPECT_NE(g.tree_hash, head_tree());
  EXPECT_EQ(g.dirty, "true");
  // The tree hash is exactly what git would commit: stage into a scratch index and compare.
  const std::string scratch = (dir_.parent_path() / ("rbk_scratch_index_" + std::to_string(::getpid()))).string();
  const std::string expected = sh("cd '" + dir_.string() + "' && GIT_INDEX_FILE='" + scratch +
                                  "' git read-tree HEAD && GIT_INDEX_FILE='" + scratch + "' git add -u && GIT_INDEX_FILE='" +
                                  scratch + "' git write-tree");
  std::remove(scratch.c_str());
  EXPECT_EQ(g.tree_hash, expected);
  // The real index is untouched: nothing staged, same entries and stat data.
  EXPECT_EQ(git("diff --cached --name-only"), "");
  EXPECT_EQ(git("ls-files --stage --debug"), index_before);
  // Restoring the content restores the hash.
  write_file(dir_ / "src" / "a.txt", "one\n");
  EXPECT_EQ(capture_git_state(dir_.string()).tree_hash, head_tree());
}

TEST_F(GitFixture, UntrackedFilesAreFlaggedButIgnoredOnesAreNot) {
  fs::create_directories(dir_ / "ignored");
  write_file(dir_ / "ignored" / "big.bin", "x");
  GitState g = capture_git_state(dir_.string());
  ASSERT_TRUE(g.untracked_present.has_value());
  EXPECT_FALSE(*g.untracked_present);
  write_file(dir_ / "src" / "new.txt", "untracked\n");
  g = capture_git_state(dir_.string());
  ASSERT_TRUE(g.untracked_present.has_value());
  EXPECT_TRUE(*g.untracked_present);
  // An untracked file is not part of the tracked tree: still clean, still HEAD's tree.
  EXPECT_EQ(g.tree_hash, head_tree());
  EXPECT_EQ(g.dirty, "false");
}

TEST_F(GitFixture, EnvironmentClaimsAreCheckedAgainstGit) {
  const GitState g = capture_git_state(dir_.string());
  ASSERT_TRUE(g.is_repo);
  RunContext c;
  c.set_git_provenance(g, g.commit.substr(0, 12).c_str(), "false");
  EXPECT_EQ(c.git_env_mismatch, "");
  EXPECT_EQ(c.git_source, "git");
  EXPECT_EQ(c.git_dirty_source, "git");
  EXPECT_EQ(c.git_tree_hash_source, "git");
  EXPECT_EQ(c.to_json()["git_env_mismatch"], nullptr);
  const std::string wrong(40, 'a');
  c.set_git_provenance(g, wrong.c_str(), "true");
  std::printf("mismatch: %s\n", c.git_env_mismatch.c_str());
  EXPECT_NE(c.git_env_mismatch.find("RBK_GIT_COMMIT"), std::string::npos);
  EXPECT_NE(c.git_env_mismatch.find("RBK_GIT_DIRTY"), std::string::npos);
  EXPECT_EQ(c.git_commit, g.commit);  // git's value is recorded, the claim only quoted
  EXPECT_EQ(c.git_dirty, "false");
  c.set_git_provenance(g, nullptr, "unknown");  // "unknown" claims nothing
  EXPECT_EQ(c.git_env_mismatch, "");
}

TEST(Provenance, NoGitFallsBackToTheEnvironment) {
  const fs::path dir = fs::temp_directory_path() / ("rbk_no_git_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const GitState g = capture_git_state(dir.string());
  remove_directory_tree(dir.string());
  EXPECT_FALSE(g.is_repo);
  RunContext c;
  const std::string sha(40, 'b');
  c.set_git_provenance(g, sha.c_str(), "false");
  const auto j = c.to_json();
  EXPECT_EQ(j["git_commit"], sha);
  EXPECT_EQ(j["git_source"], "env");
  EXPECT_EQ(j["git_dirty_source"], "env");
  EXPECT_EQ(j["git_dirty"], "false");
  EXPECT_EQ(j["git_tree_hash"], nullptr);
  EXPECT_EQ(j["git_tree_hash_source"], nullptr);
  EXPECT_EQ(j["git_untracked_present"], nullptr);
  // A tree hash computed from the files sent (run_device.sh) is recorded for the ledger to check
  // against the commit's tree; anything but 40 hex digits is not a hash and is dropped.
  const std::string tree(40, 'c');
  c.set_git_provenance(g, sha.c_str(), "false", tree.c_str());
  EXPECT_EQ(c.to_json()["git_tree_hash"], tree);
  EXPECT_EQ(c.to_json()["git_tree_hash_source"], "env");
  c.set_git_provenance(g, sha.c_str(), "false", "not-a-hash");
  EXPECT_EQ(c.to_json()["git_tree_hash"], nullptr);
  c.set_git_provenance(g, nullptr, nullptr, tree.c_str());  // no commit named: nothing to check it against
  EXPECT_EQ(c.git_source, "configure-time");
  EXPECT_EQ(c.to_json()["git_tree_hash"], nullptr);
}

TEST(Provenance, ComputeProbeRecordsBlasAndSgemmRate) {
  char arg0[] = "prog";
  char* argv[] = {arg0};
  RunContext c = RunContext::capture(1, argv, 1);
  c.probe_compute();
  const auto j = c.to_json();
  std::printf("blas=%s threads=%s sgemm=%s GFLOP/s mapped=%s\n", j["blas"].dump().c_str(), j["blas_threads"].dump().c_str(),
              j["sgemm_gflops"].dump().c_str(), j["blas_mapped"].dump().c_str());
  for (const char* k : {"git_tree_hash", "git_untracked_present", "git_dirty", "git_dirty_source", "git_env_mismatch", "blas",
                        "blas_mapped", "blas_threads", "sgemm_gflops", "sgemm_probe"})
    EXPECT_TRUE(j.contains(k)) << k;
  ASSERT_TRUE(j["blas"].is_string());
  EXPECT_FALSE(j["blas"].get<std::string>().empty());
  EXPECT_NE(j["blas"], "not probed");
  ASSERT_TRUE(j["sgemm_gflops"].is_number());
  EXPECT_GT(j["sgemm_gflops"].get<double>(), 0.0);
  // Debian's LibTorch 1.13 reaches its BLAS through the shared libblas.so.3: it must be named.
  if (fs::exists("/usr/lib/x86_64-linux-gnu/libblas.so.3") && c.torch_version.rfind("1.", 0) == 0) {
    EXPECT_NE(j["blas"], "unknown");
  }
  // OpenBLAS's own pool follows the run's thread count (at::set_num_threads does not reach it).
  if (!j["blas_threads"].is_null()) {
    EXPECT_EQ(j["blas_threads"], c.cpu_threads);
  }
  EXPECT_TRUE(j["git_dirty"] == "true" || j["git_dirty"] == "false" || j["git_dirty"] == "unknown");
  // The source tree is a git checkout here (CI clones it): the tree hash is recorded.
  if (c.git_source == "git") {
    ASSERT_TRUE(j["git_tree_hash"].is_string());
    EXPECT_EQ(j["git_tree_hash"].get<std::string>().size(), 40u);
    EXPECT_TRUE(j["git_untracked_present"].is_boolean());
  }
}

TEST(Provenance, BlasNamesItsLibrary) {
  std::vector<std::string> mapped;
  const std::string blas = loaded_blas_library(&mapped);
  std::printf("%s\n", blas.c_str());
  EXPECT_NE(blas, "");
  // On the Debian CPU machine the BLAS is a shared library that must appear in the maps.
  if (blas.find("(/") != std::string::npos && blas.find("linked into") == std::string::npos) {
    EXPECT_FALSE(mapped.empty());
  }
}

// A GPU-only experiment on a machine without CUDA: exit 77, one line, nothing written, the body
// never runs; a bad configuration still exits 2 first.
TEST(Experiment, RequiresCudaWithoutDeviceExitsSeventySevenAndWritesNothing) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is visible: the skip path cannot be exercised here";
  const fs::path out = fs::temp_directory_path() / ("rbk_exp77_" + std::to_string(::getpid()));
  const fs::path preset = fs::temp_directory_path() / ("rbk_exp77_preset_" + std::to_string(::getpid()) + ".json");
  write_file(preset, R"({"n": 16, "seed": 3})");
  ExperimentSpec spec{"gpu_demo", {}, "GPU-only demo", {}};
  spec.schema.add_int("n", 1, 100, "n");
  spec.requires_cuda = true;
  int ran = 0;
  auto body = [&](const Config&, ExperimentOutput& o) {
    ++ran;
    o.rows.push_back({{"status", "ok"}});
  };
  std::vector<std::string> args = {"exp_gpu_demo", "--preset-file", preset.string(), "--out", out.string(), "n=1000"};
  auto run = [&] {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return run_experiment(int(argv.size()), argv.data(), spec, body);
  };
  EXPECT_EQ(run(), 2);  // n = 1000 is out of range: configuration errors win
  args.back() = "n=7";
  testing::internal::CaptureStdout();
  const int code = run();
  const std::string printed = testing::internal::GetCapturedStdout();
  std::printf("%s", printed.c_str());
  EXPECT_EQ(code, kExitSkipped);
  EXPECT_EQ(kExitSkipped, 77);
  EXPECT_NE(printed.find("exp_gpu_demo: needs a CUDA device; none visible"), std::string::npos);
  EXPECT_EQ(ran, 0);
  EXPECT_FALSE(fs::exists(out));
  // The same spec without the flag runs and writes: the skip is the flag's doing.
  spec.requires_cuda = false;
  EXPECT_EQ(run(), 0);
  EXPECT_EQ(ran, 1);
  EXPECT_TRUE(fs::exists(out / ("gpu_demo." + preset.stem().string() + ".json")));
  remove_directory_tree(out.string());
  std::remove(preset.c_str());
}

}  // namespace
}  // namespace rbk
