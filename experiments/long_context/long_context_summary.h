// exp_long_context's summary (issue 19; claims C12, C19, C21.long_context): the keyed per-seed
// arrays and stability flags the registry and paper_tables read, built from the sweep's cell
// outcomes (so a merged sweep and a single run give the same summary), the per-row fit of peak
// memory against N, and the probe accuracy tables. Pure functions of their inputs; unit-tested in
// test_long_context.cpp.
#pragma once
#include "rbk/sweep.h"

#include <nlohmann/json.hpp>
#include <set>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rbk::long_context {

// Arm of a (row, N) cell: "<row>_n<N>" (rows: [a-z_]+). parse_arm splits it back; false when the
// name has no "_n<digits>" tail.
std::string arm_name(const std::string& row, int64_t n);
bool parse_arm(const std::string& arm, std::string& row, int64_t& n);

// Probe arms: "<row>_<probe>_n<N>" (probe passkey | assoc_recall).
std::string probe_arm_name(const std::string& row, const std::string& probe, int64_t n);
bool parse_probe_arm(const std::string& arm, std::string& row, std::string& probe, int64_t& n);

// Least-squares fit of peak memory against N for one row: bytes = intercept + slope N, and the
// log-log exponent (d log bytes / d log N: ~0 when memory does not grow with N at a constant
// B x N, ~1 when it grows linearly, e.g. attention scores at B x N constant). Needs >= 2 distinct N
// with finite positive bytes; otherwise `points` < 2 and the numbers are NaN (JSON null). r2 is
// NaN when the bytes are constant (nothing to explain). The keyed summary fits only per-cell
// peaks (details.peak_memory_per_cell) and says why_no_fit when fewer than two remain.
struct MemoryFit {
  int64_t points = 0;
  double intercept_bytes = 0.0;
  double bytes_per_token = 0.0;   // slope in N
  double loglog_exponent = 0.0;
  double r2 = 0.0;                // of the linear fit
  nlohmann::json to_json() const;
};
MemoryFit fit_memory_slope(const std::vector<double>& n, const std::vector<double>& bytes);

// The stability rule, stated in the result (kStabilityRule): a (row, N) is unstable when any
// seed's cell diverged; stable when none diverged, at least one finished ok and every cell that
// ran finished ok (cells not run yet are left out: a preset may run one seed at the longest N);
// not determined otherwise (a cell oom, skipped or error, or none ran): the key is absent then.
extern const char* const kStabilityRule;

// The keyed summary of the language-model sweep (rows = the row names, lengths = the N values,
// in order):
//   seeds/seed                              the grid's seeds
//   seeds/<row>_ppl_n<N>                    valid PPL at the training length, per seed (null: not ok)
//   seeds/<row>_ppl_short_n<N>              valid PPL at the common short length, per seed
//   seeds/<row>_final_train_loss_n<N>       per seed
//   stable/<row>_n<N>                       bool (kStabilityRule); absent when not determined
//   stable_undetermined/<row>_n<N>          why not determined
//   stable_seeds/<row>_n<N>                 number of seeds whose cell finished ok
//   cells/<row>/n<N>/{status, divergence_step, reason, tokens_per_second, peak_memory_bytes,
//                     seconds, unique_train_tokens, epochs, parameters, parameters_without_position}
//                                           per seed arrays
//   memory_fit/<row>                        MemoryFit of the median peak memory over seeds vs N
//   stability_rule
//   not_measured                            [{pattern, why}]: paper-length keys outside the grid,
//                                           undetermined stability flags (validation/README.md)
// The lengths of seed 002's Table 1 (and the gpu preset): the keys the ledger reads. A row x
// length of this list that the grid does not run is declared under not_measured.
inline constexpr int64_t kPaperLengths[] = {2048, 8192, 32768, 131072, 524288, 1048576};

nlohmann::json keyed_sweep_summary(const SweepPlan& plan, const std::map<std::string, nlohmann::json>& outcomes,
                                   const std::vector<std::string>& rows, const std::vector<int64_t>& lengths);

// The probe table: probes/<row>/<probe>/n<N>/<metric> per-seed arrays for every metric key the
// ok cells report (acc_eval<M>, acc_eval<M>_depth<d>, final_loss), plus status; and
// seeds/<row>_<probe>_acc_n<N>_eval<M> (per seed) for the ledger.
nlohmann::json probe_summary(const SweepPlan& plan, const std::map<std::string, nlohmann::json>& outcomes);

// The result's rows of one part, from sweep_summary's `cells`: every cell that has an outcome, and
// every pending cell this command selects (selected_ids), tagged with the part. A pending cell
// outside the selection (the gpu preset runs seed 0 only at 512k and 1M, and no Transformer cell
// past 32k) is not a row, so that the result's status speaks for what the command was asked to
// run; its id is appended to not_selected instead.
nlohmann::json part_rows(const nlohmann::json& cells, const std::set<std::string>& selected_ids, const std::string& part,
                         nlohmann::json& not_selected);

}  // namespace rbk::long_context
