// Sweep grids (sweep.h): arms x axes x seeds enumerated deterministically with readable ids, the
// selector (id globs and shards) that splits a sweep across commands, and the plan record.
#include "rbk/sweep.h"

#include <fnmatch.h>

#include <set>

namespace rbk {

namespace {

bool is_name_char(char c, bool allow_dot) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         (allow_dot && c == '.');
}

void check_name(const std::string& what, const std::string& name, bool allow_dot) {
  bool ok = !name.empty();
  for (char c : name) ok = ok && is_name_char(c, allow_dot);
  if (!ok)
    throw SweepError(what + " '" + name + "': expected a non-empty name of letters, digits, '_' and '-'" +
                     (allow_dot ? " and '.'" : "") + " (it becomes part of cell ids, directories and summary keys)");
}

std::string axis_label(const SweepAxis& axis) {
  if (!axis.label.empty()) return axis.label;
  const auto dot = axis.key.rfind('.');
  return dot == std::string::npos ? axis.key : axis.key.substr(dot + 1);
}

// Value as it appears in an arm name: strings as written, numbers and bools as JSON prints them.
std::string value_text(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

int64_t axis_combinations(const SweepGrid& grid) {
  int64_t n = 1;
  for (const auto& a : grid.axes) n *= static_cast<int64_t>(a.values.size());
  return n;
}

}  // namespace

void validate_grid(const SweepGrid& grid) {
  if (grid.arms.empty()) throw SweepError("arms: expected at least one arm");
  if (grid.seeds.empty()) throw SweepError("seeds: expected at least one seed");
  std::set<std::string> arm_names;
  for (const auto& arm : grid.arms) {
    check_name("arm", arm.name, /*allow_dot=*/false);
    if (!arm_names.insert(arm.name).second) throw SweepError("arms: arm '" + arm.name + "' appears twice");
    if (!arm.overrides.is_object())
      throw SweepError("arms." + arm.name + ".overrides: expected an object of option keys, got " + arm.overrides.dump());
  }
  std::set<std::string> axis_keys;
  for (const auto& axis : grid.axes) {
    if (axis.key.empty()) throw SweepError("axes: an axis has an empty key");
    if (!axis_keys.insert(axis.key).second) throw SweepError("axes: key '" + axis.key + "' appears twice");
    check_name("axis label of '" + axis.key + "'", axis_label(axis), /*allow_dot=*/false);
    if (axis.values.empty()) throw SweepError("axes." + axis.key + ".values: expected at least one value");
    std::set<std::string> texts;
    for (const auto& v : axis.values) {
      if (!(v.is_string() || v.is_number() || v.is_boolean()))
        throw SweepError("axes." + axis.key + ".values: " + v.dump() + " is not a string, number or bool");
      check_name("axes." + axis.key + " value", value_text(v), /*allow_dot=*/true);
      if (!texts.insert(value_text(v)).second)
        throw SweepError("axes." + axis.key + ".values: " + v.dump() + " appears twice");
    }
    for (const auto& arm : grid.arms)
      if (arm.overrides.contains(axis.key))
        throw SweepError("arms." + arm.name + " sets '" + axis.key +
                         "', which is also a grid axis; drop one of the two");
  }
  std::set<uint64_t> seeds;
  for (uint64_t s : grid.seeds)
    if (!seeds.insert(s).second) throw SweepError("seeds: seed " + std::to_string(s) + " appears twice");
}

std::vector<SweepCell> enumerate_cells(const SweepGrid& grid) {
  validate_grid(grid);
  const int64_t combos = axis_combinations(grid);
  // Expanded arms, in arm order and, within an arm, axis values like an odometer (first axis slowest).
  struct Expanded {
    std::string name, base;
    nlohmann::json overrides;
  };
  std::vector<Expanded> expanded;
  for (const auto& arm : grid.arms) {
    for (int64_t c = 0; c < combos; ++c) {
      Expanded e{arm.name, arm.name, arm.overrides};
      int64_t rest = c;
      std::vector<std::string> parts(grid.axes.size());
      for (int64_t a = static_cast<int64_t>(grid.axes.size()) - 1; a >= 0; --a) {
        const auto& axis = grid.axes[a];
        const int64_t n = static_cast<int64_t>(axis.values.size());
        const auto& v = axis.values[rest % n];
        rest /= n;
        e.overrides[axis.key] = v;
        parts[a] = "-" + axis_label(axis) + value_text(v);
      }
      for (const auto& p : parts) e.name += p;
      expanded.push_back(std::move(e));
    }
  }
  std::vector<SweepCell> cells;
  for (size_t s = 0; s < grid.seeds.size(); ++s) {
    for (size_t a = 0; a < expanded.size(); ++a) {
      SweepCell c;
      c.index = static_cast<int64_t>(cells.size());
      c.arm = expanded[a].name;
      c.base_arm = expanded[a].base;
      c.seed = grid.seeds[s];
      c.seed_index = static_cast<int64_t>(s);
      c.arm_index = static_cast<int64_t>(a);
      c.id = c.arm + ".seed" + std::to_string(c.seed);
      c.reference_cell = expanded[0].name + ".seed" + std::to_string(c.seed);
      c.overrides = expanded[a].overrides;
      cells.push_back(std::move(c));
    }
  }
  return cells;
}

bool SweepSelector::selects(const SweepCell& cell) const {
  if (shard_count > 1 && cell.index % shard_count != shard_index) return false;
  if (patterns.empty()) return true;
  for (const auto& p : patterns)
    if (::fnmatch(p.c_str(), cell.id.c_str(), 0) == 0) return true;
  return false;
}

nlohmann::json SweepSelector::to_json() const {
  return {{"patterns", patterns}, {"shard", std::to_string(shard_index) + "/" + std::to_string(shard_count)}};
}

void parse_shard(const std::string& text, SweepSelector& selector, const std::string& key) {
  const auto bad = [&]() {
    return SweepError(key + " = '" + text + "': expected \"i/n\" with integers 0 <= i < n (cell k runs in shard k mod n)");
  };
  const auto slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= text.size()) throw bad();
  const std::string a = text.substr(0, slash), b = text.substr(slash + 1);
  for (char c : a + b)
    if (c < '0' || c > '9') throw bad();
  if (a.size() > 9 || b.size() > 9) throw bad();
  const int64_t i = std::stoll(a), n = std::stoll(b);
  if (n < 1 || i >= n) throw bad();
  selector.shard_index = i;
  selector.shard_count = n;
}

