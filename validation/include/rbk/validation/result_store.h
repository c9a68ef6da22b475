// Finds and loads the result file that decides each experiment's claims:
//   fresh     <build>/results/<experiment>/<experiment>.<preset>.json  (ctest -L paper, exp_<e> --out)
//   committed <source>/results/<experiment>/<experiment>.<preset>.json (the result files of record)
// A `*.failed.json` (any preset name holding a '.') is never a candidate: it is listed as a failed
// run. Candidates that are not stale come first (stale: a commit after the result's own commit
// touches a source path the registry declares for the experiment); among those the registry's
// preset preference decides (gpu > cpu > smoke), and for one preset a fresh run wins over the
// committed file. When every candidate is stale the preferred one is used and marked STALE. A
// malformed chosen file is an error that names the file; it never falls back silently to another
// file, because that would hide it. The stale candidates of a preferred preset that a fresh one
// beat are kept (`stale_preferred`): the verdict engine judges on them, marked STALE, only the
// parts that the chosen file does not cover.
#pragma once
#include "rbk/validation/git_repo.h"
#include "rbk/validation/registry.h"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rbk::validation {

struct ResultCandidate;  // a candidate file (result_store.cpp)

struct ResultSource {
  std::string experiment;
  bool found = false;          // a candidate file exists
  bool ok = false;             // parsed and passed check_result_document
  std::string path;            // absolute path of the chosen file
  std::string display_path;    // for the ledger: relative to the source tree, or "<build>/..."
  std::string json_path;       // for verdicts.json: relative to the source dir (committed), absolute (fresh)
  std::string h5_path;         // the sibling <stem>.h5 in the same convention; "" when there is none
  std::string origin;          // "fresh" or "committed"
  std::string preset;
  std::string status;          // document "status": ok / partial / failed
  std::string git_commit;
  std::string git_dirty;
  std::string git_dirty_source;     // "git" / "env" / "" (not recorded)
  std::string git_tree_hash;        // "" when not recorded
  std::string git_untracked_present;  // "true" / "false" / "" (not recorded)
  std::string blas;
  std::string device;
  std::string finished_at;
  std::string error;           // why it is not usable (missing, malformed, ...)
  bool experiment_exists = false;  // experiments/<name>/ is in the source tree
  bool gpu_only = false;           // registry: the experiment needs a CUDA device

  // Staleness: true / false, or nullopt with stale_unknown_reason (no git, unknown commit, ...).
  std::optional<bool> stale;
  std::vector<GitCommitLine> stale_commits;  // <commit>..HEAD touching the experiment's sources
  std::string stale_unknown_reason;

  // Provenance: "verified", "MISMATCH (...)" or "unverifiable (...)"; dirty_check notes whether
  // the recorded git_dirty agrees with the tree hash ("" when that cannot be said).
  std::string provenance_check;
  std::string dirty_check;

  std::vector<std::string> ignored;      // other candidate files that were not chosen, with why
  std::vector<std::string> failed_runs;  // *.failed.json of this experiment: reported, never judged
  nlohmann::json doc;

  // Stale results of a preset the registry prefers to this one's, passed over for it (this one not
  // stale), in rank order. They judge only parts that this file does not cover, marked STALE.
  std::vector<ResultSource> stale_preferred;

  // The first readable stale preferred result for which covers(result) holds, or nullptr: the one
  // rule by which verdicts and table cells fill a gap of this file.
  template <class Covers>
  const ResultSource* first_stale_preferred_covering(Covers covers) const {
    for (const ResultSource& alt : stale_preferred)
      if (alt.ok && covers(alt)) return &alt;
    return nullptr;
  }

  std::string stale_text() const;  // "stale (2 commits since ...)", "not stale", "staleness unknown (...)"
};

class ResultStore {
 public:
  // source_dir: repository root; build_dir: may be empty (then only committed results are read).
  // experiments: the registry's sources per experiment (without them staleness is "unknown").
  ResultStore(std::string source_dir, std::string build_dir, std::vector<std::string> preset_preference,
              std::map<std::string, ExperimentInfo> experiments = {});
  ResultStore(std::string source_dir, std::string build_dir, const Registry& registry);

  // Loads (once) and returns the chosen result of an experiment. Never throws for a missing or
  // malformed file: the returned source carries the error.
  const ResultSource& get(const std::string& experiment);

  // Every source looked up so far, in name order.
  const std::map<std::string, ResultSource>& sources() const { return cache_; }
  const GitRepo& git() const { return git_; }
  const std::string& source_dir() const { return source_dir_; }

 private:
  ResultSource load(const std::string& experiment) const;
  void read_candidate(const ResultCandidate& chosen, ResultSource* out) const;
  std::optional<std::vector<std::string>> declared_sources_at(const std::string& commit,
                                                              const std::string& experiment) const;
  std::string source_dir_, build_dir_;
  std::vector<std::string> preference_;
  std::map<std::string, ExperimentInfo> experiments_;
  GitRepo git_;
  // Where the registry lives in the repository, to read it as it was at a result's commit (the
  // sources declared then); the standard path where the store was built without a registry.
  std::string registry_in_repo_ = "validation/claims_registry.json";
  std::map<std::string, ResultSource> cache_;
};

}  // namespace rbk::validation
