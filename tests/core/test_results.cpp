// Result files: atomic JSON/HDF5 writers round-trip, carry provenance, and malformed files give
// errors naming the file and the field.
#include "rbk/results.h"
#include "rbk/run_context.h"
#include "rbk/timing.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace rbk {
namespace {

namespace fs = std::filesystem;

fs::path scratch(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("rbk_results_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}

TEST(Results, JsonAtomicRoundTripLeavesNoTemporaries) {
  const auto path = scratch("sub/dir/r.json");
  write_json_atomic(path.string(), {{"a", 1}, {"b", {1.5, 2.5}}});
  write_json_atomic(path.string(), {{"a", 2}});
  EXPECT_EQ(read_json_file(path.string())["a"], 2);
  for (const auto& e : fs::directory_iterator(path.parent_path()))
    EXPECT_EQ(e.path().filename(), "r.json") << "left behind: " << e.path();
}

TEST(Results, Hdf5RoundTripWithUnitsAndProvenance) {
  const auto path = scratch("arrays.h5").string();
  std::vector<ArrayRecord> arrays{make_array("mode/x", {1.0, 2.5, -3.0}, "s", "times"),
                                  make_int_array("mode/n", {16, 32, 64}, "1", "sizes")};
  arrays[0].shape = {3};
  ArrayRecord m = make_array("matrix", {1, 2, 3, 4, 5, 6}, "1", "2x3");
  m.shape = {2, 3};
  arrays.push_back(m);
  write_hdf5_atomic(path, arrays, {{"git_commit", "abc"}, {"context", "{\"seed\": 1}"}});
  std::vector<int64_t> shape;
  EXPECT_EQ(read_hdf5_dataset(path, "mode/x"), (std::vector<double>{1.0, 2.5, -3.0}));
  EXPECT_EQ(read_hdf5_dataset(path, "mode/n"), (std::vector<double>{16, 32, 64}));
  EXPECT_EQ(read_hdf5_dataset(path, "matrix", &shape).size(), 6u);
  EXPECT_EQ(shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(read_hdf5_root_attribute(path, "git_commit"), "abc");
  EXPECT_THROW(read_hdf5_dataset(path, "nope"), ResultFileError);
  ArrayRecord bad = make_array("bad", {1, 2}, "1", "");
  bad.shape = {3};
  EXPECT_THROW(write_hdf5_atomic(path, {bad}, {}), ResultFileError);
  EXPECT_EQ(read_hdf5_root_attribute(path, "git_commit"), "abc") << "a failed write must leave the old file intact";
}

TEST(Results, MalformedFilesNameFileAndField) {
  const auto path = scratch("bad.json").string();
  std::ofstream(path) << "{not json";
  try {
    read_json_file(path);
    ADD_FAILURE();
  } catch (const ResultFileError& e) {
    std::printf("%s\n", e.what());
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  const nlohmann::json doc = {{"schema", "rbk.result/1"}, {"experiment", "x"}, {"context", {{"seed", 1}}}};
  try {
    check_result_document(doc, path);
    ADD_FAILURE();
  } catch (const ResultFileError& e) {
    std::printf("%s\n", e.what());
    EXPECT_NE(std::string(e.what()).find("context.git_commit"), std::string::npos);
  }
}

TEST(RunContext, RecordsProvenance) {
  char arg0[] = "prog";
  char* argv[] = {arg0};
  RunContext c = RunContext::capture(1, argv, 42);
  c.finish();
  const auto j = c.to_json();
  std::printf("%s\n", j.dump().c_str());
  for (const char* k : {"git_commit", "git_dirty", "build_type", "compiler", "torch_version", "cuda_version", "device",
                        "host", "seed", "argv", "started_at", "finished_at"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["seed"], 42);
  EXPECT_FALSE(c.torch_version.empty());
  // Every machine this project runs on (Linux) names its CPU in /proc/cpuinfo.
  EXPECT_TRUE(j["cpu_model"].is_string()) << j["cpu_model"];
  EXPECT_TRUE(j["cpu_vector_extensions"].is_array());
}

// x86 ("model name", "flags") and Arm ("Features", no model name) layouts; an extension is matched as
// a whole word (avx512f is not avx512fp16's prefix match, avx is not found inside avx2).
TEST(RunContext, ParsesCpuinfo) {
  const CpuIdentity x86 = parse_cpuinfo(
      "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8488C \nflags\t\t: fpu sse4_2 avx2 fma avx512f avx512fp16 amx_tile\n"
      "processor\t: 1\nmodel name\t: other\nflags\t\t: avx\n");
  EXPECT_EQ(x86.model, "Intel(R) Xeon(R) Platinum 8488C");
  EXPECT_EQ(x86.vector_extensions, (std::vector<std::string>{"sse4_2", "avx2", "fma", "avx512f", "amx_tile"}));
  const CpuIdentity arm = parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd sve\nCPU part\t: 0xd40\n");
  EXPECT_EQ(arm.model, "");
  EXPECT_EQ(arm.vector_extensions, (std::vector<std::string>{"asimd", "sve"}));
  EXPECT_TRUE(parse_cpuinfo("").vector_extensions.empty());
}

TEST(Timing, PowerLawFitAndMedian) {
  std::vector<double> n{16, 64, 256, 1024}, t;
  for (double x : n) t.push_back(3e-9 * std::pow(x, 1.0));
  EXPECT_NEAR(fit_power_law_exponent(n, t), 1.0, 1e-12);
  for (auto& y : t) y *= y;  // ~N^2
  EXPECT_NEAR(fit_power_law_exponent(n, t), 2.0, 1e-12);
  EXPECT_DOUBLE_EQ(median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(median({4, 1, 2, 3}), 2.5);
  EXPECT_THROW(fit_power_law_exponent({1}, {1}), std::invalid_argument);
}

// The operator-call counter sees the operators it should (an add and a matmul are at least two
// calls), reset() zeroes it, only one may exist, and calls after it is destroyed are not counted.
// Result files record times in microseconds: a unit slip here would move every timing row 1e6-fold.
TEST(Timing, TimingJsonRecordsMicroseconds) {
  rbk::TimingStats t;
  t.median_s = 2.5e-6;
  t.min_s = 1e-6;
  t.max_s = 4e-3;
  t.repeats = 7;
  const nlohmann::json j = rbk::timing_json(t);
  EXPECT_DOUBLE_EQ(j.at("median_us").get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(j.at("min_us").get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j.at("max_us").get<double>(), 4000.0);
  EXPECT_EQ(j.at("repeats").get<int>(), 7);
  EXPECT_EQ(j.size(), 4u);
}

TEST(Timing, OperatorCallCounterCountsDispatchedOperators) {
  const auto a = torch::ones({4, 4});
  int64_t seen = 0;
  {
    OperatorCallCounter ops;
    EXPECT_THROW(OperatorCallCounter second, std::logic_error);
    auto b = (a + 1).matmul(a);
    seen = ops.count();
    EXPECT_GE(seen, 2);
    ops.reset();
    EXPECT_EQ(ops.count(), 0);
    b = b.sum();
    EXPECT_GE(ops.count(), 1);
    // A composite operator's inner calls are counted, but only it is outermost.
    ops.reset();
    const auto c = torch::cat({a, a}).norm(2.0);
    EXPECT_EQ(ops.outermost_count(), 2);
    EXPECT_GT(ops.count(), ops.outermost_count());
  }
  OperatorCallCounter again;  // the first one's end released the slot
  EXPECT_EQ(again.count(), 0);
  std::printf("an add and a matmul of 4x4: %lld operator calls\n", static_cast<long long>(seen));
}

}  // namespace
}  // namespace rbk

// Checkpoint directories of finished runs are deleted with rbk::remove_directory_tree (nftw), not
// std::filesystem::remove_all (see results.h): nested files and directories go, a missing path is
// success, and a symbolic link is removed without touching what it points to.
TEST(Results, RemoveDirectoryTreeDeletesNestedEntriesButNotLinkTargets) {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("rbk_rmtree_" + std::to_string(::getpid()));
  const fs::path keep = fs::temp_directory_path() / ("rbk_rmtree_keep_" + std::to_string(::getpid()));
  fs::create_directories(root / "a" / "b");
  fs::create_directories(keep);
  std::ofstream(root / "top.txt") << "x";
  std::ofstream(root / "a" / "b" / "deep.pt") << "y";
  std::ofstream(keep / "target.txt") << "z";
  fs::create_directory_symlink(keep, root / "a" / "link");
  EXPECT_TRUE(rbk::remove_directory_tree(root.string()));
  EXPECT_FALSE(fs::exists(root));
  EXPECT_TRUE(fs::exists(keep / "target.txt"));
  EXPECT_TRUE(rbk::remove_directory_tree(root.string()));  // already gone: success
  EXPECT_TRUE(rbk::remove_directory_tree(keep.string()));
  EXPECT_FALSE(fs::exists(keep));
}
