// The verdict engine: evaluates each rule of the claims registry against the chosen result file
// and combines the parts of a claim into one of five verdicts. A verdict is a measured result;
// "not reproduced" is as good an outcome as "reproduced". Nothing here knows a paper number except
// through the registry, and nothing passes without a value read from a result file.
#pragma once
#include "rbk/validation/registry.h"
#include "rbk/validation/result_store.h"
#include "rbk/validation/statistics.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rbk::validation {

enum class Outcome { Pass, Fail, Missing, Error, Cannot };
std::string to_string(Outcome o);

enum class Verdict { Reproduced, NotReproduced, PartlyReproduced, NotYetMeasured, CannotBeMeasured };
std::string to_string(Verdict v);  // "reproduced", "not reproduced", ...

struct RuleResult {
  std::string part_id;
  std::string statement;
  Outcome outcome = Outcome::Missing;
  std::string measured;     // the value as printed, with CI where several seeds ("" if none)
  std::string comparison;   // "16384 >= 32768 -> fail", "p_bonf = 3e-7 < 1e-6 -> pass"
  std::string reason;       // why Missing / Error / Cannot
  std::string evidence;     // "results/x/x.cpu.json @ 1a2b3c4 (committed, preset cpu)"
  std::optional<MeanInterval> interval;
  std::optional<PairedTTest> ttest;
  double p_adjusted = 1.0;
  std::size_t family_size = 0;
};

struct ClaimVerdict {
  std::string claim_id;
  Verdict verdict = Verdict::NotYetMeasured;
  std::string reason;  // one line: why this verdict (counts, errors, cannot-measure reason)
  std::vector<RuleResult> parts;
  std::vector<RuleResult> audit_checks;
};

class VerdictEngine {
 public:
  VerdictEngine(const Registry& registry, ResultStore& store);

  ClaimVerdict judge(const Claim& claim);
  RuleResult evaluate(const ClaimPart& part);

  // How many paired_ttest rules belong to a Bonferroni family (over the whole registry).
  std::size_t family_size(const std::string& family) const;

 private:
  const Registry& registry_;
  ResultStore& store_;
  std::map<std::string, std::size_t> families_;
};

// Combines part outcomes (exposed for tests): all pass -> reproduced; none measured -> not yet
// measured (or cannot be measured when every part says so); only failures -> not reproduced;
// otherwise partly reproduced. Parts that are missing or cannot be measured keep "reproduced"
// from being reached: a claim is reproduced only when every part of it was measured and held.
Verdict combine(const std::vector<Outcome>& outcomes, std::string* reason);

// Formats a number for the ledger: integers without decimals, others with %.4g.
std::string format_value(double v);

}  // namespace rbk::validation
