// The option sections (options.h) and the one data path (lm_data.h): every field of every section
// survives JSON -> Config -> struct -> JSON; every bad value is a ConfigError naming its key; each
// cross-field check names both keys; an experiment with a bad section value exits 2 and writes
// nothing; presets may omit section keys (defaults recorded) and nest sections.
#include "rbk/experiment.h"
#include "rbk/lm_data.h"
#include "rbk/options.h"
#include "rbk/results.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

namespace rbk {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

ConfigSchema all_sections() {
  ConfigSchema s;
  add_data_options(s, "data.");
  add_lm_config_options(s, "model.");
  add_train_options(s, "train.");
  add_bk_core_options(s, "bk.");
  s.add_int("n_seeds", 1, 10, "an experiment's own flat key");
  return s;
}

std::string write_preset(const std::string& body) {
  static int counter = 0;
  const std::string path = (fs::temp_directory_path() / ("rbk_options_" + std::to_string(::getpid()) + "_" +
                                                         std::to_string(counter++) + ".json")).string();
  std::ofstream(path) << body;
  return path;
}

Config load(const std::string& preset, const std::vector<std::string>& overrides = {}) {
  const auto path = write_preset(preset);
  Config c = load_config(all_sections(), path, "test", overrides);
  fs::remove(path);
  return c;
}

void expect_config_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "no ConfigError; expected one naming " << json(needles).dump();
  } catch (const ConfigError& e) {
    std::printf("  error: %s\n", e.what());
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "missing '" << n << "' in: " << e.what();
  }
}

// A valid value of f that differs from its default d (another choice, a flipped bool, a number
// moved inside its range, another free string).
template <class S>
json other_value(const OptionField<S>& f, const json& d) {
  switch (f.type) {
    case ParamType::Bool: return !d.get<bool>();
    case ParamType::String:
      if (f.choices.empty()) return d.get<std::string>() + "_other";
      for (const auto& c : f.choices)
        if (c != d.get<std::string>()) return c;
      break;
    case ParamType::Int: {
      const int64_t v = d.get<int64_t>();
      return double(v + 1) <= f.max ? v + 1 : v - 1;
    }
    case ParamType::Real: {
      const double v = d.get<double>();
      const double step = std::isfinite(f.max - f.min) ? std::min(0.25, (f.max - f.min) / 4) : 0.25;
      return v + step <= f.max ? v + step : v - step;
    }
    default: break;
  }
  ADD_FAILURE() << "no other value for " << f.name;
  return d;
}

// One field at a time (changing several at once would trip cross-field checks that are tested
// on their own below): the preset value comes back through the Config, the struct and its JSON.
template <class S>
void round_trip_section(const std::string& section, const std::vector<OptionField<S>>& fields,
                        const std::function<S(const Config&)>& from_config, const std::function<json(const S&)>& to_json,
                        const std::function<S(const json&)>& from_json) {
  const S defaults{};
  ASSERT_FALSE(fields.empty());
  for (const auto& f : fields) {
    SCOPED_TRACE(section + "." + f.name);
    const json v = other_value(f, f.get(defaults));
    ASSERT_NE(v, f.get(defaults));
    const Config cfg = load(json{{"n_seeds", 1}, {section, {{f.name, v}}}}.dump());
    EXPECT_EQ(cfg.values().at(section + "." + f.name), v);
    const S s = from_config(cfg);
    EXPECT_EQ(f.get(s), v);
    json expected = to_json(defaults);
    expected[f.name] = v;
    EXPECT_EQ(to_json(s), expected);
    EXPECT_EQ(to_json(from_json(to_json(s))), expected);
    // The same through a key=value override.
    const Config over = load(R"({"n_seeds": 1})", {section + "." + f.name + "=" + (v.is_string() ? v.get<std::string>() : v.dump())});
    EXPECT_EQ(f.get(from_config(over)), v);
  }
}

TEST(Options, EveryFieldOfEverySectionRoundTrips) {
  round_trip_section<DataOptions>(
      "data", data_option_fields(), [](const Config& c) { return data_options_from(c); }, data_options_to_json,
      data_options_from_json);
  round_trip_section<LmConfig>(
      "model", lm_config_fields(), [](const Config& c) { return lm_config_from(c); },
      [](const LmConfig& c) { return c.to_json(); },
      [](const json& j) {
        // LmConfig::from_json validates fully: V comes from a tokenizer, so give one when unset.
        const int64_t v = j.at("vocab_size").get<int64_t>();
        json k = j;
        if (v < 2) k["vocab_size"] = 97;
        LmConfig c = LmConfig::from_json(k);
        c.vocab_size = v;
        return c;
      });
  // bf16 needs CUDA: the Config side is read for a CUDA device (nothing runs on it).
  round_trip_section<TrainOptions>(
      "train", train_option_fields(), [](const Config& c) { return train_options_from(c, "train.", torch::Device(torch::kCUDA)); },
      train_options_to_json, train_options_from_json);
  round_trip_section<BkCoreOptions>(
      "bk", bk_core_option_fields(), [](const Config& c) { return bk_core_options_from(c); }, bk_core_options_to_json,
      bk_core_options_from_json);
}