std::vector<SweepCell> select_cells(const std::vector<SweepCell>& cells, const SweepSelector& selector) {
  for (const auto& p : selector.patterns) {
    bool any = false;
    for (const auto& c : cells) any = any || ::fnmatch(p.c_str(), c.id.c_str(), 0) == 0;
    if (!any) {
      std::string ids;
      for (size_t k = 0; k < cells.size() && k < 6; ++k) ids += (k ? ", " : "") + cells[k].id;
      if (cells.size() > 6) ids += ", ...";
      throw SweepError("select: pattern '" + p + "' matches no cell (cells are " + ids + ")");
    }
  }
  std::vector<SweepCell> out;
  for (const auto& c : cells)
    if (selector.selects(c)) out.push_back(c);
  return out;
}

nlohmann::json SweepPlan::to_json() const {
  nlohmann::json arms = nlohmann::json::array(), axes = nlohmann::json::array();
  for (const auto& a : grid.arms) arms.push_back({{"name", a.name}, {"overrides", a.overrides}});
  for (const auto& a : grid.axes) axes.push_back({{"key", a.key}, {"label", axis_label(a)}, {"values", a.values}});
  return {{"name", name},     {"arms", arms}, {"axes", axes}, {"seeds", grid.seeds},
          {"base", base},     {"divergence_rule", divergence_rule}};
}

SweepPlan SweepPlan::from_json(const nlohmann::json& j) {
  SweepPlan p;
  const auto field = [&](const char* key) -> const nlohmann::json& {
    if (!j.is_object() || !j.contains(key)) throw SweepError(std::string("plan: field '") + key + "' missing");
    return j.at(key);
  };
  try {
    p.name = field("name").get<std::string>();
    for (const auto& a : field("arms")) p.grid.arms.push_back({a.at("name").get<std::string>(), a.at("overrides")});
    for (const auto& a : field("axes"))
      p.grid.axes.push_back({a.at("key").get<std::string>(), a.value("label", std::string()),
                             a.at("values").get<std::vector<nlohmann::json>>()});
    p.grid.seeds = field("seeds").get<std::vector<uint64_t>>();
    p.base = field("base");
    p.divergence_rule = field("divergence_rule");
  } catch (const nlohmann::json::exception& e) {
    throw SweepError(std::string("plan: malformed (") + e.what() + ")");
  }
  validate_grid(p.grid);
  return p;
}

}  // namespace rbk
