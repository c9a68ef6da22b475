// Against the real repository (RBK_SOURCE_DIR): the claims an experiment says it measures are the
// registry's. The list is written in three places (the registry; rbk_add_experiment(... CLAIMS ...)
// in the experiment's CMakeLists.txt; the ExperimentSpec in its main.cpp, which every result file
// records under "claims"), and the registry is the one that decides. An experiment's claims in the
// registry: every claim that lists it under "experiments" or has a part whose rule reads it.
// Checked: the CMake list of every experiment in experiments/, and the "claims" of every committed
// result file in results/<experiment>/ (the ExperimentSpec as it ran).
#include "rbk/validation/registry.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

using namespace rbk::validation;
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string joined(const std::set<std::string>& s) {
  std::string out;
  for (const auto& x : s) out += (out.empty() ? "" : " ") + x;
  return "{" + out + "}";
}

std::map<std::string, std::set<std::string>> claims_by_experiment(const Registry& reg) {
  std::map<std::string, std::set<std::string>> by;
  for (const auto& c : reg.claims) {
    for (const auto& e : c.experiments) by[e].insert(c.id);
    for (const auto* list : {&c.parts, &c.audit_checks})
      for (const auto& p : *list)
        if (!p.rule.experiment.empty()) by[p.rule.experiment].insert(c.id);
  }
  return by;
}

}  // namespace

TEST(ValidationRealRegistry, ExperimentClaimListsAgreeWithTheRegistry) {
  const fs::path src = RBK_SOURCE_DIR;
  const Registry reg = load_registry((src / "validation/claims_registry.json").string());
  const auto by = claims_by_experiment(reg);
  const auto registry_claims = [&](const std::string& e) {
    const auto it = by.find(e);
    return it == by.end() ? std::set<std::string>{} : it->second;
  };
  // rbk_add_experiment(<name> [CLAIMS C.. ...] SOURCES ...): the CLAIMS words up to the next keyword.
  const std::regex call(R"(rbk_add_experiment\(\s*(\w+)([^)]*)\))");
  const std::regex claim_id(R"(^C[0-9]{2}$)");
  std::size_t cmake_checked = 0, results_checked = 0;
  for (const auto& dir : fs::directory_iterator(src / "experiments")) {
    const fs::path cm = dir.path() / "CMakeLists.txt";
    if (!fs::exists(cm)) continue;
    const std::string text = read_text(cm);
    for (std::sregex_iterator it(text.begin(), text.end(), call), end; it != end; ++it) {
      const std::string name = (*it)[1];
      std::istringstream words((*it)[2].str());
      std::set<std::string> listed;
      bool in_claims = false;
      for (std::string w; words >> w;) {
        if (w == "CLAIMS") {
          in_claims = true;
        } else if (std::regex_match(w, claim_id)) {
          if (in_claims) listed.insert(w);
        } else {
          in_claims = false;
        }
      }
      EXPECT_EQ(joined(listed), joined(registry_claims(name)))
          << cm << ": rbk_add_experiment(" << name << " CLAIMS ...) against the registry";
      ++cmake_checked;
    }
  }
  if (fs::exists(src / "results")) {
    for (const auto& f : fs::recursive_directory_iterator(src / "results")) {
      if (f.path().extension() != ".json") continue;
      nlohmann::json doc;
      try {
        doc = nlohmann::json::parse(read_text(f.path()));
      } catch (const std::exception&) {
        continue;  // not a result document (the ledger's own checks report malformed results)
      }
      if (!doc.is_object() || !doc.contains("experiment") || !doc.contains("claims")) continue;
      std::set<std::string> recorded;
      for (const auto& c : doc["claims"]) recorded.insert(c.get<std::string>());
      const std::string e = doc["experiment"].get<std::string>();
      EXPECT_EQ(joined(recorded), joined(registry_claims(e)))
          << f.path() << ": the claims its program declared (ExperimentSpec) against the registry's for " << e;
      ++results_checked;
    }
  }
  std::printf("%zu CMake lists and %zu result files checked\n", cmake_checked, results_checked);
  EXPECT_GT(cmake_checked, 10u);
}
