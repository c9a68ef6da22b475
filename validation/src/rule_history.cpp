// A part's rule now vs at its result's commit (see rule_history.h).
#include "rbk/validation/rule_history.h"

namespace rbk::validation {

using nlohmann::json;

json normalized_rule(const json& rule) {
  if (!rule.is_object()) return rule;
  json r = rule;
  r.erase("unit");
  if (r.contains("requires")) {
    json reqs = r.at("requires").is_array() ? r.at("requires") : json::array({r.at("requires")});
    for (auto& q : reqs) {
      if (!q.is_object()) continue;
      q.erase("why");
      if (!q.contains("on_fail")) q["on_fail"] = "not_measured";  // what a v1 precondition meant
    }
    r["requires"] = reqs;
  }
  return r;
}

std::string RuleChange::text() const {
  const std::string c = result_commit.substr(0, 10);
  switch (kind) {
    case Same: return "unchanged since its result (" + c + ")";
    case Added: return "added after its result (" + c + ")";
    case Unknown: return "rule history unknown (" + note + ")";
    case Changed: {
      std::string s = "CHANGED after its result (" + c + ")";
      if (!note.empty()) s += ", " + note;
      if (before != after) s += ": before " + before.dump() + "; after " + after.dump();
      if (before_face != after_face && !before_face.empty()) s += "; face " + before_face + " -> " + after_face;
      return s;
    }
  }
  return "";
}

RuleHistory::RuleHistory(const GitRepo& git, const std::string& registry_path)
    : git_(git), path_in_repo_(git.path_in_repo(registry_path)) {}

const RuleHistory::Snapshot& RuleHistory::at(const std::string& commit) {
  auto it = cache_.find(commit);
  if (it != cache_.end()) return it->second;
  Snapshot snap;
  if (const auto text = git_.show_file(commit, path_in_repo_)) {
    // Read leniently: an older registry may be of an older schema; only ids, rules and faces count.
    const json doc = json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_object() && doc.contains("claims") && doc.at("claims").is_array()) {
      snap.exists = true;
      for (const auto& c : doc.at("claims")) {
        for (const char* key : {"parts", "audit_checks"}) {
          if (!c.is_object() || !c.contains(key) || !c.at(key).is_array()) continue;
          for (const auto& p : c.at(key)) {
            if (p.is_object() && p.contains("id") && p.at("id").is_string()) {
              (std::string(key) == "parts" ? snap.parts : snap.audit_checks)[p.at("id").get<std::string>()] = p;
            }
          }
        }
      }
    }
  }
  return cache_.emplace(commit, std::move(snap)).first->second;
}

RuleChange RuleHistory::compare(const ClaimPart& now, const std::string& result_commit, bool deciding) {
  RuleChange ch;
  ch.result_commit = result_commit;
  ch.after = normalized_rule(now.rule.raw);
  ch.after_face = now.face;
  if (!git_.available()) {
    ch.note = "no git";
    return ch;
  }
  if (path_in_repo_.empty()) {
    ch.note = "the registry is not inside the git work tree";
    return ch;
  }
  if (result_commit.empty() || result_commit == "unknown") {
    ch.note = "the result records no commit";
    return ch;
  }
  if (!git_.commit_exists(result_commit)) {
    ch.note = "commit " + result_commit.substr(0, 10) + " is not in this repository";
    return ch;
  }
  const Snapshot& snap = at(result_commit);
  const auto p = snap.parts.find(now.id);
  const auto a = snap.audit_checks.find(now.id);
  if (!snap.exists || (p == snap.parts.end() && a == snap.audit_checks.end())) {
    ch.kind = RuleChange::Added;
    return ch;
  }
  // Where the part stood then: a deciding part that was an audit check (or the reverse) moved.
  const bool moved = deciding ? p == snap.parts.end() : a == snap.audit_checks.end();
  const json& then = (deciding != moved) ? p->second : a->second;
  ch.before = normalized_rule(then.value("rule", json()));
  ch.before_face = then.contains("face") && then.at("face").is_string() ? then.at("face").get<std::string>() : "";
  // A face missing at the result's commit (a v1 registry had none) is no change of the judgment.
  const bool face_changed = !ch.before_face.empty() && ch.before_face != ch.after_face;
  if (ch.before != ch.after || face_changed || moved) {
    ch.kind = RuleChange::Changed;
    if (moved) ch.note = deciding ? "was an audit check, now decides" : "decided then, now an audit check";
  } else {
    ch.kind = RuleChange::Same;
  }
  return ch;
}

}  // namespace rbk::validation
