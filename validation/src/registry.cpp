// Parses and checks the claims registry and the paper-table definitions (see registry.h).
// Strict on purpose: an unknown key or a wrong type is a RegistryError, so a typo in a rule can
// never silently turn into "not yet measured" or, worse, into a pass.
#include "rbk/validation/registry.h"

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace rbk::validation {

using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& file, const std::string& where, const std::string& what) {
  throw RegistryError(file + ": " + where + ": " + what);
}

std::string short_dump(const json& v) {
  std::string s = v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

void check_keys(const json& obj, const std::set<std::string>& allowed, const std::string& file,
                const std::string& where) {
  if (!obj.is_object()) fail(file, where, "expected an object, found " + short_dump(obj));
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!allowed.count(it.key())) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(file, where, "unknown key '" + it.key() + "' (allowed: " + list + ")");
    }
  }
}

std::string get_string(const json& obj, const std::string& key, const std::string& file, const std::string& where,
                       bool required, const std::string& fallback = "") {
  if (!obj.contains(key)) {
    if (required) fail(file, where, "missing required string '" + key + "'");
    return fallback;
  }
  const json& v = obj.at(key);
  if (!v.is_string()) fail(file, where + "/" + key, "expected a string, found " + short_dump(v));
  return v.get<std::string>();
}

double get_number(const json& obj, const std::string& key, const std::string& file, const std::string& where,
                  bool required, double fallback = 0.0) {
  if (!obj.contains(key)) {
    if (required) fail(file, where, "missing required number '" + key + "'");
    return fallback;
  }
  const json& v = obj.at(key);
  if (!v.is_number()) fail(file, where + "/" + key, "expected a number, found " + short_dump(v));
  return v.get<double>();
}

std::vector<std::string> get_string_list(const json& obj, const std::string& key, const std::string& file,
                                         const std::string& where, bool required) {
  std::vector<std::string> out;
  if (!obj.contains(key)) {
    if (required) fail(file, where, "missing required list of strings '" + key + "'");
    return out;
  }
  const json& v = obj.at(key);
  if (!v.is_array()) fail(file, where + "/" + key, "expected a list of strings, found " + short_dump(v));
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) {
      fail(file, where + "/" + key + "/" + std::to_string(i), "expected a string, found " + short_dump(v[i]));
    }
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

void check_pointer(const std::string& p, const std::string& file, const std::string& where) {
  try {
    json::json_pointer jp(p);
    (void)jp;
  } catch (const std::exception& e) {
    fail(file, where, "'" + p + "' is not a JSON pointer (" + e.what() + ")");
  }
  if (p.empty() || p[0] != '/') fail(file, where, "JSON pointer '" + p + "' must start with '/'");
}

void check_target(const json& t, const std::string& file, const std::string& where) {
  if (t.is_number()) return;
  if (t.is_object()) {
    check_keys(t, {"pointer"}, file, where);
    check_pointer(get_string(t, "pointer", file, where, true), file, where + "/pointer");
    return;
  }
  fail(file, where, "expected a number or {\"pointer\": \"/summary/...\"}, found " + short_dump(t));
}

Rule parse_rule(const json& r, const std::string& file, const std::string& where) {
  check_keys(r, {"experiment", "value", "op", "target", "tolerance", "interval", "expect", "other", "alternative",
                 "family", "p_below", "unit", "on_null", "requires", "cannot_measure"},
             file, where);
  Rule rule;
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
    check_keys(q, {"value", "op", "target"}, file, wq);
    rule.requires_value = get_string(q, "value", file, wq, true);
    check_pointer(rule.requires_value, file, wq + "/value");
    rule.requires_op = get_string(q, "op", file, wq, true);
    if (rule.requires_op != "<=" && rule.requires_op != ">=" && rule.requires_op != "<" && rule.requires_op != ">") {
      fail(file, wq + "/op", "'" + rule.requires_op + "' is not one of <= >= < >");
    }
    rule.requires_target = get_number(q, "target", file, wq, true);
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

std::vector<ClaimPart> parse_parts(const json& c, const std::string& key, const std::string& claim_id,
                                   const std::string& file, const std::string& where) {
  std::vector<ClaimPart> parts;
  if (!c.contains(key)) return parts;
  const json& arr = c.at(key);
  if (!arr.is_array()) fail(file, where + "/" + key, "expected a list of parts");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < arr.size(); ++i) {
    const std::string w = where + "/" + key + "/" + std::to_string(i);
    check_keys(arr[i], {"id", "statement", "rule"}, file, w);
    ClaimPart p;
    p.id = get_string(arr[i], "id", file, w, true);
    if (p.id.rfind(claim_id + ".", 0) != 0) fail(file, w + "/id", "'" + p.id + "' must start with '" + claim_id + ".'");
    if (!seen.insert(p.id).second) fail(file, w + "/id", "duplicate part id '" + p.id + "'");
    p.statement = get_string(arr[i], "statement", file, w, true);
    if (!arr[i].contains("rule")) fail(file, w, "missing 'rule'");
    p.rule = parse_rule(arr[i].at("rule"), file, w + "/rule");
    parts.push_back(std::move(p));
  }
  return parts;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw RegistryError(path + ": cannot open (does the file exist?)");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    throw RegistryError(path + ": not valid JSON: " + e.what());
  }
}

}  // namespace

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
  check_keys(doc, {"schema", "description", "preset_preference", "claims"}, file, "/");
  const std::string schema = get_string(doc, "schema", file, "/", true);
  if (schema != "rbk.claims_registry/1") {
    fail(file, "/schema", "found '" + schema + "', expected 'rbk.claims_registry/1'");
  }
  Registry reg;
  reg.path = file;
  reg.preset_preference = get_string_list(doc, "preset_preference", file, "/", true);
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
    reg.claims.push_back(std::move(claim));
  }
  return reg;
}

Registry load_registry(const std::string& path) { return parse_registry(read_json(path), path); }

TableSet parse_tables(const json& doc, const std::string& file, const Registry& registry) {
  check_keys(doc, {"schema", "description", "tables"}, file, "/");
  const std::string schema = get_string(doc, "schema", file, "/", true);
  if (schema != "rbk.paper_tables/1") fail(file, "/schema", "found '" + schema + "', expected 'rbk.paper_tables/1'");
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
