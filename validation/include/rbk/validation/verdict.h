// The verdict engine: evaluates each rule of the claims registry against the chosen result file
// and combines the parts of a claim into two verdicts, one per face: "the method as described"
// (parts with face corrected, measured with rbk's corrected code) and "the authors' code" (face
// compat, measured with rbk's compat modes). A verdict is a measured result; "not reproduced" is
// as good an outcome as "reproduced". Nothing here knows a paper number except through the
// registry, and nothing passes without a value read from a result file.
#pragma once
#include "rbk/validation/registry.h"
#include "rbk/validation/result_store.h"
#include "rbk/validation/rule_history.h"
#include "rbk/validation/statistics.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rbk::validation {

// Invalid: an equal-work / validity precondition (requires with on_fail "invalid") did not hold,
// or the rule cannot fail on its own falsifier; the part never passes and never fails.
enum class Outcome { Pass, Fail, Missing, Error, Cannot, Invalid };
std::string to_string(Outcome o);

enum class Verdict { Reproduced, NotReproduced, PartlyReproduced, NotYetMeasured, CannotBeMeasured };
std::string to_string(Verdict v);  // "reproduced", "not reproduced", ...

struct RuleResult {
  std::string part_id;
  std::string statement;
  std::string face;         // corrected / compat ("" for an audit check without one)
  Outcome outcome = Outcome::Missing;
  std::string measured;     // the value as printed, with CI where several seeds ("" if none)
  std::string comparison;   // "16384 >= 32768 -> fail", "p_bonf = 3e-7 < 1e-6 -> pass"
  std::string reason;       // why Missing / Error / Cannot / Invalid
  std::string invalid_short;  // Invalid: one short clause for the claim's reason line
  std::string evidence;     // "results/x/x.cpu.json @ 1a2b3c4 (committed, preset cpu)"
  std::optional<MeanInterval> interval;
  std::optional<PairedTTest> ttest;
  double p_adjusted = 1.0;
  std::size_t family_size = 0;
  bool stale = false;                    // the result file it read is stale
  // Set when the part was judged on a stale result of a preferred preset because the chosen file
  // does not cover it: why the chosen file gave "not yet measured".
  std::string not_covered_by_chosen;
  std::optional<RuleChange> change;      // the rule compared with the rule at the result's commit
  std::vector<HistoryEntry> declared_history;
  std::string why_not_deciding;          // audit checks
};

struct FaceVerdict {
  Verdict verdict = Verdict::NotYetMeasured;
  std::string reason;  // one line: why this verdict (counts, invalid parts, cannot-measure reason)
};

struct ClaimVerdict {
  std::string claim_id;
  FaceVerdict corrected;  // the method as described
  FaceVerdict compat;     // the authors' code
  std::vector<RuleResult> parts;
  std::vector<RuleResult> audit_checks;
  const FaceVerdict& of(const std::string& face) const { return face == kFaceCompat ? compat : corrected; }
};

// A result that cannot hold a key at its preset (a sweep's cpu preset does not reach N = 1M; the
// 8 GB budget exists only on the GPU) declares it under /summary/not_measured: an array of
// {"pattern": a glob (fnmatch) over JSON pointers, "why": text}. Returns the `why` of the first
// pattern matching `pointer`, or nothing. An absent key that is declared is *not measured* with
// that reason; an absent key that is not declared is a missing key (a typo, or a stale result).
std::optional<std::string> declared_not_measured(const nlohmann::json& doc, const std::string& pointer);

// Evaluates the rule alone (not its preconditions) on a document. `where` names the document in
// messages; `family_size` is the Bonferroni m of a paired_ttest rule.
RuleResult evaluate_rule_on_document(const Rule& rule, const nlohmann::json& doc, const std::string& where,
                                     std::size_t family_size);

// The rule of a part evaluated on its falsifier: a document holding only the falsifier's value at
// the rule's pointer (plus `other` for paired_ttest and `target_value` at a pointer target). No
// result file is read. A sound deciding part gives Outcome::Fail here.
RuleResult evaluate_falsifier(const ClaimPart& part, std::size_t family_size);

class VerdictEngine {
 public:
  VerdictEngine(const Registry& registry, ResultStore& store);

  ClaimVerdict judge(const Claim& claim);
  RuleResult evaluate(const ClaimPart& part, bool deciding = true);

  // How many paired_ttest rules belong to a Bonferroni family (over the whole registry).
  std::size_t family_size(const std::string& family) const;

 private:
  const Registry& registry_;
  ResultStore& store_;
  RuleHistory history_;
  std::map<std::string, std::size_t> families_;

  // The part's rule, preconditions and falsifier on one readable result file.
  RuleResult evaluate_on(const ClaimPart& part, const ResultSource& src, bool deciding);
};

// Combines part outcomes (exposed for tests): all pass -> reproduced; none measured -> not yet
// measured (or cannot be measured when every part says so); only failures -> not reproduced;
// otherwise partly reproduced. Parts that are missing, invalid or cannot be measured keep
// "reproduced" from being reached: a claim is reproduced only when every part was measured and held.
Verdict combine(const std::vector<Outcome>& outcomes, std::string* reason);

// A deciding part whose rule does not fail on its falsifier.
struct FalsifierProblem {
  std::string part_id;
  std::string outcome;  // what the falsifier gave, with the comparison
};
std::vector<FalsifierProblem> check_falsifiers(const Registry& registry);

// Formats a number for the ledger: integers without decimals, others with %.4g.
std::string format_value(double v);

}  // namespace rbk::validation
