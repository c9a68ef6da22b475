// Rule evaluation and verdict combination for the claims ledger (see verdict.h and the rule
// language in validation/README.md).
#include "rbk/validation/verdict.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace rbk::validation {

using nlohmann::json;

std::string to_string(Outcome o) {
  switch (o) {
    case Outcome::Pass: return "pass";
    case Outcome::Fail: return "fail";
    case Outcome::Missing: return "not yet measured";
    case Outcome::Error: return "error";
    case Outcome::Cannot: return "cannot be measured here";
  }
  return "?";
}

std::string to_string(Verdict v) {
  switch (v) {
    case Verdict::Reproduced: return "reproduced";
    case Verdict::NotReproduced: return "not reproduced";
    case Verdict::PartlyReproduced: return "partly reproduced";
    case Verdict::NotYetMeasured: return "not yet measured";
    case Verdict::CannotBeMeasured: return "cannot be measured here";
  }
  return "?";
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  if (std::fabs(v) < 1e15 && v == std::floor(v)) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.4g", v);
  }
  return buf;
}

namespace {

// A value read from a result file: a scalar, a per-seed sample, a bool, null, or something else.
struct Value {
  enum Kind { Absent, Null, Number, Sample, Bool, Other } kind = Absent;
  double x = 0.0;
  std::vector<double> sample;
  bool b = false;
  json raw;
};

Value read_value(const json& doc, const std::string& pointer) {
  Value v;
  json::json_pointer jp(pointer);
  if (!doc.contains(jp)) return v;
  v.raw = doc.at(jp);
  if (v.raw.is_null()) {
    v.kind = Value::Null;
  } else if (v.raw.is_boolean()) {
    v.kind = Value::Bool;
    v.b = v.raw.get<bool>();
  } else if (v.raw.is_number()) {
    v.kind = Value::Number;
    v.x = v.raw.get<double>();
  } else if (v.raw.is_array() && !v.raw.empty()) {
    v.kind = Value::Sample;
    for (const auto& e : v.raw) {
      if (!e.is_number()) {
        v.kind = Value::Other;
        v.sample.clear();
        break;
      }
      v.sample.push_back(e.get<double>());
    }
  } else {
    v.kind = Value::Other;
  }
  return v;
}

std::string describe(const Value& v, const std::string& unit) {
  const std::string u = unit.empty() ? "" : " " + unit;
  switch (v.kind) {
    case Value::Absent: return "";
    case Value::Null: return "null";
    case Value::Number: return format_value(v.x) + u;
    case Value::Bool: return v.b ? "true" : "false";
    case Value::Sample: {
      bool finite = true;
      for (double s : v.sample) finite = finite && std::isfinite(s);
      if (!finite || v.sample.size() < 2) {
        std::string s = "[";
        for (std::size_t i = 0; i < v.sample.size(); ++i) s += (i ? ", " : "") + format_value(v.sample[i]);
        return s + "]" + u;
      }
      const MeanInterval m = mean_with_t_interval(v.sample);
      return format_value(m.mean) + u + " (95% CI " + format_value(m.lo) + " to " + format_value(m.hi) +
             ", n=" + std::to_string(m.n) + ")";
    }
    case Value::Other: {
      std::string s = v.raw.dump();
      return s.size() > 60 ? s.substr(0, 57) + "..." : s;
    }
  }
  return "";
}

bool compare(double a, const std::string& op, double b) {
  if (op == "<=") return a <= b;
  if (op == ">=") return a >= b;
  if (op == "<") return a < b;
  if (op == ">") return a > b;
  return false;
}

std::string evidence_of(const ResultSource& s) {
  std::string commit = s.git_commit.empty() ? "unknown" : s.git_commit.substr(0, 10);
  if (s.git_dirty == "true") commit += "-dirty";
  return s.display_path + " @ " + commit + " (" + s.origin + ", preset " + s.preset +
         (s.status.empty() || s.status == "ok" ? "" : ", run status " + s.status) + ")";
}

}  // namespace

VerdictEngine::VerdictEngine(const Registry& registry, ResultStore& store) : registry_(registry), store_(store) {
  for (const auto& c : registry_.claims) {
    for (const auto* list : {&c.parts, &c.audit_checks}) {
      for (const auto& p : *list) {
        if (p.rule.op == "paired_ttest") ++families_[p.rule.family];
      }
    }
  }
}

std::size_t VerdictEngine::family_size(const std::string& family) const {
  auto it = families_.find(family);
  return it == families_.end() ? 0 : it->second;
}

