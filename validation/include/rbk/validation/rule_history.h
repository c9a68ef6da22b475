// Rule history: a part's rule as it is now, compared with the same part in the registry as it was
// at the commit of the result that judges it (`git show <commit>:<registry>`). A rule tightened or
// loosened after its result was seen is exactly what a hostile reviewer looks for, so the ledger
// lists every such change with before and after; where git cannot answer it says so.
#pragma once
#include "rbk/validation/git_repo.h"
#include "rbk/validation/registry.h"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>

namespace rbk::validation {

struct RuleChange {
  enum Kind { Same, Changed, Added, Unknown } kind = Unknown;
  std::string result_commit;
  nlohmann::json before;        // normalized rule at the result's commit (Changed)
  nlohmann::json after;         // normalized rule now
  std::string before_face, after_face;
  std::string note;             // Unknown: why; Changed: what kind ("was an audit check", ...)
  std::string text() const;     // one line for the ledger
};

class RuleHistory {
 public:
  // registry_path: the registry file as given on the command line; it is located in git relative
  // to the work tree's top level.
  RuleHistory(const GitRepo& git, const std::string& registry_path);

  // deciding: the part is in `parts` now (false: in `audit_checks`).
  RuleChange compare(const ClaimPart& now, const std::string& result_commit, bool deciding = true);

 private:
  struct Snapshot {
    bool exists = false;          // the registry file existed at that commit and parsed
    std::map<std::string, nlohmann::json> parts;         // id -> part object (deciding)
    std::map<std::string, nlohmann::json> audit_checks;  // id -> part object
  };
  const Snapshot& at(const std::string& commit);
  const GitRepo& git_;
  std::string path_in_repo_;
  std::map<std::string, Snapshot> cache_;
};

// The rule without the fields that do not change a judgment (unit, a precondition's `why`),
// `requires` always as a list, and a precondition without on_fail read as v1 did (not_measured).
nlohmann::json normalized_rule(const nlohmann::json& rule);

}  // namespace rbk::validation
