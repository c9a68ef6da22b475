// Evaluation of one rule on one document, and of a part's rule on its falsifier (see verdict.h).
// Pure: no file, no git; the engine (verdict.cpp) supplies the chosen result document.
#include "rbk/validation/verdict.h"

#include <fnmatch.h>

#include "value_read.h"

#include <cmath>
#include <cstdio>

namespace rbk::validation {

using nlohmann::json;
using namespace detail;

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

namespace detail {

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
      return format_value(m.mean) + " [" + format_value(m.lo) + ", " + format_value(m.hi) + "]" + u +
             " (95% CI, n=" + std::to_string(m.n) + ")";
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

}  // namespace detail

std::optional<std::string> declared_not_measured(const json& doc, const std::string& pointer) {
  const json::json_pointer where_declared("/summary/not_measured");
  if (!doc.contains(where_declared) || !doc.at(where_declared).is_array()) return std::nullopt;
  for (const auto& d : doc.at(where_declared)) {
    if (!d.is_object() || !d.contains("pattern") || !d["pattern"].is_string()) continue;
    if (::fnmatch(d["pattern"].get<std::string>().c_str(), pointer.c_str(), 0) == 0)
      return d.contains("why") && d["why"].is_string() ? d["why"].get<std::string>() : std::string("declared not measured");
  }
  return std::nullopt;
}

namespace {
// The reason of a missing key: the result's own declaration when it has one.
std::string absent_key_reason(const json& doc, const std::string& pointer, const std::string& where) {
  if (const auto why = declared_not_measured(doc, pointer)) return "not measured in " + where + ": " + *why;
  return "key " + pointer + " is not in " + where;
}
}  // namespace

RuleResult evaluate_rule_on_document(const Rule& rule, const json& doc, const std::string& where,
                                     std::size_t family_size) {
  RuleResult r;
  const Value v = read_value(doc, rule.value);
  if (v.kind == Value::Absent) {
    r.outcome = Outcome::Missing;
    r.reason = absent_key_reason(doc, rule.value, where);
    return r;
  }
  r.measured = describe(v, rule.unit);
  const std::string& op = rule.op;
  auto error = [&](const std::string& what) {
    r.outcome = Outcome::Error;
    r.reason = where + " " + rule.value + ": " + what;
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
    const Value w = read_value(doc, rule.other);
    if (w.kind == Value::Absent) {
      r.outcome = Outcome::Missing;
      r.reason = absent_key_reason(doc, rule.other, where);
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
    r.family_size = family_size;
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
      r.reason = where + " " + rule.value + " is null (not computed)";
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
      const Value t = read_value(doc, tp);
      if (t.kind == Value::Absent) {
        r.outcome = Outcome::Missing;
        r.reason = "target key " + tp + " is not in " + where;
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

RuleResult evaluate_falsifier(const ClaimPart& part, std::size_t family_size) {
  const Rule& rule = part.rule;
  json doc = json::object();
  RuleResult r;
  try {
    doc[json::json_pointer(rule.value)] = part.falsifier.value;
    if (rule.op == "paired_ttest") doc[json::json_pointer(rule.other)] = part.falsifier.other;
    if (rule.target_is_pointer()) {
      doc[json::json_pointer(rule.target.at("pointer").get<std::string>())] = part.falsifier.target_value;
    }
    r = evaluate_rule_on_document(rule, doc, "the falsifier of " + part.id, family_size);
  } catch (const std::exception& e) {
    // E.g. the value pointer is a prefix of the target pointer: no document holds both.
    r.outcome = Outcome::Error;
    r.reason = "the falsifier's values cannot be placed at the rule's pointers: " + std::string(e.what());
  }
  r.part_id = part.id;
  r.statement = part.statement;
  r.face = part.face;
  return r;
}

}  // namespace rbk::validation