RuleResult VerdictEngine::evaluate(const ClaimPart& part) {
  RuleResult r;
  r.part_id = part.id;
  r.statement = part.statement;
  const Rule& rule = part.rule;
  if (!rule.cannot_measure.empty()) {
    r.outcome = Outcome::Cannot;
    r.reason = rule.cannot_measure;
    return r;
  }
  const ResultSource& src = store_.get(rule.experiment);
  if (!src.found || !src.ok) {
    r.outcome = src.found ? Outcome::Error : Outcome::Missing;
    r.reason = src.error;
    if (src.found) r.evidence = src.display_path;
    return r;
  }
  r.evidence = evidence_of(src);
  const std::string where = src.display_path + " " + rule.value;
  if (!rule.requires_value.empty()) {
    const Value q = read_value(src.doc, rule.requires_value);
    const std::string cond = rule.requires_value + " " + rule.requires_op + " " + format_value(rule.requires_target);
    if (q.kind != Value::Number || !compare(q.x, rule.requires_op, rule.requires_target)) {
      r.outcome = Outcome::Missing;
      r.reason = "this run does not cover the claim: needs " + cond + ", found " +
                 (q.kind == Value::Absent ? std::string("no such key") : describe(q, "")) + " in " + src.display_path +
                 " (preset " + src.preset + ")";
      return r;
    }
  }
  const Value v = read_value(src.doc, rule.value);
  if (v.kind == Value::Absent) {
    r.outcome = Outcome::Missing;
    r.reason = "key " + rule.value + " is not in " + src.display_path +
               (src.status == "ok" || src.status.empty() ? "" : " (run status " + src.status + ")");
    return r;
  }
  r.measured = describe(v, rule.unit);
  const std::string& op = rule.op;
  auto error = [&](const std::string& what) {
    r.outcome = Outcome::Error;
    r.reason = where + ": " + what;
    return r;
  };

  if (op == "is_null" || op == "not_null") {
    const bool is_null = v.kind == Value::Null;
    const bool pass = (op == "is_null") == is_null;
    r.outcome = pass ? Outcome::Pass : Outcome::Fail;
    r.comparison = r.measured + (op == "is_null" ? " is null" : " is not null") + " -> " + to_string(r.outcome);
    return r;
  }
  if (op == "bool") {
    if (v.kind != Value::Bool) return error("is " + r.measured + ", expected true/false");
    r.outcome = v.b == rule.expect ? Outcome::Pass : Outcome::Fail;
    r.comparison = r.measured + " == " + (rule.expect ? "true" : "false") + " -> " + to_string(r.outcome);
    return r;
  }
  if (op == "equals") {
    bool eq = v.raw == rule.target;
    if (v.raw.is_number() && rule.target.is_number()) eq = v.raw.get<double>() == rule.target.get<double>();
    r.outcome = eq ? Outcome::Pass : Outcome::Fail;
    r.comparison = r.measured + " == " + rule.target.dump() + " -> " + to_string(r.outcome);
    return r;
  }
  if (op == "paired_ttest") {
    const Value w = read_value(src.doc, rule.other);
    if (w.kind == Value::Absent) {
      r.outcome = Outcome::Missing;
      r.reason = "key " + rule.other + " is not in " + src.display_path;
      return r;
    }
    if (v.kind != Value::Sample || w.kind != Value::Sample) {
      return error("paired_ttest needs two per-seed arrays of numbers; " + rule.value + " is " + r.measured + ", " +
                   rule.other + " is " + describe(w, rule.unit));
    }
    try {
      r.ttest = paired_t_test(v.sample, w.sample, parse_alternative(rule.alternative));
    } catch (const std::exception& e) {
      return error(e.what());
    }
    r.family_size = family_size(rule.family);
    r.p_adjusted = bonferroni(r.ttest->p, r.family_size);
    r.outcome = r.p_adjusted < rule.p_below ? Outcome::Pass : Outcome::Fail;
    char buf[256];
    std::snprintf(buf, sizeof buf, "paired t (%s, n=%zu): mean diff %s, t=%.3g, p=%.3g, Bonferroni x%zu -> %.3g %s %.3g -> %s",
                  rule.alternative.c_str(), r.ttest->n, format_value(r.ttest->mean_difference).c_str(), r.ttest->t,
                  r.ttest->p, r.family_size, r.p_adjusted, r.p_adjusted < rule.p_below ? "<" : ">=", rule.p_below,
                  to_string(r.outcome).c_str());
    r.comparison = buf;
    r.measured += " vs " + describe(w, rule.unit);
    return r;
  }

  // Numeric comparisons: a scalar, or a per-seed sample judged through its 95 % interval.
  if (v.kind == Value::Null) {
    if (rule.on_null == "missing") {
      r.outcome = Outcome::Missing;
      r.reason = where + " is null (not computed)";
      return r;
    }
    r.outcome = Outcome::Fail;
    r.comparison = "null (no finite value) -> fail";
    return r;
  }
  if (v.kind != Value::Number && v.kind != Value::Sample) return error("is " + r.measured + ", expected a number");
  double lo = v.x, hi = v.x, centre = v.x;
  if (v.kind == Value::Sample) {
    for (double s : v.sample) {
      if (!std::isfinite(s)) {
        r.outcome = Outcome::Fail;
        r.comparison = "a seed is not finite -> fail";
        return r;
      }
    }
    r.interval = mean_with_t_interval(v.sample);
    lo = r.interval->lo;
    hi = r.interval->hi;
    centre = r.interval->mean;
  }
  if (!std::isfinite(centre)) {
    r.outcome = Outcome::Fail;
    r.comparison = r.measured + " is not finite -> fail";
    return r;
  }
  double target = 0.0;
  std::string target_text;
  if (op != "interval_contains") {
    if (rule.target.is_number()) {
      target = rule.target.get<double>();
      target_text = format_value(target);
    } else {
      const std::string tp = rule.target.at("pointer").get<std::string>();
      const Value t = read_value(src.doc, tp);
      if (t.kind == Value::Absent) {
        r.outcome = Outcome::Missing;
        r.reason = "target key " + tp + " is not in " + src.display_path;
        return r;
      }
      if (t.kind != Value::Number) return error("target " + tp + " is " + describe(t, "") + ", expected a number");
      target = t.x;
      target_text = format_value(target) + " (" + tp + ")";
    }
  }
  bool pass = false;
  std::string cmp;
  if (op == "within") {
    const double tol = rule.tol_abs + rule.tol_rel * std::fabs(target);
    pass = std::fabs(centre - target) <= tol;
    cmp = "|" + format_value(centre) + " - " + target_text + "| <= " + format_value(tol);
  } else if (op == "interval_contains") {
    pass = centre >= rule.lo && centre <= rule.hi;
    cmp = format_value(centre) + " in [" + format_value(rule.lo) + ", " + format_value(rule.hi) + "]";
  } else {
    // ">=" and ">" need the whole interval above the target; "<=" and "<" the whole interval below.
    const double decisive = (op == ">=" || op == ">") ? lo : hi;
    pass = compare(decisive, op, target);
    cmp = (v.kind == Value::Sample ? std::string(op[0] == '>' ? "CI low " : "CI high ") : std::string()) +
          format_value(decisive) + " " + op + " " + target_text;
  }
  r.outcome = pass ? Outcome::Pass : Outcome::Fail;
  r.comparison = cmp + " -> " + to_string(r.outcome);
  return r;
}

