// Pieces shared by the table renderer (render.cpp) and the ledger renderer (render_ledger.cpp).
#pragma once
#include "rbk/validation/render.h"

#include <map>
#include <set>
#include <string>
#include <vector>

namespace rbk::validation::detail {

std::string short_commit(const ResultSource& s);
// One line per result file: path, commit, origin, preset, device, status, staleness, provenance
// check, BLAS, failed runs.
std::string source_line(const ResultSource& s);
// The header every generated Markdown file starts with: generator and the result files read
// (all of them, or only those named in `only`).
std::string provenance_md(const RenderContext& ctx, const std::map<std::string, ResultSource>& sources,
                          const std::set<std::string>& only);
std::string format_with(const std::string& fmt, double v);
std::string verdict_badge(Verdict v);
std::string part_measured(const RuleResult& r);
std::string join(const std::vector<std::string>& v, const std::string& sep);

}  // namespace rbk::validation::detail
