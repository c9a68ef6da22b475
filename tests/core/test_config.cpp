// Presets + overrides: every bad input is a ConfigError naming the key, the value and what is
// allowed; run_experiment turns it into exit code 2 and writes nothing.
#include "rbk/config.h"
#include "rbk/experiment.h"
#include "rbk/results.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace rbk {
namespace {

namespace fs = std::filesystem;

ConfigSchema demo_schema() {
  ConfigSchema s;
  s.add_int("n", 1, 1 << 20, "sequence length")
      .add_real("eps", 0.0, 1.0, "width")
      .add_bool("causal", "left context only")
      .add_string("mode", {"stable", "compat"}, "forward mode")
      .add_int_list("sizes", 1, 4096, "sweep")
      .add_real_list("zs", -10, 10, "shifts")
      .add_string_list("modes", {"a", "b"}, "modes")
      .add_int("seed", 0, 1000, "seed");
  return s;
}

std::string write_preset(const std::string& body) {
  const std::string path = (fs::temp_directory_path() / ("rbk_preset_" + std::to_string(::getpid()) + ".json")).string();
  std::ofstream(path) << body;
  return path;
}

const char* kGood = R"({"_comment": "ok", "n": 16, "eps": 0.5, "causal": false, "mode": "stable",
  "sizes": [16, 32], "zs": [0.5, -1], "modes": ["a"], "seed": 1})";

void expect_config_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    std::printf("ConfigError as expected: %s\n", e.what());
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "missing '" << n << "'";
  }
}

TEST(Config, LoadsPresetAndOverrides) {
  const auto path = write_preset(kGood);
  const Config c = load_config(demo_schema(), path, "demo", {"n=64", "sizes=8,9,10", "zs=[1.5]", "causal=true", "mode=compat"});
  EXPECT_EQ(c.get_int("n"), 64);
  EXPECT_EQ(c.get_int_list("sizes"), (std::vector<int64_t>{8, 9, 10}));
  EXPECT_EQ(c.get_real_list("zs"), (std::vector<double>{1.5}));
  EXPECT_TRUE(c.get_bool("causal"));
  EXPECT_EQ(c.get_string("mode"), "compat");
  EXPECT_DOUBLE_EQ(c.get_real("eps"), 0.5);
  std::remove(path.c_str());
}

TEST(Config, ErrorsNameKeyValueAndAllowed) {
  const auto path = write_preset(kGood);
  const auto s = demo_schema();
  expect_config_error([&] { load_config(s, path, "demo", {"nn=3"}); }, {"unknown key 'nn'", "allowed keys"});
  expect_config_error([&] { load_config(s, path, "demo", {"n=abc"}); }, {"'n'", "\"abc\"", "integer"});
  expect_config_error([&] { load_config(s, path, "demo", {"n=0"}); }, {"'n'", "0", "out of range", "[1, 1.04858e+06]"});
  expect_config_error([&] { load_config(s, path, "demo", {"eps=2"}); }, {"'eps'", "out of range"});
  expect_config_error([&] { load_config(s, path, "demo", {"mode=fast"}); }, {"'mode'", "\"fast\"", "stable, compat"});
  expect_config_error([&] { load_config(s, path, "demo", {"sizes=8,x"}); }, {"'sizes'", "\"x\""});
  expect_config_error([&] { load_config(s, path, "demo", {"causal=maybe"}); }, {"'causal'", "boolean"});
  expect_config_error([&] { load_config(s, path, "demo", {"novalue"}); }, {"key=value"});
  std::remove(path.c_str());
  const auto missing = write_preset(R"({"n": 16})");
  expect_config_error([&] { load_config(s, missing, "demo", {}); }, {"missing key 'eps'"});
  std::remove(missing.c_str());
  const auto typo = write_preset(R"({"n": 16.5})");
  expect_config_error([&] { load_config(s, typo, "demo", {}); }, {"'n'", "16.5", "not an integer"});
  std::remove(typo.c_str());
  const auto broken = write_preset("{\"n\": ");
  expect_config_error([&] { load_config(s, broken, "demo", {}); }, {"not valid JSON"});
  std::remove(broken.c_str());
  expect_config_error([&] { load_config(s, "/nonexistent/p.json", "demo", {}); }, {"cannot be opened", "/nonexistent/p.json"});
}

TEST(Experiment, BadConfigExitsTwoAndWritesNothing) {
  const fs::path out = fs::temp_directory_path() / ("rbk_exp_" + std::to_string(::getpid()));
  const auto path = write_preset(R"({"n": 16, "seed": 3})");
  ExperimentSpec spec{"demo", {"C00"}, "demo", {}};
  spec.schema.add_int("n", 1, 100, "n");
  int ran = 0;
  auto body = [&](const Config& c, ExperimentOutput& o) {
    ++ran;
    o.rows.push_back({{"status", "ok"}, {"n", c.get_int("n")}});
    o.summary["n"] = c.get_int("n");
  };
  std::vector<std::string> args = {"exp_demo", "--preset", "custom", "--preset-file", path, "--out", out.string(), "n=1000"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  EXPECT_EQ(run_experiment(int(argv.size()), argv.data(), spec, body), 2);
  EXPECT_EQ(ran, 0);
  EXPECT_FALSE(fs::exists(out));
  // A good run writes a complete, checkable result.
  args.back() = "n=7";
  argv.clear();
  for (auto& a : args) argv.push_back(a.data());
  EXPECT_EQ(run_experiment(int(argv.size()), argv.data(), spec, body), 0);
  const std::string file = (out / "demo.custom.json").string();
  ASSERT_TRUE(fs::exists(file)) << file;
  const auto doc = read_json_file(file);
  EXPECT_NO_THROW(check_result_document(doc, file));
  EXPECT_EQ(doc["summary"]["n"], 7);
  EXPECT_EQ(doc["context"]["seed"], 3);
  EXPECT_EQ(doc["status"], "ok");
  // A failing body does not overwrite the good result: it lands beside it as *.failed.json.
  auto failing = [](const Config&, ExperimentOutput&) { throw std::runtime_error("boom"); };
  EXPECT_EQ(run_experiment(int(argv.size()), argv.data(), spec, failing), 1);
  EXPECT_EQ(read_json_file(file)["status"], "ok");
  EXPECT_EQ(read_json_file((out / "demo.custom.failed.json").string())["error"], "boom");
  rbk::remove_directory_tree(out.string());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace rbk
