// Locates, loads and checks result files for the claims ledger (see result_store.h).
#include "rbk/validation/result_store.h"

#include "rbk/results.h"

#include <algorithm>
#include <filesystem>
#include <set>

namespace rbk::validation {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Candidate result documents of one experiment in one directory, keyed by preset name taken from
// "<experiment>.<preset>.json". Other .json files (e.g. notes) are listed but not candidates.
std::map<std::string, std::string> candidates(const fs::path& dir, const std::string& experiment,
                                              std::vector<std::string>* others) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    const std::string prefix = experiment + ".";
    const std::string suffix = ".json";
    if (name.size() > prefix.size() + suffix.size() && name.rfind(prefix, 0) == 0 &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out[name.substr(prefix.size(), name.size() - prefix.size() - suffix.size())] = entry.path().string();
    } else if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      if (others) others->push_back(entry.path().string());
    }
  }
  return out;
}

std::string string_field(const json& obj, const char* key) {
  if (obj.is_object() && obj.contains(key)) {
    const json& v = obj.at(key);
    if (v.is_string()) return v.get<std::string>();
    if (!v.is_null()) return v.dump();
  }
  return "";
}

}  // namespace

ResultStore::ResultStore(std::string source_dir, std::string build_dir, std::vector<std::string> preset_preference)
    : source_dir_(std::move(source_dir)), build_dir_(std::move(build_dir)), preference_(std::move(preset_preference)) {}

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

  // Candidates from both trees. The preset decides first (a gpu result of record is not masked by
  // a cpu run of the same experiment in a build tree); for the same preset a fresh run wins.
  std::vector<std::string> others;
  std::map<std::string, std::string> fresh;
  if (!build_dir_.empty()) fresh = candidates(fs::path(build_dir_) / "results" / experiment, experiment, &others);
  std::map<std::string, std::string> committed = candidates(fs::path(source_dir_) / "results" / experiment, experiment, &others);
  for (const auto& o : others) src.ignored.push_back(o + " (name is not " + experiment + ".<preset>.json)");
  if (fresh.empty() && committed.empty()) {
    src.error = src.experiment_exists ? "no result file yet (run exp_" + experiment +
                                            " --preset auto, or ctest -L paper)"
                                      : "no experiment exp_" + experiment + " exists yet";
    return src;
  }
  std::vector<std::string> order = preference_;
  std::set<std::string> rest;
  for (const auto* m : {&fresh, &committed}) {
    for (const auto& kv : *m) {
      if (std::find(order.begin(), order.end(), kv.first) == order.end()) rest.insert(kv.first);
    }
  }
  order.insert(order.end(), rest.begin(), rest.end());  // presets the registry does not rank: last, by name
  std::string preset;
  for (const auto& p : order) {
    if (fresh.count(p) || committed.count(p)) {
      preset = p;
      break;
    }
  }
  const bool use_fresh = fresh.count(preset) > 0;
  src.origin = use_fresh ? "fresh" : "committed";
  const fs::path base = use_fresh ? fs::path(build_dir_) : fs::path(source_dir_);
  const std::string chosen = use_fresh ? fresh.at(preset) : committed.at(preset);
  for (const auto* m : {&fresh, &committed}) {
    for (const auto& kv : *m) {
      if (kv.second == chosen) continue;
      src.ignored.push_back(kv.second + (kv.first == preset ? std::string(" (a fresh run of the same preset wins)")
                                                            : " (preset " + preset + " preferred)"));
    }
  }
  src.found = true;
  src.preset = preset;
  src.path = chosen;
  src.display_path = fs::relative(src.path, base, ec).string();
  if (ec || src.display_path.empty()) src.display_path = src.path;
  if (src.origin == "fresh") src.display_path = "<build>/" + src.display_path;

  try {
    src.doc = rbk::read_json_file(src.path);
    rbk::check_result_document(src.doc, src.path);
    if (src.doc.value("experiment", std::string()) != experiment) {
      throw rbk::ResultFileError(src.path + ": field 'experiment' is " + src.doc.value("experiment", json()).dump() +
                                 ", expected \"" + experiment + "\"");
    }
  } catch (const std::exception& e) {
    src.error = std::string("malformed result file: ") + e.what();
    src.doc = json();
    return src;
  }
  src.ok = true;
  src.status = string_field(src.doc, "status");
  const json& ctx = src.doc.value("context", json::object());
  src.git_commit = string_field(ctx, "git_commit");
  src.git_dirty = string_field(ctx, "git_dirty");
  src.device = string_field(ctx, "device");
  src.finished_at = string_field(ctx, "finished_at");
  return src;
}

}  // namespace rbk::validation
