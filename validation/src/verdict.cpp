// Rule evaluation, preconditions, falsifiers and the two verdicts per claim (see verdict.h and
// the rule language in validation/README.md).
#include "rbk/validation/verdict.h"

#include "value_read.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace rbk::validation {

using nlohmann::json;
using namespace detail;

std::string to_string(Outcome o) {
  switch (o) {
    case Outcome::Pass: return "pass";
    case Outcome::Fail: return "fail";
    case Outcome::Missing: return "not yet measured";
    case Outcome::Error: return "error";
    case Outcome::Cannot: return "cannot be measured here";
    case Outcome::Invalid: return "INVALID";
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

namespace {

std::string evidence_of(const ResultSource& s) {
  std::string commit = s.git_commit.empty() ? "unknown" : s.git_commit.substr(0, 10);
  if (s.git_dirty == "true") commit += "-dirty";
  return s.display_path + " @ " + commit + " (" + s.origin + ", preset " + s.preset +
         (s.status.empty() || s.status == "ok" ? "" : ", run status " + s.status) + (s.stale.value_or(false) ? ", STALE" : "") +
         ")";
}

std::string join_lines(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::string requirement_text(const Requirement& q) {
  if (q.op == "bool") return q.value + " is " + (q.expect ? "true" : "false");
  return q.value + " " + q.op + " " + (q.target.is_number() ? format_value(q.target.get<double>()) : q.target.dump());
}

// Whether a precondition holds on the document. Absent or null never holds. A sample (array) must
// hold through its 95 % interval, as a rule would: lower end for >/>=, upper end for </<=.
bool requirement_holds(const Requirement& q, const json& doc, std::string* found) {
  const Value v = read_value(doc, q.value);
  *found = v.kind == Value::Absent ? std::string("no such key") : describe(v, "");
  if (q.op == "bool") return v.kind == Value::Bool && v.b == q.expect;
  if (q.op == "equals") {
    if (v.kind == Value::Number && q.target.is_number()) return v.x == q.target.get<double>();
    return v.kind != Value::Absent && v.raw == q.target;
  }
  const double target = q.target.get<double>();
  if (v.kind == Value::Number) return std::isfinite(v.x) && compare(v.x, q.op, target);
  if (v.kind == Value::Sample) {
    for (double x : v.sample) {
      if (!std::isfinite(x)) return false;
    }
    const MeanInterval m = mean_with_t_interval(v.sample);
    return compare(q.op[0] == '>' ? m.lo : m.hi, q.op, target);
  }
  return false;
}

}  // namespace

VerdictEngine::VerdictEngine(const Registry& registry, ResultStore& store)
    : registry_(registry), store_(store), history_(store.git(), registry.path) {
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

RuleResult VerdictEngine::evaluate(const ClaimPart& part, bool deciding) {
  RuleResult r;
  const Rule& rule = part.rule;
  auto finish = [&](RuleResult res) {
    res.part_id = part.id;
    res.statement = part.statement;
    res.face = part.face;
    res.declared_history = part.history;
    res.why_not_deciding = part.why_not_deciding;
    return res;
  };
  if (!rule.cannot_measure.empty()) {
    r.outcome = Outcome::Cannot;
    r.reason = rule.cannot_measure;
    return finish(r);
  }
  const ResultSource& src = store_.get(rule.experiment);
  if (!src.found || !src.ok) {
    r.outcome = src.found ? Outcome::Error : Outcome::Missing;
    r.reason = src.error;
    if (src.found) r.evidence = src.display_path;
    return finish(r);
  }
  r = evaluate_on(part, src, deciding);
  // A part the chosen result does not cover is judged on a stale result of a preferred preset
  // that covers it, marked STALE and saying why, rather than shown as never measured.
  if (r.outcome == Outcome::Missing) {
    RuleResult on_alt;
    if (src.first_stale_preferred_covering([&](const ResultSource& alt) {
          on_alt = evaluate_on(part, alt, deciding);
          return on_alt.outcome != Outcome::Missing && on_alt.outcome != Outcome::Error;
        })) {
      on_alt.not_covered_by_chosen = r.reason;
      r = std::move(on_alt);
    }
  }
  return finish(r);
}

RuleResult VerdictEngine::evaluate_on(const ClaimPart& part, const ResultSource& src, bool deciding) {
  RuleResult r;
  const Rule& rule = part.rule;
  const std::string evidence = evidence_of(src);
  const bool stale = src.stale.value_or(false);
  RuleChange change = history_.compare(part, src.git_commit, deciding);

  // Preconditions: a failed validity check (on_fail invalid) makes the part INVALID; a failed
  // coverage check (not_measured) makes it "not yet measured". Invalid is reported first: it is
  // the statement a reader must not miss.
  std::vector<std::string> invalid, uncovered;
  std::string invalid_short;
  for (const auto& q : rule.requires) {
    std::string found;
    if (requirement_holds(q, src.doc, &found)) continue;
    const std::string cond = "needs " + requirement_text(q) + ", found " + found;
    (q.on_fail == "invalid" ? invalid : uncovered).push_back(cond + (q.why.empty() ? "" : " (" + q.why + ")"));
    if (q.on_fail == "invalid" && invalid_short.empty()) invalid_short = "precondition failed: " + cond;
  }
  if (!invalid.empty() || !uncovered.empty()) {
    const bool is_invalid = !invalid.empty();
    r.outcome = is_invalid ? Outcome::Invalid : Outcome::Missing;
    r.invalid_short = invalid_short;
    std::string lines;
    for (const auto& l : is_invalid ? invalid : uncovered) lines += (lines.empty() ? "" : "; ") + l;
    r.reason = (is_invalid ? "precondition failed: " : "this run does not cover the claim: ") + lines + " in " +
               src.display_path + " (preset " + src.preset + ")";
  } else {
    r = evaluate_rule_on_document(rule, src.doc, src.display_path, family_size(rule.family));
    // A deciding rule that passes on its own falsifier cannot fail: it may not decide anything.
    if (deciding && part.falsifier.present && (r.outcome == Outcome::Pass || r.outcome == Outcome::Fail)) {
      const RuleResult f = evaluate_falsifier(part, family_size(rule.family));
      if (f.outcome != Outcome::Fail) {
        r.reason = "the rule does not fail on its own falsifier (" + part.falsifier.outcome + ": " +
                   (f.comparison.empty() ? to_string(f.outcome) + ", " + f.reason : f.comparison) +
                   "), so it cannot decide; measured " + r.comparison;
        r.outcome = Outcome::Invalid;
        r.invalid_short = "the rule does not fail on its own falsifier";
      }
    }
  }
  r.evidence = evidence;
  r.stale = stale;
  r.change = change;
  return r;
}

Verdict combine(const std::vector<Outcome>& outcomes, std::string* reason) {
  std::size_t pass = 0, fail = 0, missing = 0, error = 0, cannot = 0, invalid = 0;
  for (Outcome o : outcomes) {
    switch (o) {
      case Outcome::Pass: ++pass; break;
      case Outcome::Fail: ++fail; break;
      case Outcome::Missing: ++missing; break;
      case Outcome::Error: ++error; break;
      case Outcome::Cannot: ++cannot; break;
      case Outcome::Invalid: ++invalid; break;
    }
  }
  const std::size_t n = outcomes.size();
  std::ostringstream why;
  why << pass << " of " << n << " parts hold, " << fail << " fail";
  if (invalid) why << ", " << invalid << " invalid";
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
  for (const auto& p : claim.parts) cv.parts.push_back(evaluate(p, true));
  for (const auto& p : claim.audit_checks) cv.audit_checks.push_back(evaluate(p, false));
  if (claim.parts.empty()) {
    cv.corrected = {Verdict::CannotBeMeasured, claim.cannot_measure};
    cv.compat = cv.corrected;
    return cv;
  }
  for (const char* face : {kFaceCorrected, kFaceCompat}) {
    FaceVerdict& fv = face == std::string(kFaceCompat) ? cv.compat : cv.corrected;
    std::vector<Outcome> outcomes;
    std::vector<std::string> invalid;
    for (const auto& r : cv.parts) {
      if (r.face != face) continue;
      outcomes.push_back(r.outcome);
      if (r.outcome == Outcome::Invalid) invalid.push_back(r.part_id + " (" + r.invalid_short + ")");
    }
    if (outcomes.empty()) {
      fv = {Verdict::NotYetMeasured, "no part measures " + face_title(face)};
    } else {
      fv.verdict = combine(outcomes, &fv.reason);
      if (!invalid.empty()) fv.reason += "; invalid: " + join_lines(invalid, "; ");
    }
    if (!claim.cannot_measure.empty()) fv.reason += "; " + claim.cannot_measure;
  }
  return cv;
}

std::vector<FalsifierProblem> check_falsifiers(const Registry& registry) {
  std::map<std::string, std::size_t> families;
  for (const auto& c : registry.claims) {
    for (const auto* list : {&c.parts, &c.audit_checks}) {
      for (const auto& p : *list) {
        if (p.rule.op == "paired_ttest") ++families[p.rule.family];
      }
    }
  }
  std::vector<FalsifierProblem> out;
  for (const auto& c : registry.claims) {
    for (const auto& p : c.parts) {
      if (!p.rule.cannot_measure.empty() || !p.falsifier.present) continue;
      const RuleResult f = evaluate_falsifier(p, p.rule.op == "paired_ttest" ? families[p.rule.family] : 0);
      if (f.outcome == Outcome::Fail) continue;
      out.push_back({p.id, to_string(f.outcome) + (f.comparison.empty() ? " (" + f.reason + ")" : ": " + f.comparison)});
    }
  }
  return out;
}

}  // namespace rbk::validation
