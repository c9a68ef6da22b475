#include "seed_summary.h"

#include "discrimination.h"

#include <cmath>
#include <utility>

namespace rbk::train_poc {

namespace {

// JSON has no NaN: a seed that did not finish is written as null (nlohmann does this for NaN too,
// but saying it here keeps the intent visible).
nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json array_or_null(const std::vector<double>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (double x : v) a.push_back(number_or_null(x));
  return a;
}

nlohmann::json interval_json(const SeedInterval& s) {
  return {{"n", s.n}, {"all_finite", s.all_finite}, {"mean", number_or_null(s.mean)},
          {"ci95_lo", s.has_interval ? number_or_null(s.lo) : nlohmann::json(nullptr)},
          {"ci95_hi", s.has_interval ? number_or_null(s.hi) : nlohmann::json(nullptr)}};
}

template <typename F>
std::vector<double> per_seed(const std::vector<SeedRun>& runs, F field) {
  std::vector<double> v;
  for (const auto& r : runs) v.push_back(field(r));
  return v;
}

double number_or_nan(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}

}  // namespace

nlohmann::json seed_run_to_json(const SeedRun& r) {
  return {{"status", r.status}, {"parameters", r.parameters}, {"valid_ppl", number_or_null(r.valid_ppl)},
          {"test_ppl", number_or_null(r.test_ppl)}, {"test_bits_per_byte", number_or_null(r.test_bits_per_byte)},
          {"train_ppl_final", number_or_null(r.train_ppl_final)}, {"train_seconds", number_or_null(r.train_seconds)},
          {"tokens_per_second", number_or_null(r.tokens_per_second)}, {"train_ppl_per_epoch", array_or_null(r.train_ppl_per_epoch)}};
}

SeedRun seed_run_from_json(const nlohmann::json& j) {
  SeedRun r;
  r.status = j.value("status", std::string("error"));
  r.parameters = j.value("parameters", int64_t(0));
  r.valid_ppl = number_or_nan(j, "valid_ppl");
  r.test_ppl = number_or_nan(j, "test_ppl");
  r.test_bits_per_byte = number_or_nan(j, "test_bits_per_byte");
  r.train_ppl_final = number_or_nan(j, "train_ppl_final");
  r.train_seconds = number_or_nan(j, "train_seconds");
  r.tokens_per_second = number_or_nan(j, "tokens_per_second");
  for (const auto& e : j.value("train_ppl_per_epoch", nlohmann::json::array()))
    r.train_ppl_per_epoch.push_back(e.is_number() ? e.get<double>() : NAN);
  return r;
}

void write_seed_summary(const SummaryInputs& in, nlohmann::json& summary) {
  const std::size_t n = in.seeds.size();
  const std::vector<double> nan_row(n, NAN);
  auto runs_of = [&](const std::string& v) -> const std::vector<SeedRun>* {
    auto it = in.runs.find(v);
    return it == in.runs.end() ? nullptr : &it->second;
  };
  auto test_of = [&](const std::string& v) {
    const auto* r = runs_of(v);
    return r ? per_seed(*r, [](const SeedRun& s) { return s.test_ppl; }) : nan_row;
  };

  summary["n_seeds"] = n;
  nlohmann::json seeds = nlohmann::json::object();
  seeds["seed"] = in.seeds;
  seeds["train_rotation_tokens"] = in.train_rotation;
  const std::vector<double> uni_test(n, in.refs.unigram_test_ppl), bi_test(n, in.refs.bigram_test_ppl);
  seeds["unigram_test_ppl"] = array_or_null(uni_test);
  seeds["bigram_test_ppl"] = array_or_null(bi_test);
  seeds["unigram_valid_ppl"] = array_or_null(std::vector<double>(n, in.refs.unigram_valid_ppl));
  seeds["bigram_valid_ppl"] = array_or_null(std::vector<double>(n, in.refs.bigram_valid_ppl));

  summary["variants"] = nlohmann::json::object();
  for (const auto& v : in.variants) {
    const auto* runs = runs_of(v);
    if (!runs) continue;
    const auto test = per_seed(*runs, [](const SeedRun& s) { return s.test_ppl; });
    const auto valid = per_seed(*runs, [](const SeedRun& s) { return s.valid_ppl; });
    const auto train_final = per_seed(*runs, [](const SeedRun& s) { return s.train_ppl_final; });
    seeds[v + "_test_ppl"] = array_or_null(test);
    seeds[v + "_valid_ppl"] = array_or_null(valid);
    seeds[v + "_train_ppl_final"] = array_or_null(train_final);
    nlohmann::json status = nlohmann::json::array(), epochs = nlohmann::json::array();
    for (const auto& r : *runs) {
      status.push_back(r.status);
      epochs.push_back(array_or_null(r.train_ppl_per_epoch));
    }
    auto it = in.held_out_meaningful.find(v);
    summary["variants"][v] = {
        {"parameters", runs->empty() ? 0 : runs->front().parameters},
        {"held_out_meaningful", it == in.held_out_meaningful.end() ? true : it->second},
        {"status", status},
        {"test_ppl", array_or_null(test)},
        {"valid_ppl", array_or_null(valid)},
        {"train_ppl_final", array_or_null(train_final)},
        {"train_ppl_per_epoch", epochs},
        {"test_bits_per_byte", array_or_null(per_seed(*runs, [](const SeedRun& s) { return s.test_bits_per_byte; }))},
        {"train_seconds", array_or_null(per_seed(*runs, [](const SeedRun& s) { return s.train_seconds; }))},
        {"tokens_per_second", array_or_null(per_seed(*runs, [](const SeedRun& s) { return s.tokens_per_second; }))},
        {"test_ppl_interval", interval_json(seed_interval(test))},
        {"valid_ppl_interval", interval_json(seed_interval(valid))}};
  }

  // The ratios the registry judges: every comparison is on TEST (the bigram's lambda was chosen on
  // valid). A variant not trained gives an all-null array, which no rule can pass.
  const std::vector<std::pair<std::string, std::pair<std::string, const std::vector<double>*>>> ratios = {
      {"correct_causal_over_bigram_test_ppl", {"correct_causal", &bi_test}},
      {"correct_causal_over_unigram_test_ppl", {"correct_causal", &uni_test}},
      {"upstream_layout_bug_over_bigram_test_ppl", {"upstream_layout_bug", &bi_test}},
      {"transformer_over_bigram_test_ppl", {"transformer", &bi_test}},
      {"correct_causal_over_transformer_test_ppl", {"correct_causal", nullptr}}};
  nlohmann::json comparisons = nlohmann::json::object();
  std::vector<double> transformer_over_bigram;
  for (const auto& [name, spec] : ratios) {
    const auto num = test_of(spec.first);
    const auto r = elementwise_ratio(num, spec.second ? *spec.second : test_of("transformer"));
    seeds[name] = array_or_null(r);
    comparisons[name] = interval_json(seed_interval(r));
    if (name == "transformer_over_bigram_test_ppl") transformer_over_bigram = r;
  }
  // Upstream's reported metric against its own held-out PPL (audit: the PoC reports training PPL).
  if (const auto* bug = runs_of("upstream_layout_bug")) {
    const auto r = elementwise_ratio(per_seed(*bug, [](const SeedRun& s) { return s.train_ppl_final; }),
                                     per_seed(*bug, [](const SeedRun& s) { return s.valid_ppl; }));
    seeds["upstream_layout_bug_train_final_over_valid_ppl"] = array_or_null(r);
    comparisons["upstream_layout_bug_train_final_over_valid_ppl"] = interval_json(seed_interval(r));
  }
  summary["seeds"] = seeds;
  summary["comparisons"] = comparisons;

  // Fixed before results: the preset's margin. Not judged on the valid split and never re-chosen.
  const Discrimination d = judge_discrimination(transformer_over_bigram, in.discrimination_margin);
  summary["discrimination_margin"] = d.margin;
  summary["discriminating"] = d.discriminating;
  if (!d.discriminating) summary["discriminating_reason"] = d.reason;
  summary["discrimination"] = {{"control", "transformer_over_bigram_test_ppl"},
                               {"rule", "discriminating iff the upper end of the 95% Student-t interval over seeds < 1 - margin"},
                               {"threshold", d.threshold},
                               {"interval", interval_json(d.ratio)}};

  summary["paired"] = {
      {"same_train_order_per_seed", true},
      {"why_same_train_order", "the trainer visits the chunks of one train stream in order; for a seed every variant "
                               "gets the same stream rotated by the same train_rotation_tokens"},
      {"bk_variants_same_init", in.bk_variants_same_init},
      {"transformer_params_from_bk_init", in.transformer_params_from_bk_init}};
}

}  // namespace rbk::train_poc
