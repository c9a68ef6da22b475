// Parses and checks the paper-table definitions (validation/paper_tables.json, see registry.h).
#include "rbk/validation/registry.h"

#include "json_checks.h"

#include <regex>
#include <set>

namespace rbk::validation {

using nlohmann::json;
using namespace detail;

TableSet parse_tables(const json& doc, const std::string& file, const Registry& registry) {
  check_keys(doc, {"schema", "description", "tables"}, file, "/");
  const std::string schema = get_string(doc, "schema", file, "/", true);
  // /2 is accepted with the same layout: the table format did not change with registry v2.
  if (schema != "rbk.paper_tables/1" && schema != "rbk.paper_tables/2") {
    fail(file, "/schema", "found '" + schema + "', expected 'rbk.paper_tables/1' (or /2)");
  }
  if (!doc.contains("tables") || !doc.at("tables").is_array()) fail(file, "/tables", "expected a list of tables");
  TableSet set;
  set.path = file;
  std::set<std::string> ids;
  const json& tables = doc.at("tables");
  for (std::size_t i = 0; i < tables.size(); ++i) {
    const std::string w = "/tables/" + std::to_string(i);
    const json& t = tables[i];
    check_keys(t, {"id", "seed", "number", "title", "caption", "claims", "columns", "ours_columns", "rows", "note"}, file,
               w);
    PaperTable table;
    table.id = get_string(t, "id", file, w, true);
    if (!ids.insert(table.id).second) fail(file, w + "/id", "duplicate table id '" + table.id + "'");
    table.seed = get_string(t, "seed", file, w, true);
    table.number = static_cast<int>(get_number(t, "number", file, w, true));
    table.title = get_string(t, "title", file, w, true);
    table.caption = get_string(t, "caption", file, w, true);
    table.claims = get_string_list(t, "claims", file, w, true);
    for (const auto& c : table.claims) {
      if (!registry.find(c)) fail(file, w + "/claims", "claim '" + c + "' is not in the registry " + registry.path);
    }
    table.columns = get_string_list(t, "columns", file, w, true);
    table.ours_columns = get_string_list(t, "ours_columns", file, w, true);
    table.note = get_string(t, "note", file, w, false);
    if (!t.contains("rows") || !t.at("rows").is_array() || t.at("rows").empty()) {
      fail(file, w + "/rows", "expected a non-empty list of rows");
    }
    const json& rows = t.at("rows");
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const std::string wr = w + "/rows/" + std::to_string(r);
      check_keys(rows[r], {"paper", "ours"}, file, wr);
      TableRow row;
      row.paper = get_string_list(rows[r], "paper", file, wr, true);
      if (row.paper.size() != table.columns.size()) {
        fail(file, wr + "/paper", "has " + std::to_string(row.paper.size()) + " cells, the table has " +
                                      std::to_string(table.columns.size()) + " paper columns");
      }
      if (!rows[r].contains("ours") || !rows[r].at("ours").is_array()) fail(file, wr, "missing list 'ours'");
      const json& ours = rows[r].at("ours");
      if (ours.size() != table.ours_columns.size()) {
        fail(file, wr + "/ours", "has " + std::to_string(ours.size()) + " cells, the table has " +
                                     std::to_string(table.ours_columns.size()) + " ours_columns");
      }
      for (std::size_t k = 0; k < ours.size(); ++k) {
        const std::string wc = wr + "/ours/" + std::to_string(k);
        TableCell cell;
        if (ours[k].is_null()) {
          cell.text = "not yet measured";  // null: no experiment is defined for this cell yet
          row.ours.push_back(cell);
          continue;
        }
        check_keys(ours[k], {"experiment", "value", "format", "scale", "unit", "null_text", "text", "cannot_measure"},
                   file, wc);
        cell.cannot_measure = get_string(ours[k], "cannot_measure", file, wc, false);
        cell.text = get_string(ours[k], "text", file, wc, false);
        cell.experiment = get_string(ours[k], "experiment", file, wc, false);
        if (!cell.experiment.empty()) {
          cell.value = get_string(ours[k], "value", file, wc, true);
          check_pointer(cell.value, file, wc + "/value");
        } else if (!ours[k].contains("text") && cell.cannot_measure.empty()) {
          fail(file, wc, "a cell needs 'experiment' + 'value', or 'text', or 'cannot_measure' (or null)");
        }
        cell.format = get_string(ours[k], "format", file, wc, false, "%.4g");
        static const std::regex kNumberFormat(R"(^[^%]*%[-+ 0#]*[0-9]*(\.[0-9]+)?[gfeGE][^%]*$)");
        if (!std::regex_match(cell.format, kNumberFormat)) {
          fail(file, wc + "/format", "'" + cell.format + "' must hold exactly one printf conversion %g/%f/%e (e.g. %.3g)");
        }
        cell.scale = get_number(ours[k], "scale", file, wc, false, 1.0);
        cell.unit = get_string(ours[k], "unit", file, wc, false);
        cell.null_text = get_string(ours[k], "null_text", file, wc, false, "none");
        row.ours.push_back(cell);
      }
      table.rows.push_back(std::move(row));
    }
    set.tables.push_back(std::move(table));
  }
  return set;
}

TableSet load_tables(const std::string& path, const Registry& registry) {
  return parse_tables(read_json(path), path, registry);
}

}  // namespace rbk::validation