TEST(Options, ModelTableCoversEveryLmConfigJsonKey) {
  // LmConfig::to_json is the table: one key per field, and nothing the table does not know.
  LmConfig c;
  c.vocab_size = 97;
  const json j = c.to_json();
  EXPECT_EQ(j.size(), lm_config_fields().size());
  for (const auto& f : lm_config_fields()) EXPECT_TRUE(j.contains(f.name)) << f.name;
  EXPECT_EQ(LmConfig::from_json(j).to_json(), j);
  // Checkpoints written before a field existed still load: missing keys keep their defaults.
  EXPECT_EQ(LmConfig::from_json(json{{"vocab_size", 97}}).to_json(), j);
}

TEST(Options, OmittedSectionKeysTakeTheStructDefaultAndAreRecorded) {
  const Config cfg = load(R"({"n_seeds": 2})");
  const LmConfig m;
  const TrainOptions t;
  EXPECT_EQ(cfg.values().at("model.d_model"), m.d_model);
  EXPECT_EQ(cfg.values().at("train.lr"), t.lr);
  EXPECT_EQ(cfg.values().at("data.tokenizer"), "word");
  EXPECT_EQ(cfg.values().at("bk.z_imag"), 1.0);
  EXPECT_EQ(cfg.values().size(), all_sections().params().size());  // the resolved config is complete
  // An experiment's own key without a default is still required.
  expect_config_error([] { load("{}"); }, {"missing key 'n_seeds'"});
  // A program's recipe default replaces the struct's and is recorded.
  ConfigSchema s;
  add_lm_config_options(s, "model.", {{"block", "poc"}});
  const auto path = write_preset("{}");
  EXPECT_EQ(load_config(s, path, "t", {}).values().at("model.block"), "poc");
  expect_config_error([&] { add_lm_config_options(s, "m2.", {{"blok", "poc"}}); }, {"blok"});
  fs::remove(path);
}

TEST(Options, NestedAndFlatSectionKeysAreTheSame) {
  const Config nested = load(R"({"n_seeds": 1, "model": {"d_model": 32, "n_heads": 2}, "train": {"lr": 0.01}})");
  const Config flat = load(R"({"n_seeds": 1, "model.d_model": 32, "model.n_heads": 2, "train.lr": 0.01})");
  EXPECT_EQ(nested.values(), flat.values());
  EXPECT_EQ(lm_config_from(nested).d_model, 32);
  expect_config_error([] { load(R"({"n_seeds": 1, "model": {"d_model": 32}, "model.d_model": 16})"); },
                      {"model.d_model", "twice"});
  expect_config_error([] { load(R"({"n_seeds": 1, "model": {"d_modle": 32}})"); }, {"unknown key 'model.d_modle'"});
}

TEST(Options, BadValuePerTypeNamesTheKey) {
  const std::string base = R"({"n_seeds": 1})";
  expect_config_error([&] { load(base, {"model.d_model=0"}); }, {"model.d_model", "out of range"});
  expect_config_error([&] { load(base, {"train.batch_size=1.5"}); }, {"train.batch_size", "not an integer"});
  expect_config_error([&] { load(base, {"train.lr=nan"}); }, {"train.lr", "not finite"});
  expect_config_error([&] { load(base, {"train.lr=100"}); }, {"train.lr", "out of range"});
  expect_config_error([&] { load(base, {"model.arch=lstm"}); }, {"model.arch", "lstm", "resnet_bk"});
  expect_config_error([&] { load(base, {"bk.forward=fast"}); }, {"bk.forward", "fast", "stable"});
  expect_config_error([&] { load(base, {"train.checkpoint_blocks=maybe"}); }, {"train.checkpoint_blocks"});
  expect_config_error([&] { load(base, {"model.d_modle=3"}); }, {"unknown key 'model.d_modle'"});
  expect_config_error([] { load(R"({"n_seeds": 1, "model": {"d_model": "big"}})"); }, {"model.d_model", "not an integer"});
  expect_config_error([] { load(R"({"n_seeds": 1, "data": {"data_dir": 3}})"); }, {"data.data_dir", "not a string"});
  // Every field of every section rejects a value of the wrong type, naming its key.
  auto wrong_type = [](ParamType t) { return t == ParamType::String ? json(42) : json("text"); };
  for (const auto& f : lm_config_fields())
    expect_config_error([&] { load(json{{"n_seeds", 1}, {"model", {{f.name, wrong_type(f.type)}}}}.dump()); }, {"model." + f.name});
  for (const auto& f : train_option_fields())
    expect_config_error([&] { load(json{{"n_seeds", 1}, {"train", {{f.name, wrong_type(f.type)}}}}.dump()); }, {"train." + f.name});
  for (const auto& f : data_option_fields())
    expect_config_error([&] { load(json{{"n_seeds", 1}, {"data", {{f.name, wrong_type(f.type)}}}}.dump()); }, {"data." + f.name});
  for (const auto& f : bk_core_option_fields())
    expect_config_error([&] { load(json{{"n_seeds", 1}, {"bk", {{f.name, wrong_type(f.type)}}}}.dump()); }, {"bk." + f.name});
  // LmConfig's own JSON keeps std::invalid_argument, naming the key.
  LmConfig c;
  c.vocab_size = 97;
  json j = c.to_json();
  j["d_model"] = "wide";
  try {
    LmConfig::from_json(j);
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("d_model"), std::string::npos) << e.what();
  }
  j = c.to_json();
  j["vocab_size"] = 1;
  EXPECT_THROW(LmConfig::from_json(j), std::invalid_argument);
}

