// Finds and loads the result file that decides each experiment's claims:
//   fresh   <build>/results/<experiment>/*.json   (written by `ctest -L paper` in that build tree)
//   committed <source>/results/<experiment>/*.json (the result files of record)
// The preset decides first, by the registry's preference (gpu > cpu > smoke), so a cpu run in a
// build tree does not mask a gpu result of record; for the same preset a fresh run wins over the
// committed file (the ledger says which was used and lists the others as ignored). Presets come
// from the file name <experiment>.<preset>.json. A malformed chosen file is an error that names
// the file; it never falls back silently to another file, because that would hide it.
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rbk::validation {

struct ResultSource {
  std::string experiment;
  bool found = false;          // a candidate file exists
  bool ok = false;             // parsed and passed check_result_document
  std::string path;            // absolute path of the chosen file
  std::string display_path;    // relative to the source or build tree, for the ledger
  std::string origin;          // "fresh" or "committed"
  std::string preset;
  std::string status;          // document "status": ok / partial / failed
  std::string git_commit;
  std::string git_dirty;
  std::string device;
  std::string finished_at;
  std::string error;           // why it is not usable (missing, malformed, ...)
  bool experiment_exists = false;  // experiments/<name>/ is in the source tree
  std::vector<std::string> ignored;  // other candidate files that were not chosen
  nlohmann::json doc;
};

class ResultStore {
 public:
  // source_dir: repository root; build_dir: may be empty (then only committed results are read).
  ResultStore(std::string source_dir, std::string build_dir, std::vector<std::string> preset_preference);

  // Loads (once) and returns the chosen result of an experiment. Never throws for a missing or
  // malformed file: the returned source carries the error.
  const ResultSource& get(const std::string& experiment);

  // Every source looked up so far, in name order.
  const std::map<std::string, ResultSource>& sources() const { return cache_; }

 private:
  ResultSource load(const std::string& experiment) const;
  std::string source_dir_, build_dir_;
  std::vector<std::string> preference_;
  std::map<std::string, ResultSource> cache_;
};

}  // namespace rbk::validation
