// The claims ledger: paper/CLAIMS.md (two verdicts per claim side by side, stale results, rules
// changed after their results, failed runs) and paper/verdicts.json (the same, machine-readable,
// including the result files chosen per experiment, which scripts/make_figures.py reads).
#include "rbk/validation/render.h"

#include "render_common.h"

#include <algorithm>
#include <map>
#include <sstream>

namespace rbk::validation {

using nlohmann::json;
using namespace detail;

namespace {

constexpr Verdict kVerdictOrder[] = {Verdict::Reproduced, Verdict::PartlyReproduced, Verdict::NotReproduced,
                                     Verdict::NotYetMeasured, Verdict::CannotBeMeasured};

std::string short_id(const std::string& part_id) { return part_id.substr(part_id.find('.') + 1); }

bool changed_after_result(const RuleResult& r) {
  return r.change && (r.change->kind == RuleChange::Changed || r.change->kind == RuleChange::Added);
}

std::string history_lines(const RuleResult& r) {
  std::string s;
  for (const auto& h : r.declared_history) {
    s += "declared change at " + h.changed_at.substr(0, 10) + " (before: " + h.before.dump() + "): " + h.why + "\n";
  }
  return s;
}

void part_table(std::ostringstream& o, const std::vector<RuleResult>& rs, const char* heading, bool audit) {
  if (rs.empty()) return;
  o << heading << "\n\n| part | face | statement | outcome | measured / comparison | evidence |\n"
                  "|---|---|---|---|---|---|\n";
  for (const auto& r : rs) {
    std::string measured = r.outcome == Outcome::Pass || r.outcome == Outcome::Fail
                               ? r.measured + (r.measured.empty() ? "" : "; ") + r.comparison
                               : part_measured(r);
    if (audit && !r.why_not_deciding.empty()) measured += "\n(does not decide: " + r.why_not_deciding + ")";
    std::string evidence = r.evidence.empty() ? "—" : r.evidence;
    if (!r.not_covered_by_chosen.empty()) evidence += "\njudged on this STALE result: " + r.not_covered_by_chosen;
    if (r.change && r.change->kind != RuleChange::Same) evidence += "\nrule " + r.change->text();
    const std::string hist = history_lines(r);
    if (!hist.empty()) evidence += "\n" + hist.substr(0, hist.size() - 1);
    o << "| " << r.part_id << " | " << (r.face.empty() ? "—" : face_title(r.face)) << " | "
      << markdown_escape(r.statement) << " | " << to_string(r.outcome) << " | " << markdown_escape(measured) << " | "
      << markdown_escape(evidence) << " |\n";
  }
  o << "\n";
}

}  // namespace

std::string render_claims_markdown(const Registry& registry, const std::vector<ClaimVerdict>& verdicts,
                                   const ResultStore& store, const RenderContext& ctx) {
  std::ostringstream o;
  o << "# ResNet-BK claims ledger\n\n";
  o << provenance_md(ctx, store.sources(), {});
  o << "Every claim gets two verdicts, side by side:\n\n"
       "- **the method as described**: decided by the parts with face `corrected`, measured with rbk's corrected "
       "implementation of what the papers describe;\n"
       "- **the authors' code**: decided by the parts with face `compat`, measured with rbk's compat modes, which "
       "do what the upstream code does.\n\n"
       "A verdict is judged only from measured result files; a claim with no result is *not yet measured*, never a "
       "pass. A part whose validity precondition failed is INVALID (never a pass, never a fail); a claim with an "
       "invalid part cannot be *reproduced*. Rules, statistics and the result-file choice: `validation/README.md`.\n\n";

  o << "## Summary\n\n| verdict | the method as described | the authors' code |\n|---|---|---|\n";
  for (Verdict v : kVerdictOrder) {
    o << "| " << to_string(v) << " |";
    for (const char* face : {kFaceCorrected, kFaceCompat}) {
      std::vector<std::string> ids;
      for (const auto& cv : verdicts) {
        if (cv.of(face).verdict == v) ids.push_back(cv.claim_id);
      }
      o << " " << ids.size() << (ids.empty() ? std::string() : ": " + join(ids, ", ")) << " |";
    }
    o << "\n";
  }

  o << "\n## Stale results\n\n";
  o << "A result is stale when a source its experiment declares (registry `experiments`) differs from the "
       "same source at the commit the result records (a file moved without a byte changed, git's exact rename, "
       "from a source declared then to one declared now, is the same code); the commits touching those sources since are listed. Its claims are judged on it "
       "all the same, and say so.\n\n";
  bool any = false;
  for (const auto& kv : store.sources()) {
    const ResultSource& s = kv.second;
    if (!s.found || (s.stale && !*s.stale)) continue;
    any = true;
    o << "- `" << kv.first << "` (`" << s.display_path << "`): " << markdown_escape(s.stale_text()) << "\n";
  }
  if (!any) o << "None: every result read is newer than the last change to its experiment's sources.\n";

  o << "\n## Rules changed after their results\n\n";
  o << "Each part's rule now, compared with the registry at the commit of the result that judges it.\n\n";
  any = false;
  for (const auto& cv : verdicts) {
    for (const auto* list : {&cv.parts, &cv.audit_checks}) {
      for (const auto& r : *list) {
        if (!changed_after_result(r) && r.declared_history.empty()) continue;
        any = true;
        o << "- " << r.part_id << ": " << markdown_escape(r.change ? r.change->text() : "no result");
        const std::string hist = history_lines(r);
        if (!hist.empty()) o << "; " << markdown_escape(hist.substr(0, hist.size() - 1));
        o << "\n";
      }
    }
  }
  if (!any) o << "None.\n";
  std::size_t unknown = 0;
  std::string why_unknown;
  for (const auto& cv : verdicts) {
    for (const auto& r : cv.parts) {
      if (r.change && r.change->kind == RuleChange::Unknown) {
        ++unknown;
        why_unknown = r.change->note;
      }
    }
  }
  if (unknown) o << "\nRule history unknown for " << unknown << " part(s) (e.g. " << why_unknown << ").\n";

  o << "\n## Failed runs (never judged)\n\n";
  any = false;
  for (const auto& kv : store.sources()) {
    for (const auto& f : kv.second.failed_runs) {
      any = true;
      o << "- `" << f << "`\n";
    }
  }
  if (!any) o << "None.\n";

  const auto problems = check_falsifiers(registry);
  if (!problems.empty()) {
    o << "\n## Parts whose rule does not fail on its own falsifier (cannot decide; judged INVALID)\n\n";
    for (const auto& p : problems) o << "- " << p.part_id << ": " << markdown_escape(p.outcome) << "\n";
  }

  o << "\n## Ledger\n\n";
  o << "| ID | claim (source) | paper value | what the upstream code does (audit) | measured | the method as described "
       "| the authors' code | evidence |\n|---|---|---|---|---|---|---|---|\n";
  for (const auto& v : verdicts) {
    const Claim* c = registry.find(v.claim_id);
    std::vector<std::string> measured, evidence;
    for (const auto& p : v.parts) {
      measured.push_back(short_id(p.part_id) + " [" + p.face + "]: " + part_measured(p));
      if (!p.evidence.empty() && std::find(evidence.begin(), evidence.end(), p.evidence) == evidence.end()) {
        evidence.push_back(p.evidence);
      }
    }
    if (v.parts.empty()) measured.push_back("—");
    o << "| " << v.claim_id << " | " << markdown_escape(c->title + " (" + c->source + ")") << " | "
      << markdown_escape(c->paper_value) << " | " << markdown_escape("[" + c->audit_code + "] " + c->audit_finding)
      << " | " << markdown_escape(join(measured, "\n")) << " | " << verdict_badge(v.corrected.verdict) << "<br>"
      << markdown_escape(v.corrected.reason) << " | " << verdict_badge(v.compat.verdict) << "<br>"
      << markdown_escape(v.compat.reason) << " | " << markdown_escape(evidence.empty() ? "—" : join(evidence, "\n"))
      << " |\n";
  }

  o << "\n## Details\n\n";
  for (const auto& v : verdicts) {
    const Claim* c = registry.find(v.claim_id);
    o << "### " << c->id << ": " << c->title << "\n\n";
    o << "- Source: " << c->source << "\n- Paper: " << c->paper_value << "\n- Upstream code [" << c->audit_code
      << "]: " << c->audit_finding << "\n";
    if (!c->experiments.empty()) o << "- Experiments: " << join(c->experiments, ", ") << "\n";
    if (!c->note.empty()) o << "- Note: " << c->note << "\n";
    o << "- **The method as described: " << to_string(v.corrected.verdict) << "** (" << v.corrected.reason << ")\n";
    o << "- **The authors' code: " << to_string(v.compat.verdict) << "** (" << v.compat.reason << ")\n";
    std::map<std::string, std::vector<std::string>> stale_files;  // evidence -> parts reading it
    for (const auto* list : {&v.parts, &v.audit_checks}) {
      for (const auto& r : *list) {
        if (r.stale) stale_files[r.evidence].push_back(r.part_id);
      }
    }
    for (const auto& kv : stale_files) {
      o << "- Judged on a STALE result: " << kv.first << " (read by " << join(kv.second, ", ") << ")\n";
    }
    for (const auto* list : {&v.parts, &v.audit_checks}) {
      for (const auto& r : *list) {
        if (changed_after_result(r)) o << "- Rule " << r.part_id << " " << r.change->text() << "\n";
      }
    }
    o << "\n";
    part_table(o, v.parts, "Parts (decide the verdicts):", false);
    part_table(o, v.audit_checks,
               "Audit checks (measure what the upstream code does, or hold by construction; reported, not part of the "
               "verdicts):",
               true);
  }
  return o.str();
}

json verdicts_to_json(const Registry& registry, const std::vector<ClaimVerdict>& verdicts, const ResultStore& store,
                      const RenderContext& ctx) {
  json doc = {{"schema", "rbk.verdicts/2"},
              {"generator", ctx.generator},
              {"registry", ctx.registry_path},
              {"faces",
               {{kFaceCorrected, face_title(kFaceCorrected) + ": rbk's corrected implementation"},
                {kFaceCompat, face_title(kFaceCompat) + ": rbk's compat modes, as upstream's code behaves"}}}};
  json sources = json::object();
  for (const auto& kv : store.sources()) {
    const ResultSource& s = kv.second;
    json stale_commits = json::array();
    for (const auto& c : s.stale_commits) stale_commits.push_back(c.text());
    sources[kv.first] = {{"found", s.found},
                         {"ok", s.ok},
                         {"path", s.found ? json(s.json_path) : json()},
                         {"h5_path", s.h5_path.empty() ? json() : json(s.h5_path)},
                         {"display_path", s.display_path},
                         {"origin", s.origin},
                         {"preset", s.preset},
                         {"status", s.status},
                         {"git_commit", s.git_commit},
                         {"git_dirty", s.git_dirty},
                         {"device", s.device},
                         {"blas", s.blas},
                         {"stale", s.stale ? json(*s.stale) : json()},
                         {"stale_commits", stale_commits},
                         {"stale_unknown_reason", s.stale_unknown_reason},
                         {"provenance_check", s.provenance_check},
                         {"dirty_check", s.dirty_check},
                         {"failed_runs", s.failed_runs},
                         {"ignored", s.ignored},
                         {"error", s.error}};
  }
  doc["sources"] = sources;
  auto rule_json = [](const RuleResult& r) {
    json j = {{"id", r.part_id},           {"face", r.face},          {"outcome", to_string(r.outcome)},
              {"measured", r.measured},    {"comparison", r.comparison}, {"reason", r.reason},
              {"evidence", r.evidence},    {"stale", r.stale}};
    if (!r.not_covered_by_chosen.empty()) j["not_covered_by_chosen"] = r.not_covered_by_chosen;
    if (r.interval) {
      j["mean"] = r.interval->mean;
      j["ci95"] = {r.interval->lo, r.interval->hi};
      j["n"] = r.interval->n;
    }
    if (r.ttest) {
      j["t"] = r.ttest->t;
      j["p"] = r.ttest->p;
      j["p_bonferroni"] = r.p_adjusted;
      j["family_size"] = r.family_size;
    }
    if (r.change) {
      static const char* kKinds[] = {"unchanged", "changed_after_result", "added_after_result", "unknown"};
      j["rule_history"] = {{"state", kKinds[r.change->kind]}, {"result_commit", r.change->result_commit},
                           {"note", r.change->note}};
      if (r.change->kind == RuleChange::Changed) {
        j["rule_history"]["before"] = r.change->before;
        j["rule_history"]["after"] = r.change->after;
      }
    }
    if (!r.why_not_deciding.empty()) j["why_not_deciding"] = r.why_not_deciding;
    return j;
  };
  json claims = json::array();
  for (const auto& v : verdicts) {
    const Claim* c = registry.find(v.claim_id);
    json parts = json::array(), checks = json::array();
    for (const auto& r : v.parts) parts.push_back(rule_json(r));
    for (const auto& r : v.audit_checks) checks.push_back(rule_json(r));
    claims.push_back({{"id", v.claim_id},
                      {"title", c->title},
                      {"verdicts",
                       {{kFaceCorrected, {{"verdict", to_string(v.corrected.verdict)}, {"reason", v.corrected.reason}}},
                        {kFaceCompat, {{"verdict", to_string(v.compat.verdict)}, {"reason", v.compat.reason}}}}},
                      {"parts", parts},
                      {"audit_checks", checks}});
  }
  doc["claims"] = claims;
  json problems = json::array();
  for (const auto& p : check_falsifiers(registry)) problems.push_back({{"part", p.part_id}, {"falsifier_gives", p.outcome}});
  doc["falsifier_problems"] = problems;
  return doc;
}

}  // namespace rbk::validation
