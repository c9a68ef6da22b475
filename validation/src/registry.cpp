// Parses and checks the claims registry (schema v2, see registry.h and validation/README.md).
// Strict on purpose: an unknown key or a wrong type is a RegistryError, so a typo in a rule can
// never silently turn into "not yet measured" or, worse, into a pass. A deciding part must say
// which face it measures and name its falsifier; a precondition must say what its failure means.
#include "rbk/validation/registry.h"

#include "json_checks.h"

#include <algorithm>
#include <set>

namespace rbk::validation {

using nlohmann::json;
using namespace detail;

namespace {

void check_target(const json& t, const std::string& file, const std::string& where) {
  if (t.is_number()) return;
  if (t.is_object()) {
    check_keys(t, {"pointer"}, file, where);
    check_pointer(get_string(t, "pointer", file, where, true), file, where + "/pointer");
    return;
  }
  fail(file, where, "expected a number or {\"pointer\": \"/summary/...\"}, found " + short_dump(t));
}

Requirement parse_requirement(const json& q, const std::string& file, const std::string& wq) {
  check_keys(q, {"value", "op", "target", "expect", "on_fail", "why"}, file, wq);
  Requirement req;
  req.value = get_string(q, "value", file, wq, true);
  check_pointer(req.value, file, wq + "/value");
  req.op = get_string(q, "op", file, wq, true);
  if (req.op == "<=" || req.op == ">=" || req.op == "<" || req.op == ">") {
    req.target = get_number(q, "target", file, wq, true);
  } else if (req.op == "equals") {
    if (!q.contains("target") || !(q.at("target").is_number() || q.at("target").is_string())) {
      fail(file, wq + "/target", "operator 'equals' needs a number or string target, found " +
                                     (q.contains("target") ? short_dump(q.at("target")) : std::string("nothing")));
    }
    req.target = q.at("target");
  } else if (req.op == "bool") {
    req.expect = get_bool(q, "expect", file, wq, true);
  } else {
    fail(file, wq + "/op", "'" + req.op + "' is not one of <= >= < > equals bool");
  }
  if (!q.contains("on_fail")) {
    fail(file, wq, "missing required 'on_fail': \"invalid\" (an equal-work / validity precondition) or "
                   "\"not_measured\" (coverage)");
  }
  req.on_fail = get_string(q, "on_fail", file, wq, true);
  if (req.on_fail != "invalid" && req.on_fail != "not_measured") {
    fail(file, wq + "/on_fail", "'" + req.on_fail + "' is not one of invalid, not_measured");
  }
  req.why = get_string(q, "why", file, wq, false);
  return req;
}

Rule parse_rule(const json& r, const std::string& file, const std::string& where) {
  check_keys(r, {"experiment", "value", "op", "target", "tolerance", "interval", "expect", "other", "alternative",
                 "family", "p_below", "unit", "on_null", "requires", "cannot_measure"},
             file, where);
  Rule rule;
  rule.raw = r;
  rule.cannot_measure = get_string(r, "cannot_measure", file, where, false);
  rule.unit = get_string(r, "unit", file, where, false);
  rule.on_null = get_string(r, "on_null", file, where, false, "fail");
  if (rule.on_null != "fail" && rule.on_null != "missing") {
    fail(file, where + "/on_null", "'" + rule.on_null + "' is not one of fail, missing");
  }
  rule.experiment = get_string(r, "experiment", file, where, rule.cannot_measure.empty());
  if (!rule.cannot_measure.empty() && !r.contains("op")) return rule;
  if (r.contains("requires")) {
    const json& q = r.at("requires");
    const std::string wq = where + "/requires";
    if (q.is_array()) {
      if (q.empty()) fail(file, wq, "expected a precondition object or a non-empty list of them, found []");
      for (std::size_t i = 0; i < q.size(); ++i) {
        rule.requires.push_back(parse_requirement(q[i], file, wq + "/" + std::to_string(i)));
      }
    } else {
      rule.requires.push_back(parse_requirement(q, file, wq));
    }
  }
  rule.value = get_string(r, "value", file, where, true);
  check_pointer(rule.value, file, where + "/value");
  rule.op = get_string(r, "op", file, where, true);
  const auto& ops = known_ops();
  if (std::find(ops.begin(), ops.end(), rule.op) == ops.end()) {
    std::string list;
    for (const auto& o : ops) list += (list.empty() ? "" : " ") + o;
    fail(file, where + "/op", "unknown operator '" + rule.op + "' (known: " + list + ")");
  }
  const std::string& op = rule.op;
  if (op == "<=" || op == ">=" || op == "<" || op == ">" || op == "within") {
    if (!r.contains("target")) fail(file, where, "operator '" + op + "' needs 'target'");
    check_target(r.at("target"), file, where + "/target");
    rule.target = r.at("target");
  }
  if (op == "equals") {
    if (!r.contains("target")) fail(file, where, "operator 'equals' needs 'target'");
    rule.target = r.at("target");
  }
  if (op == "within") {
    if (!r.contains("tolerance")) fail(file, where, "operator 'within' needs 'tolerance': {\"abs\": a, \"rel\": r}");
    const json& t = r.at("tolerance");
    check_keys(t, {"abs", "rel"}, file, where + "/tolerance");
    rule.tol_abs = get_number(t, "abs", file, where + "/tolerance", false);
    rule.tol_rel = get_number(t, "rel", file, where + "/tolerance", false);
    if (rule.tol_abs < 0 || rule.tol_rel < 0 || (rule.tol_abs == 0 && rule.tol_rel == 0)) {
      fail(file, where + "/tolerance", "needs abs and/or rel >= 0, not both zero, found " + short_dump(t));
    }
  }
  if (op == "interval_contains") {
    const json& iv = r.value("interval", json());
    if (!iv.is_array() || iv.size() != 2 || !iv[0].is_number() || !iv[1].is_number() ||
        iv[0].get<double>() > iv[1].get<double>()) {
      fail(file, where + "/interval", "expected [lo, hi] with lo <= hi, found " + short_dump(iv));
    }
    rule.lo = iv[0].get<double>();
    rule.hi = iv[1].get<double>();
  }
  if (op == "bool") {
    if (!r.contains("expect") || !r.at("expect").is_boolean()) {
      fail(file, where, "operator 'bool' needs 'expect': true|false");
    }
    rule.expect = r.at("expect").get<bool>();
  }
  if (op == "paired_ttest") {
    rule.other = get_string(r, "other", file, where, true);
    check_pointer(rule.other, file, where + "/other");
    rule.alternative = get_string(r, "alternative", file, where, false, "two_sided");
    if (rule.alternative != "two_sided" && rule.alternative != "less" && rule.alternative != "greater") {
      fail(file, where + "/alternative", "'" + rule.alternative + "' is not one of two_sided, less, greater");
    }
    rule.family = get_string(r, "family", file, where, true);
    rule.p_below = get_number(r, "p_below", file, where, false, 0.05);
    if (!(rule.p_below > 0 && rule.p_below < 1)) fail(file, where + "/p_below", "must be in (0, 1)");
  }
  return rule;
}

Falsifier parse_falsifier(const json& f, const Rule& rule, const std::string& file, const std::string& wf) {
  check_keys(f, {"outcome", "value", "other", "target_value"}, file, wf);
  Falsifier out;
  out.present = true;
  out.outcome = get_string(f, "outcome", file, wf, true);
  if (out.outcome.empty()) fail(file, wf + "/outcome", "must say, in words, a plausible outcome that fails the part");
  if (!f.contains("value")) fail(file, wf, "missing 'value': the JSON value for the rule's pointer " + rule.value);
  out.value = f.at("value");
  if (rule.op == "paired_ttest") {
    if (!f.contains("other") || !f.at("other").is_array()) {
      fail(file, wf + "/other", "a paired_ttest falsifier needs 'other': an array standing for " + rule.other +
                                    ", found " + (f.contains("other") ? short_dump(f.at("other")) : "nothing"));
    }
    out.other = f.at("other");
  } else if (f.contains("other")) {
    fail(file, wf + "/other", "only a paired_ttest rule has 'other'; this rule's op is '" + rule.op + "'");
  }
  if (rule.target_is_pointer()) {
    if (!f.contains("target_value") || !f.at("target_value").is_number()) {
      fail(file, wf + "/target_value", "the rule's target is the pointer " + rule.target.at("pointer").dump() +
                                           "; the falsifier needs a number 'target_value' standing for it, found " +
                                           (f.contains("target_value") ? short_dump(f.at("target_value")) : "nothing"));
    }
    out.target_value = f.at("target_value");
  } else if (f.contains("target_value")) {
    fail(file, wf + "/target_value", "only a rule whose target is {\"pointer\": ...} takes 'target_value'");
  }
  return out;
}

std::vector<HistoryEntry> parse_history(const json& h, const std::string& file, const std::string& wh) {
  std::vector<HistoryEntry> out;
  if (!h.is_array()) fail(file, wh, "expected a list of {changed_at, before, why}, found " + short_dump(h));
  for (std::size_t i = 0; i < h.size(); ++i) {
    const std::string w = wh + "/" + std::to_string(i);
    check_keys(h[i], {"changed_at", "before", "why"}, file, w);
    HistoryEntry e;
    e.changed_at = get_string(h[i], "changed_at", file, w, true);
    if (!h[i].contains("before") || !h[i].at("before").is_object()) {
      fail(file, w + "/before", "expected the rule object as it was before the change");
    }
    e.before = h[i].at("before");
    e.why = get_string(h[i], "why", file, w, true);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<ClaimPart> parse_parts(const json& c, const std::string& key, const std::string& claim_id,
                                   const std::string& file, const std::string& where) {
  const bool deciding = key == "parts";
  std::vector<ClaimPart> parts;
  if (!c.contains(key)) return parts;
  const json& arr = c.at(key);
  if (!arr.is_array()) fail(file, where + "/" + key, "expected a list of parts");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < arr.size(); ++i) {
    const std::string w = where + "/" + key + "/" + std::to_string(i);
    if (deciding) {
      check_keys(arr[i], {"id", "statement", "face", "rule", "falsifier", "history"}, file, w);
    } else {
      check_keys(arr[i], {"id", "statement", "face", "rule", "falsifier", "history", "why_not_deciding"}, file, w);
    }
    ClaimPart p;
    p.raw = arr[i];
    p.id = get_string(arr[i], "id", file, w, true);
    if (p.id.rfind(claim_id + ".", 0) != 0) fail(file, w + "/id", "'" + p.id + "' must start with '" + claim_id + ".'");
    if (!seen.insert(p.id).second) fail(file, w + "/id", "duplicate part id '" + p.id + "'");
    p.statement = get_string(arr[i], "statement", file, w, true);
    if (deciding && !arr[i].contains("face")) {
      fail(file, w, "missing required 'face' of part " + p.id + ": \"corrected\" (the method as described, rbk's "
                    "corrected code) or \"compat\" (the authors' code, rbk's compat modes)");
    }
    p.face = get_string(arr[i], "face", file, w, false);
    if (!p.face.empty() && p.face != kFaceCorrected && p.face != kFaceCompat) {
      fail(file, w + "/face", "'" + p.face + "' is not one of corrected, compat");
    }
    if (!arr[i].contains("rule")) fail(file, w, "missing 'rule'");
    p.rule = parse_rule(arr[i].at("rule"), file, w + "/rule");
    const bool measurable = p.rule.cannot_measure.empty();
    if (arr[i].contains("falsifier")) {
      if (p.rule.op.empty()) fail(file, w + "/falsifier", "a part without a rule to evaluate has no falsifier");
      p.falsifier = parse_falsifier(arr[i].at("falsifier"), p.rule, file, w + "/falsifier");
    } else if (deciding && measurable) {
      fail(file, w, "missing required 'falsifier' of part " + p.id + ": {\"outcome\": \"a plausible outcome that "
                    "fails it\", \"value\": <a value for " + p.rule.value + " that must make the rule fail>}");
    }
    if (arr[i].contains("history")) p.history = parse_history(arr[i].at("history"), file, w + "/history");
    p.why_not_deciding = get_string(arr[i], "why_not_deciding", file, w, false);
    parts.push_back(std::move(p));
  }
  return parts;
}

std::map<std::string, ExperimentInfo> parse_experiments(const json& doc, const std::string& file) {
  std::map<std::string, ExperimentInfo> out;
  if (!doc.contains("experiments") || !doc.at("experiments").is_object()) {
    fail(file, "/experiments", "expected an object {\"<name>\": {\"sources\": [paths...], \"gpu_only\": bool}}");
  }
  for (const auto& kv : doc.at("experiments").items()) {
    const std::string w = "/experiments/" + kv.key();
    check_keys(kv.value(), {"sources", "gpu_only", "note"}, file, w);
    ExperimentInfo info;
    info.sources = get_string_list(kv.value(), "sources", file, w, true);
    if (info.sources.empty()) fail(file, w + "/sources", "an experiment depends on at least its own directory");
    for (std::size_t i = 0; i < info.sources.size(); ++i) {
      const std::string& s = info.sources[i];
      if (s.empty() || s[0] == '/' || s.find("..") != std::string::npos) {
        fail(file, w + "/sources/" + std::to_string(i), "'" + s + "' must be a path relative to the repository root");
      }
    }
    info.gpu_only = get_bool(kv.value(), "gpu_only", file, w, false);
    out[kv.key()] = std::move(info);
  }
  return out;
}

}  // namespace

std::string face_title(const std::string& face) {
  if (face == kFaceCorrected) return "the method as described";
  if (face == kFaceCompat) return "the authors' code";
  return face.empty() ? "no face" : face;
}

const std::vector<std::string>& known_ops() {
  static const std::vector<std::string> ops = {"<=",    ">=",   "<",       ">",        "within",      "interval_contains",
                                               "equals", "bool", "is_null", "not_null", "paired_ttest"};
  return ops;
}

const Claim* Registry::find(const std::string& id) const {
  for (const auto& c : claims) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

Registry parse_registry(const json& doc, const std::string& file) {
  if (!doc.is_object()) fail(file, "/", "expected an object, found " + short_dump(doc));
  const std::string schema = get_string(doc, "schema", file, "/", true);
  if (schema != kRegistrySchema) {
    fail(file, "/schema",
         "found '" + schema + "', expected '" + kRegistrySchema +
             "' (v2: every deciding part has 'face' and 'falsifier', every 'requires' has 'on_fail', and the top "
             "level lists 'experiments' with their 'sources'; see validation/README.md)");
  }
  check_keys(doc, {"schema", "description", "preset_preference", "experiments", "claims"}, file, "/");
  Registry reg;
  reg.path = file;
  reg.schema = schema;
  reg.preset_preference = get_string_list(doc, "preset_preference", file, "/", true);
  reg.experiments = parse_experiments(doc, file);
  if (!doc.contains("claims") || !doc.at("claims").is_array()) fail(file, "/claims", "expected a list of claims");
  std::set<std::string> ids;
  const json& claims = doc.at("claims");
  for (std::size_t i = 0; i < claims.size(); ++i) {
    const std::string w = "/claims/" + std::to_string(i);
    const json& c = claims[i];
    check_keys(c, {"id", "title", "source", "paper_value", "audit", "experiments", "parts", "audit_checks",
                   "cannot_measure", "note"},
               file, w);
    Claim claim;
    claim.id = get_string(c, "id", file, w, true);
    if (!ids.insert(claim.id).second) fail(file, w + "/id", "duplicate claim id '" + claim.id + "'");
    claim.title = get_string(c, "title", file, w, true);
    claim.source = get_string(c, "source", file, w, true);
    claim.paper_value = get_string(c, "paper_value", file, w, true);
    if (!c.contains("audit")) fail(file, w, "missing 'audit': {\"code\": H|N|A|ok..., \"finding\": ...}");
    check_keys(c.at("audit"), {"code", "finding"}, file, w + "/audit");
    claim.audit_code = get_string(c.at("audit"), "code", file, w + "/audit", true);
    claim.audit_finding = get_string(c.at("audit"), "finding", file, w + "/audit", true);
    claim.experiments = get_string_list(c, "experiments", file, w, false);
    claim.parts = parse_parts(c, "parts", claim.id, file, w);
    claim.audit_checks = parse_parts(c, "audit_checks", claim.id, file, w);
    claim.cannot_measure = get_string(c, "cannot_measure", file, w, false);
    claim.note = get_string(c, "note", file, w, false);
    if (claim.parts.empty() && claim.cannot_measure.empty()) {
      fail(file, w, "claim " + claim.id + " has no parts and no 'cannot_measure' reason; every claim must say how "
                    "it is decided or why it cannot be");
    }
    // Every experiment a rule names must declare its sources, or staleness could not be judged.
    for (const auto* list : {&claim.parts, &claim.audit_checks}) {
      for (std::size_t k = 0; k < list->size(); ++k) {
        const std::string& e = (*list)[k].rule.experiment;
        if (!e.empty() && !reg.experiments.count(e)) {
          fail(file, w + "/" + (list == &claim.parts ? "parts/" : "audit_checks/") + std::to_string(k) +
                         "/rule/experiment",
               "experiment '" + e + "' has no entry in /experiments (expected {\"sources\": [paths it depends on]})");
        }
      }
    }
    reg.claims.push_back(std::move(claim));
  }
  return reg;
}

Registry load_registry(const std::string& path) { return parse_registry(read_json(path), path); }

}  // namespace rbk::validation