Verdict combine(const std::vector<Outcome>& outcomes, std::string* reason) {
  std::size_t pass = 0, fail = 0, missing = 0, error = 0, cannot = 0;
  for (Outcome o : outcomes) {
    switch (o) {
      case Outcome::Pass: ++pass; break;
      case Outcome::Fail: ++fail; break;
      case Outcome::Missing: ++missing; break;
      case Outcome::Error: ++error; break;
      case Outcome::Cannot: ++cannot; break;
    }
  }
  const std::size_t n = outcomes.size();
  std::ostringstream why;
  why << pass << " of " << n << " parts hold, " << fail << " fail";
  if (missing) why << ", " << missing << " not yet measured";
  if (error) why << ", " << error << " unreadable";
  if (cannot) why << ", " << cannot << " cannot be measured here";
  if (reason) *reason = why.str();
  if (n == 0) return Verdict::NotYetMeasured;
  if (pass + fail == 0) return cannot == n ? Verdict::CannotBeMeasured : Verdict::NotYetMeasured;
  if (fail == 0) return pass == n ? Verdict::Reproduced : Verdict::PartlyReproduced;
  if (pass == 0) return Verdict::NotReproduced;
  return Verdict::PartlyReproduced;
}

ClaimVerdict VerdictEngine::judge(const Claim& claim) {
  ClaimVerdict cv;
  cv.claim_id = claim.id;
  for (const auto& p : claim.parts) cv.parts.push_back(evaluate(p));
  for (const auto& p : claim.audit_checks) cv.audit_checks.push_back(evaluate(p));
  if (claim.parts.empty()) {
    cv.verdict = Verdict::CannotBeMeasured;
    cv.reason = claim.cannot_measure;
    return cv;
  }
  std::vector<Outcome> outcomes;
  for (const auto& r : cv.parts) outcomes.push_back(r.outcome);
  cv.verdict = combine(outcomes, &cv.reason);
  if (!claim.cannot_measure.empty()) cv.reason += "; " + claim.cannot_measure;
  return cv;
}

}  // namespace rbk::validation
