// Locates, loads and checks result files for the claims ledger (see result_store.h): candidate
// files, staleness from git history, the choice among candidates, and the provenance check.
#include "rbk/validation/result_store.h"

#include "rbk/results.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <tuple>

namespace rbk::validation {

namespace fs = std::filesystem;
using nlohmann::json;

// A file <experiment>.<preset>.json in one of the two trees.
struct ResultCandidate {
  std::string path;
  std::string shown;  // as in the ledger
  std::string preset;
  bool fresh = false;
  std::string git_commit;  // read from the file; "" when unreadable
  std::optional<bool> stale;
  std::vector<GitCommitLine> stale_commits;
  std::string stale_unknown_reason;
};

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Candidates of one directory. A preset name holding a '.' is never a candidate: "<e>.gpu.failed.json"
// is a failed run (reported, never judged), anything else with a '.' is listed as ignored.
// Paths in `failed` and `ignored` are shown as in the ledger: relative to the tree, "<build>/" for fresh.
void scan(const fs::path& root, const std::string& experiment, bool fresh, std::vector<ResultCandidate>* out,
          std::vector<std::string>* failed, std::vector<std::string>* ignored) {
  const fs::path dir = root / "results" / experiment;
  const std::string shown_dir = std::string(fresh ? "<build>/" : "") + "results/" + experiment + "/";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());  // directory order is not stable across file systems
  const std::string prefix = experiment + ".";
  for (const auto& p : files) {
    const std::string name = p.filename().string();
    if (!ends_with(name, ".json")) continue;
    if (name.rfind(prefix, 0) != 0 || name.size() <= prefix.size() + 5) {
      ignored->push_back(shown_dir + name + " (name is not " + experiment + ".<preset>.json)");
      continue;
    }
    const std::string preset = name.substr(prefix.size(), name.size() - prefix.size() - 5);
    if (ends_with(preset, ".failed") || preset == "failed") {
      failed->push_back(shown_dir + name);
    } else if (preset.find('.') != std::string::npos) {
      ignored->push_back(shown_dir + name + " (preset name '" + preset + "' holds a '.'; never judged)");
    } else {
      ResultCandidate c;
      c.path = p.string();
      c.shown = shown_dir + name;
      c.preset = preset;
      c.fresh = fresh;
      out->push_back(c);
    }
  }
}

std::string string_field(const json& obj, const char* key) {
  if (obj.is_object() && obj.contains(key)) {
    const json& v = obj.at(key);
    if (v.is_string()) return v.get<std::string>();
    if (!v.is_null()) return v.dump();
  }
  return "";
}

std::string commit_of(const std::string& path) {
  try {
    const json doc = rbk::read_json_file(path);
    return string_field(doc.value("context", json::object()), "git_commit");
  } catch (const std::exception&) {
    return "";
  }
}

std::string shorten(const std::string& commit) { return commit.substr(0, 10); }

}  // namespace

