// Strict field readers for the registry and table loaders (see json_checks.h).
#include "json_checks.h"

#include <fstream>
#include <sstream>

namespace rbk::validation::detail {

using nlohmann::json;

void fail(const std::string& file, const std::string& where, const std::string& what) {
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
                       bool required, const std::string& fallback) {
  if (!obj.contains(key)) {
    if (required) fail(file, where, "missing required string '" + key + "'");
    return fallback;
  }
  const json& v = obj.at(key);
  if (!v.is_string()) fail(file, where + "/" + key, "expected a string, found " + short_dump(v));
  return v.get<std::string>();
}

double get_number(const json& obj, const std::string& key, const std::string& file, const std::string& where,
                  bool required, double fallback) {
  if (!obj.contains(key)) {
    if (required) fail(file, where, "missing required number '" + key + "'");
    return fallback;
  }
  const json& v = obj.at(key);
  if (!v.is_number()) fail(file, where + "/" + key, "expected a number, found " + short_dump(v));
  return v.get<double>();
}

bool get_bool(const json& obj, const std::string& key, const std::string& file, const std::string& where,
              bool required, bool fallback) {
  if (!obj.contains(key)) {
    if (required) fail(file, where, "missing required bool '" + key + "'");
    return fallback;
  }
  const json& v = obj.at(key);
  if (!v.is_boolean()) fail(file, where + "/" + key, "expected true or false, found " + short_dump(v));
  return v.get<bool>();
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

}  // namespace rbk::validation::detail
