// Per-seed bookkeeping of exp_train_poc (claim C05): what each (variant, seed) run measured, and the
// summary written from it (per-seed arrays ordered by seed, the ratios the registry judges, and the
// discrimination check). Kept apart from main.cpp so that the summary layout is in one place.
#pragma once
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rbk::train_poc {

// One trained (variant, seed): one cell of the sweep. NaN where the run did not finish.
struct SeedRun {
  std::string status = "error";  // the cell's: "ok" | "diverged" | "oom" | "error" | "pending" (no outcome yet)
  int64_t parameters = 0;
  double valid_ppl = NAN, test_ppl = NAN, test_bits_per_byte = NAN;
  double train_ppl_final = NAN, train_seconds = NAN, tokens_per_second = NAN;
  std::vector<double> train_ppl_per_epoch;
};

struct CountReferences {  // deterministic: one value, repeated per seed in the arrays
  double unigram_valid_ppl = NAN, unigram_test_ppl = NAN;
  double bigram_valid_ppl = NAN, bigram_test_ppl = NAN;
};

struct SummaryInputs {
  std::vector<int64_t> seeds;                 // in run order (ascending)
  std::vector<int64_t> train_rotation;        // per seed: tokens the train stream was rotated by
  std::vector<std::string> variants;          // in preset order
  std::map<std::string, bool> held_out_meaningful;
  std::map<std::string, std::vector<SeedRun>> runs;  // variant -> one per seed, same order as seeds
  CountReferences refs;
  double discrimination_margin = 0.05;
  // Pairing checks recorded while running (see main.cpp).
  bool bk_variants_same_init = true;
  std::vector<std::string> transformer_params_from_bk_init;
};

// A cell outcome carries its SeedRun (NaN written as null), so a summary can be rebuilt from the
// outcomes of cells trained in earlier calls.
nlohmann::json seed_run_to_json(const SeedRun& run);
SeedRun seed_run_from_json(const nlohmann::json& j);  // missing or null numbers -> NaN

// Writes into `summary`: n_seeds, seeds/..., variants/..., comparisons/..., discrimination_margin,
// discriminating, discriminating_reason (only when false), discrimination/..., paired/...
// (the full list is in the top comment of main.cpp).
void write_seed_summary(const SummaryInputs& in, nlohmann::json& summary);

}  // namespace rbk::train_poc