// The experiment's declared sources in the registry as it was at <commit>;
// nullopt where that registry is absent or does not parse: moves then count as changes.
std::optional<std::vector<std::string>> ResultStore::declared_sources_at(const std::string& commit,
                                                                         const std::string& experiment) const {
  const auto text = git_.show_file(commit, registry_in_repo_);
  if (!text) return std::nullopt;
  const json doc = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  const json::json_pointer ptr("/experiments/" + experiment + "/sources");
  if (!doc.is_object() || !doc.contains(ptr) || !doc.at(ptr).is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& v : doc.at(ptr))
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

std::string ResultSource::stale_text() const {
  if (!stale) return "staleness unknown (" + stale_unknown_reason + ")";
  if (!*stale) return "not stale";
  std::string s = "STALE: " + std::to_string(stale_commits.size()) + " commit" +
                  (stale_commits.size() == 1 ? "" : "s") + " since " + shorten(git_commit) +
                  " touch its sources (";
  for (std::size_t i = 0; i < stale_commits.size(); ++i) s += (i ? "; " : "") + stale_commits[i].text();
  return s + ")";
}

ResultStore::ResultStore(std::string source_dir, std::string build_dir, std::vector<std::string> preset_preference,
                         std::map<std::string, ExperimentInfo> experiments)
    : source_dir_(std::move(source_dir)),
      build_dir_(std::move(build_dir)),
      preference_(std::move(preset_preference)),
      experiments_(std::move(experiments)),
      git_(source_dir_) {}

ResultStore::ResultStore(std::string source_dir, std::string build_dir, const Registry& registry)
    : ResultStore(std::move(source_dir), std::move(build_dir), registry.preset_preference, registry.experiments) {
  if (std::string in_repo = git_.path_in_repo(registry.path); !in_repo.empty()) registry_in_repo_ = std::move(in_repo);
}

const ResultSource& ResultStore::get(const std::string& experiment) {
  auto it = cache_.find(experiment);
  if (it == cache_.end()) it = cache_.emplace(experiment, load(experiment)).first;
  return it->second;
}

ResultSource ResultStore::load(const std::string& experiment) const {
  ResultSource src;
  src.experiment = experiment;
  std::error_code ec;
  src.experiment_exists = fs::is_directory(fs::path(source_dir_) / "experiments" / experiment, ec);
  const auto info = experiments_.find(experiment);
  src.gpu_only = info != experiments_.end() && info->second.gpu_only;

  std::vector<ResultCandidate> cands;
  std::vector<std::string> failed, ignored;
  if (!build_dir_.empty()) scan(fs::path(build_dir_), experiment, true, &cands, &failed, &ignored);
  scan(fs::path(source_dir_), experiment, false, &cands, &failed, &ignored);
  src.failed_runs = failed;
  src.ignored = ignored;
  if (cands.empty()) {
    src.error = !src.experiment_exists ? "no experiment exp_" + experiment + " exists yet"
                : failed.empty()       ? "no result file yet (run exp_" + experiment + " --preset auto, or ctest -L paper)"
                                       : "only a failed run (" + std::to_string(failed.size()) +
                                             " *.failed.json, never judged); no result file to judge";
    return src;
  }

  // Staleness of every candidate, from its own recorded commit.
  std::map<std::string, ResultCandidate> by_commit;  // cache: the same commit gives the same answer
  for (auto& c : cands) {
    c.git_commit = commit_of(c.path);
    if (info == experiments_.end()) {
      c.stale_unknown_reason = "the registry declares no sources for " + experiment;
    } else if (!git_.available()) {
      c.stale_unknown_reason = git_.unavailable_reason().empty() ? "no git" : "no git: " + git_.unavailable_reason();
    } else if (c.git_commit.empty() || c.git_commit == "unknown") {
      c.stale_unknown_reason = "the result records no commit";
    } else if (by_commit.count(c.git_commit)) {
      const ResultCandidate& k = by_commit.at(c.git_commit);
      c.stale = k.stale;
      c.stale_commits = k.stale_commits;
      c.stale_unknown_reason = k.stale_unknown_reason;
    } else {
      // Stale = the declared sources differ from those at the result's commit (files moved
      // unchanged do not count); the commits touching them since are listed as the evidence.
      const auto then = declared_sources_at(c.git_commit, experiment);
      const auto changed = git_.changed_sources_since(c.git_commit, info->second.sources, then ? &*then : nullptr);
      const auto since = changed ? git_.commits_since(c.git_commit, info->second.sources) : std::nullopt;
      if (!changed || !since) {
        c.stale_unknown_reason = "commit " + shorten(c.git_commit) + " is not in this repository";
      } else {
        c.stale = !changed->empty();
        if (*c.stale) c.stale_commits = *since;
      }
      by_commit[c.git_commit] = c;
    }
  }

  // Rank: not known stale first; then the registry's preset preference (unranked presets last, by
  // name); then fresh before committed.
  auto preset_rank = [&](const std::string& p) {
    const auto it = std::find(preference_.begin(), preference_.end(), p);
    return static_cast<std::size_t>(it - preference_.begin());
  };
  auto key = [&](const ResultCandidate& c) {
    return std::make_tuple(c.stale.value_or(false) ? 1 : 0, preset_rank(c.preset), c.preset, c.fresh ? 0 : 1);
  };
  std::stable_sort(cands.begin(), cands.end(), [&](const ResultCandidate& a, const ResultCandidate& b) { return key(a) < key(b); });
  const ResultCandidate& chosen = cands.front();
  for (std::size_t i = 1; i < cands.size(); ++i) {
    const ResultCandidate& c = cands[i];
    std::string why;
    if (c.stale.value_or(false) && !chosen.stale.value_or(false)) {
      why = "stale: " + std::to_string(c.stale_commits.size()) + " later commit(s) touch its sources";
      if (preset_rank(c.preset) < preset_rank(chosen.preset)) why += "; judges only parts the chosen file does not cover";
    } else if (c.preset == chosen.preset) {
      why = "a fresh run of the same preset wins";
    } else {
      why = "preset " + chosen.preset + " preferred";
    }
    src.ignored.push_back(c.shown + " (" + why + ")");
  }

  read_candidate(chosen, &src);
  // A stale result of a preferred preset, passed over for this one, still judges the parts that
  // this one does not cover (say a gpu preset's 8 GB budget that the cpu preset has no row for).
  if (!chosen.stale.value_or(false)) {
    for (std::size_t i = 1; i < cands.size(); ++i) {
      const ResultCandidate& c = cands[i];
      if (!c.stale.value_or(false) || preset_rank(c.preset) >= preset_rank(chosen.preset)) continue;
      ResultSource alt;
      alt.experiment = experiment;
      alt.experiment_exists = src.experiment_exists;
      alt.gpu_only = src.gpu_only;
      read_candidate(c, &alt);
      src.stale_preferred.push_back(std::move(alt));
    }
  }
  return src;
}

// Reads the chosen (or a fallback) candidate's file into `out`: its paths, the document and the
// provenance check.
// A malformed file leaves `error` set and `ok` false.
void ResultStore::read_candidate(const ResultCandidate& chosen, ResultSource* out) const {
  ResultSource& src = *out;
  std::error_code ec;
  src.found = true;
  src.origin = chosen.fresh ? "fresh" : "committed";
  src.preset = chosen.preset;
  src.path = chosen.path;
  src.stale = chosen.stale;
  src.stale_commits = chosen.stale_commits;
  src.stale_unknown_reason = chosen.stale_unknown_reason;
  const fs::path base = chosen.fresh ? fs::path(build_dir_) : fs::path(source_dir_);
  src.display_path = fs::relative(src.path, base, ec).generic_string();
  if (ec || src.display_path.empty()) src.display_path = src.path;
  if (chosen.fresh) src.display_path = "<build>/" + src.display_path;
  src.json_path = chosen.fresh ? fs::absolute(src.path, ec).lexically_normal().string() : src.display_path;
  const fs::path h5 = fs::path(src.path).replace_extension(".h5");
  if (fs::is_regular_file(h5, ec)) {
    src.h5_path = chosen.fresh ? fs::absolute(h5, ec).lexically_normal().string()
                               : fs::relative(h5, base, ec).generic_string();
  }

  try {
    src.doc = rbk::read_json_file(src.path);
    rbk::check_result_document(src.doc, src.path);
    if (src.doc.value("experiment", std::string()) != src.experiment) {
      throw rbk::ResultFileError(src.path + ": field 'experiment' is " + src.doc.value("experiment", json()).dump() +
                                 ", expected \"" + src.experiment + "\"");
    }
  } catch (const std::exception& e) {
    src.error = std::string("malformed result file: ") + e.what();
    src.doc = json();
    src.provenance_check = "unverifiable (malformed result file)";
    return;
  }
  src.ok = true;
  src.status = string_field(src.doc, "status");
  const json& ctx = src.doc.value("context", json::object());
  src.git_commit = string_field(ctx, "git_commit");
  src.git_dirty = string_field(ctx, "git_dirty");
  src.git_dirty_source = string_field(ctx, "git_dirty_source");
  if (src.git_dirty_source.empty()) src.git_dirty_source = string_field(ctx, "git_source");
  src.git_tree_hash = string_field(ctx, "git_tree_hash");
  src.git_untracked_present = string_field(ctx, "git_untracked_present");
  src.blas = string_field(ctx, "blas");
  src.device = string_field(ctx, "device");
  src.finished_at = string_field(ctx, "finished_at");

  // Provenance: the recorded content hash of the tracked tree must be the tree of the recorded
  // commit; a mismatch means the run did not use the commit it names (a dirty tree, or a wrong
  // commit declared through the environment).
  if (src.git_tree_hash.empty()) {
    src.provenance_check = "unverifiable (no tree hash recorded)";
  } else if (!git_.available()) {
    src.provenance_check = "unverifiable (no git)";
  } else if (const auto tree = git_.tree_of(src.git_commit)) {
    const bool match = *tree == src.git_tree_hash;
    src.provenance_check = match ? "verified"
                                 : "MISMATCH (recorded tree " + shorten(src.git_tree_hash) + ", commit " +
                                       shorten(src.git_commit) + " has tree " + shorten(*tree) + ")";
    if (src.git_dirty == "true" || src.git_dirty == "false") {
      const bool dirty = src.git_dirty == "true";
      const std::string from = src.git_dirty_source.empty() ? "" : " (from " + src.git_dirty_source + ")";
      src.dirty_check = "git_dirty=" + src.git_dirty + from +
                        (dirty == !match ? " agrees with the tree hash" : " CONTRADICTS the tree hash");
    }
  } else {
    src.provenance_check = "unverifiable (commit " + shorten(src.git_commit) + " is not in this repository)";
  }
  if (src.git_untracked_present == "true") src.dirty_check += std::string(src.dirty_check.empty() ? "" : "; ") +
                                                              "untracked files were present";
}

}  // namespace rbk::validation