TEST(Options, EachCrossFieldCheckNamesBothKeys) {
  auto model = [](const std::vector<std::string>& o) { return lm_config_from(load(R"({"n_seeds": 1})", o)); };
  expect_config_error([&] { model({"model.bk_context=causal", "model.bk_forward=compat_poc"}); },
                      {"model.bk_context", "model.bk_forward", "compat_poc", "stable"});
  expect_config_error([&] { model({"model.bk_gradient=autograd", "model.bk_forward=compat_papertime"}); },
                      {"model.bk_gradient", "model.bk_forward"});
  expect_config_error([&] { model({"model.arch=mamba", "model.position=learned"}); },
                      {"model.position", "model.arch", "mamba", "auto, none"});
  expect_config_error([&] { model({"model.arch=resnet_bk", "model.position=rotary"}); },
                      {"model.position", "model.arch", "sinusoidal"});
  expect_config_error([&] { model({"model.top_k=5", "model.num_experts=4"}); }, {"model.top_k", "model.num_experts", "5", "4"});
  expect_config_error([&] { model({"model.router=scattering_phase", "model.block=poc"}); },
                      {"model.router", "model.block", "papertime"});
  expect_config_error([&] { model({"model.arch=transformer", "model.d_model=64", "model.n_heads=5"}); },
                      {"model.d_model", "model.n_heads", "64", "5"});
  expect_config_error([&] { model({"model.bk_z_imag=0"}); }, {"model.bk_z_imag", "Im z > 0"});
  // Allowed combinations pass: rotary on the Transformer, causal with the stable forward.
  EXPECT_EQ(model({"model.arch=transformer", "model.position=rotary", "model.n_heads=4"}).position, "rotary");
  EXPECT_EQ(model({"model.bk_context=causal"}).bk_context, "causal");

  expect_config_error([] { train_options_from(load(R"({"n_seeds": 1})", {"train.precision=bf16"}), "train.", torch::kCPU); },
                      {"train.precision", "bf16", "cpu", "fp32"});
  const Config mt = load(R"({"n_seeds": 1, "model": {"n_seq": 32}, "train": {"seq_len": 64}})");
  expect_config_error([&] { check_model_and_training(lm_config_from(mt), train_options_from(mt, "train.", torch::kCPU)); },
                      {"train.seq_len", "model.n_seq", "64", "32"});
  const Config lay = load(R"({"n_seeds": 1, "model": {"arch": "transformer"}, "train": {"layout": "upstream_time_major"}})");
  expect_config_error([&] { check_model_and_training(lm_config_from(lay), train_options_from(lay, "train.", torch::kCPU)); },
                      {"train.layout", "model.arch", "transformer"});
  expect_config_error([] { bk_core_options_from(load(R"({"n_seeds": 1})", {"bk.context=causal", "bk.forward=compat_poc"})); },
                      {"bk.context", "bk.forward"});
}

