// Renders the claims ledger (paper/CLAIMS.md, paper/verdicts.json: both verdicts of every claim,
// stale results, rules changed after their results, failed runs) and the seeds' tables with the
// paper's columns and ours side by side (paper/tables/<id>.md and .tex; an array cell prints as
// "mean [lo, hi] (n=k)", the 95 % Student-t interval). Every file starts with the program and the
// result files (with their git commits, staleness and provenance check) that made it, and carries
// no timestamp, so regenerating from the same results and history gives byte-identical files.
#pragma once
#include "rbk/validation/registry.h"
#include "rbk/validation/result_store.h"
#include "rbk/validation/verdict.h"

#include <map>
#include <set>
#include <string>
#include <vector>

namespace rbk::validation {

struct RenderContext {
  std::string generator;      // "rbk_validate (validation/src/rbk_validate_main.cpp) @ <commit>"
  std::string registry_path;  // as shown in the files, e.g. "validation/claims_registry.json"
  std::string tables_path;    // "validation/paper_tables.json"
};

// One rendered cell of our column plus the result files it read.
struct CellText {
  std::string text;
  std::set<std::string> experiments;  // experiments whose result file was read
};
CellText render_cell(const TableCell& cell, ResultStore& store);

std::string render_claims_markdown(const Registry& registry, const std::vector<ClaimVerdict>& verdicts,
                                   const ResultStore& store, const RenderContext& ctx);
nlohmann::json verdicts_to_json(const Registry& registry, const std::vector<ClaimVerdict>& verdicts,
                                const ResultStore& store, const RenderContext& ctx);

std::string render_table_markdown(const PaperTable& table, ResultStore& store,
                                  const std::map<std::string, ClaimVerdict>& verdicts, const RenderContext& ctx);
std::string render_table_latex(const PaperTable& table, ResultStore& store,
                               const std::map<std::string, ClaimVerdict>& verdicts, const RenderContext& ctx);
std::string render_tables_index(const TableSet& tables, const std::map<std::string, ClaimVerdict>& verdicts,
                                 const RenderContext& ctx);

std::string latex_escape(const std::string& text);
std::string markdown_escape(const std::string& text);

}  // namespace rbk::validation
