// The claims registry (validation/claims_registry.json) and the paper-table definitions
// (validation/paper_tables.json), parsed and checked. Every claim C01-C24 of shared/claims.md is
// one entry: where the seeds state it, the paper's numbers, what the upstream-audit found, and
// rules that say which experiment's result key decides it and how. A later experiment only adds
// rules and table cells here; the engine (verdict.h) and renderer (render.h) stay unchanged.
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace rbk::validation {

struct RegistryError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A precondition of a part, read from the same result document as the part's value
// ("requires": REQ or [REQ, ...]). It gates what it justifies:
//   on_fail "invalid"       an equal-work / validity check (both timed outputs match fp64, the
//                           analysis classifies its controls): when it does not hold, or its key is
//                           absent or null, the part is INVALID: it never passes and never fails.
//   on_fail "not_measured"  coverage (the sweep did not reach the N the claim is about): the part
//                           is "not yet measured", with `why`.
struct Requirement {
  std::string value;          // JSON pointer
  std::string op;             // <= >= < > equals bool
  nlohmann::json target;      // number (<= >= < >), number or string (equals); null for bool
  bool expect = true;         // op "bool"
  std::string on_fail;        // "invalid" | "not_measured"
  std::string why;            // what the precondition guarantees (printed)
};

// One comparison. The rule language (documented in validation/README.md):
//   value      JSON pointer into the chosen result document of `experiment`, e.g.
//              "/summary/modes/stable_fp32/finite_accurate_max_n". A number, bool, null, or an
//              array of numbers (one per seed or repeat: mean and 95 % Student-t interval are used).
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
  std::vector<Requirement> requires;  // preconditions on the same result file
  nlohmann::json raw;                 // the rule object as registered (for the rule history)
  bool target_is_pointer() const { return target.is_object() && target.contains("pointer"); }
};

// A plausible outcome that must make a deciding part fail, with the values that encode it: the
// unit tests feed them to the rule and expect Fail, so a rule that cannot fail is caught.
struct Falsifier {
  std::string outcome;          // in words
  nlohmann::json value;         // stands for the rule's `value` pointer
  nlohmann::json other;         // paired_ttest: stands for `other` (null when unused)
  nlohmann::json target_value;  // when rule.target is {"pointer": ...} (null when unused)
  bool present = false;
};

// A declared change of a part's rule ("history"): what it was, when it changed and why.
struct HistoryEntry {
  std::string changed_at;       // commit
  nlohmann::json before;        // the rule as it was
  std::string why;              // reason, citing a measured spread in a result file
};

// The two faces a claim is judged on, each with its own verdict.
//   corrected: the method as described, measured with rbk's corrected implementation
//   compat:    the authors' code, measured with rbk's compat modes (upstream's behaviour)
inline constexpr char kFaceCorrected[] = "corrected";
inline constexpr char kFaceCompat[] = "compat";
std::string face_title(const std::string& face);  // "the method as described" / "the authors' code"

// A part of a claim: one statement the paper makes, decided by one rule.
struct ClaimPart {
  std::string id;         // "C01.stable_32k"
  std::string statement;  // what the paper says, in our words, with its number
  std::string face;       // kFaceCorrected / kFaceCompat; may be empty for an audit check
  Rule rule;
  Falsifier falsifier;    // required for a deciding part unless rule.cannot_measure is set
  std::vector<HistoryEntry> history;
  std::string why_not_deciding;  // audit checks: why this is reported but cannot decide
  nlohmann::json raw;            // the part object as registered
};

// An experiment the rules name: the source paths its results depend on. A result is stale when
// one of them differs from the same source at the result's commit (GitRepo::changed_sources_since).
struct ExperimentInfo {
  std::vector<std::string> sources;  // paths relative to the repository root
  bool gpu_only = false;
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
  std::string schema;                          // "rbk.claims_registry/2"
  std::vector<std::string> preset_preference;  // e.g. gpu, cpu, smoke
  std::map<std::string, ExperimentInfo> experiments;
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

// The registry schema this engine reads (v2: faces, requires with on_fail, falsifiers, history,
// experiments with their sources). A v1 registry is rejected with a message saying what changed.
inline constexpr char kRegistrySchema[] = "rbk.claims_registry/2";

// Operators the engine understands (for checks and the README).
const std::vector<std::string>& known_ops();

}  // namespace rbk::validation
