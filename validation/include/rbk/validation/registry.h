// The claims registry (validation/claims_registry.json) and the paper-table definitions
// (validation/paper_tables.json), parsed and checked. Every claim C01-C24 of shared/claims.md is
// one entry: where the seeds state it, the paper's numbers, what the upstream-audit found, and
// rules that say which experiment's result key decides it and how. A later experiment only adds
// rules and table cells here; the engine (verdict.h) and renderer (render.h) stay unchanged.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace rbk::validation {

struct RegistryError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One comparison. The rule language (documented in validation/README.md):
//   value      JSON pointer into the chosen result document of `experiment`, e.g.
//              "/summary/modes/stable_fp32/finite_accurate_max_n". A number, bool, null, or an
//              array of numbers (one per seed: mean and 95 % Student-t interval are used).
//   op         "<=" ">=" "<" ">"  compare with `target` (number or {"pointer": ...})
//              "within"           |value - target| <= abs + rel*|target|   (tolerance object)
//              "interval_contains" lo <= value <= hi                        (interval [lo, hi])
//              "equals"           exact JSON equality with `target`
//              "bool"             value is a bool equal to `expect`
//              "is_null" / "not_null"
//              "paired_ttest"     per-seed arrays `value` vs `other`; Bonferroni over `family`;
//                                 passes when the adjusted p is below `p_below`.
struct Rule {
  std::string experiment;             // "bk_numerics" -> exp_bk_numerics, results/bk_numerics/
  std::string value;                  // JSON pointer
  std::string op;
  nlohmann::json target;              // number / json / {"pointer": "..."}; null when unused
  double tol_abs = 0.0, tol_rel = 0.0;
  double lo = 0.0, hi = 0.0;
  bool expect = true;
  std::string other;                  // paired_ttest: pointer to the second sample
  std::string alternative = "two_sided";
  std::string family;                 // paired_ttest: Bonferroni family name
  double p_below = 0.05;
  std::string unit;                   // for printing
  // What a JSON null means for a comparison: experiments write null for "no finite value" (e.g. a
  // relative error that overflowed), so the default is "fail"; "missing" for "not computed".
  std::string on_null = "fail";
  std::string cannot_measure;         // non-empty: this part cannot be measured here (reason)
  // Precondition on the same result file ("requires": {"value": ptr, "op": ">=", "target": x}):
  // when it does not hold the part is "not yet measured", not failed; e.g. a cpu preset that
  // sweeps N only to 4096 has not measured a claim about N = 32768.
  std::string requires_value;
  std::string requires_op;
  double requires_target = 0.0;
};

// A part of a claim: one statement the paper makes, decided by one rule.
struct ClaimPart {
  std::string id;         // "C01.stable_32k"
  std::string statement;  // what the paper says, in our words, with its number
  Rule rule;
};

struct Claim {
  std::string id;            // "C01"
  std::string title;
  std::string source;        // "000/001 §3.1, §4.3; 002 abstract"
  std::string paper_value;   // the paper's numbers, as a short string
  std::string audit_code;    // H / N / A / ok (shared/claims.md column "audit")
  std::string audit_finding; // what the upstream code really does (upstream-audit.md §12)
  std::vector<std::string> experiments;
  std::vector<ClaimPart> parts;        // decide the verdict
  std::vector<ClaimPart> audit_checks; // measured confirmations of the audit finding; reported only
  std::string cannot_measure;          // non-empty: the whole claim cannot be measured here
  std::string note;
};

struct Registry {
  std::string path;
  std::vector<std::string> preset_preference;  // e.g. gpu, cpu, smoke
  std::vector<Claim> claims;
  const Claim* find(const std::string& id) const;
};

// One cell of "our" columns in a regenerated table.
struct TableCell {
  std::string experiment;     // empty with text set: a fixed note (e.g. "n/a: asymptotic claim")
  std::string value;          // JSON pointer
  std::string format = "%.4g";
  double scale = 1.0;         // printed value = value * scale (e.g. s -> ms)
  std::string unit;
  std::string null_text = "none";  // printed for a JSON null (e.g. "never non-finite")
  std::string text;                // fixed text, used when experiment is empty
  std::string cannot_measure;      // reason; printed as "cannot be measured here (...)"
};

struct TableRow {
  std::vector<std::string> paper;  // the paper's cells, as printed in the seed
  std::vector<TableCell> ours;     // one per ours_columns entry
};

struct PaperTable {
  std::string id;          // "seed002_table1"
  std::string seed;        // "002"
  int number = 0;
  std::string title;
  std::string caption;     // the seed's caption, condensed
  std::vector<std::string> claims;
  std::vector<std::string> columns;
  std::vector<std::string> ours_columns;
  std::vector<TableRow> rows;
  std::string note;
};

struct TableSet {
  std::string path;
  std::vector<PaperTable> tables;
};

// Both loaders check every field and throw RegistryError naming the file, the JSON path of the
// offending entry, the value found and what was expected.
Registry load_registry(const std::string& path);
Registry parse_registry(const nlohmann::json& doc, const std::string& path);
TableSet load_tables(const std::string& path, const Registry& registry);
TableSet parse_tables(const nlohmann::json& doc, const std::string& path, const Registry& registry);

// Operators the engine understands (for checks and the README).
const std::vector<std::string>& known_ops();

}  // namespace rbk::validation