TEST(Options, ExperimentWithABadSectionValueExitsTwoAndWritesNothing) {
  const fs::path out = fs::temp_directory_path() / ("rbk_options_exp_" + std::to_string(::getpid()));
  const auto path = write_preset(R"({"seed": 1, "model": {"d_model": 16, "n_layers": 1}, "train": {"max_steps": 2}})");
  ExperimentSpec spec{"options_demo", {"C00"}, "demo", {}};
  add_lm_config_options(spec.schema, "model.");
  add_train_options(spec.schema, "train.");
  int finished = 0;
  auto body = [&](const Config& c, ExperimentOutput& o) {
    const LmConfig m = lm_config_from(c, "model.");
    const TrainOptions t = train_options_from(c, "train.", torch::kCPU);
    check_model_and_training(m, t);
    ++finished;
    o.rows.push_back({{"status", "ok"}, {"d_model", m.d_model}});
  };
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"exp_options_demo", "--preset", "custom", "--preset-file", path, "--out", out.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return run_experiment(int(argv.size()), argv.data(), spec, body);
  };
  for (const auto& bad : std::vector<std::vector<std::string>>{{"model.d_model=0"},              // schema range
                                                                {"model.arch=lstm"},              // unknown choice
                                                                {"train.lr=nan"},                 // real not finite
                                                                {"model.nope=1"},                 // unknown key
                                                                {"model.top_k=9"},                // cross-field
                                                                {"train.precision=bf16"},         // bf16 on the CPU
                                                                {"train.seq_len=999", "model.n_seq=64"}}) {
    SCOPED_TRACE(json(bad).dump());
    EXPECT_EQ(run(bad), 2);
    EXPECT_FALSE(fs::exists(out));
  }
  EXPECT_EQ(finished, 0);
  // The same preset with good values runs and records the complete, resolved sections.
  EXPECT_EQ(run({"model.d_model=24"}), 0);
  EXPECT_EQ(finished, 1);
  const auto doc = read_json_file((out / "options_demo.custom.json").string());
  EXPECT_EQ(doc.at("config").at("model.d_model"), 24);
  EXPECT_EQ(doc.at("config").at("model.block"), "papertime");  // a default, recorded
  EXPECT_EQ(doc.at("config").at("train.lr"), TrainOptions{}.lr);
  rbk::remove_directory_tree(out.string());  // not std::filesystem: see rbk/results.h
  fs::remove(path);
}

TEST(LmData, WordCorpusThroughTheOnePath) {
  DataOptions d;
  d.data_dir = "tests/data/sotu_sample";  // relative: resolved from the repository root
  const LmData data = load_lm_data(d, "");
  ASSERT_TRUE(data.train.ids.defined() && data.valid.ids.defined() && data.test.ids.defined());
  EXPECT_GT(data.train.ids.numel(), 100);
  EXPECT_EQ(data.tokenizer->kind(), "word");
  // The same ids as the corpus and tokenizer calls made by hand (what the programs did before).
  const std::string train_path = find_split_file(resolve_repo_path("tests/data/sotu_sample"), "train");
  const auto tok = WordTokenizer::build(read_corpus(train_path).lines, 0);
  EXPECT_EQ(data.vocab_size(), tok.vocab_size());
  EXPECT_TRUE(torch::equal(data.train.ids, load_token_stream(train_path, tok, "").ids));
  EXPECT_GE(data.valid_unk_rate, 0.0);
  EXPECT_LT(data.valid_unk_rate, 1.0);
  EXPECT_EQ(data.summary().at("vocab_size"), data.vocab_size());
  // A checkpoint's tokenizer record rebuilds the same tokenizer.
  const auto again = tokenizer_from_meta(data.tokenizer_meta);
  EXPECT_EQ(again->fingerprint(), data.tokenizer->fingerprint());
  // Byte limits and top-K vocabularies go through the same options.
  d.vocab_top_k = 50;
  d.train_max_bytes = 2000;
  const LmData small = load_lm_data(d, "", LmSplits::TrainOnly);
  EXPECT_EQ(small.vocab_size(), 50);
  EXPECT_GE(small.train.n_bytes, 2000);  // whole lines: stops at the first line reaching the limit
  EXPECT_LT(small.train.n_bytes, data.train.n_bytes);
  EXPECT_FALSE(small.valid.ids.defined());
}

TEST(LmData, MissingDirectoriesNameTheKeyAndTheFetchScript) {
  DataOptions d;
  d.data_dir = "/nonexistent/rbk_corpus";
  expect_config_error([&] { load_lm_data(d, ""); }, {"data.data_dir", "/nonexistent/rbk_corpus", "scripts/fetch_corpus.sh"});
  d.data_dir = "tests/data/sotu_sample";
  d.tokenizer = "gpt2_bpe";
  d.bpe_dir = "/nonexistent/gpt2";
  expect_config_error([&] { load_lm_data(d, ""); }, {"data.bpe_dir", "scripts/fetch_corpus.sh"});
  expect_config_error([] { tokenizer_from_meta(json{{"kind", "word"}}); }, {"itos"});
  expect_config_error([] { tokenizer_from_meta(json{{"kind", "char"}}); }, {"char", "word, gpt2_bpe"});
}

TEST(Options, RepoPathsResolveFromTheRepositoryRoot) {
  EXPECT_EQ(resolve_repo_path("/abs/path"), "/abs/path");
  EXPECT_EQ(resolve_repo_path(""), "");
  const std::string p = resolve_repo_path("tests/data/sotu_sample");
  EXPECT_TRUE(fs::is_directory(p)) << p;
}

}  // namespace
}  // namespace rbk
