// Presets + overrides, validated against a schema. Every error names the key, the value, where it
// came from and what is allowed.
#include "rbk/config.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

namespace rbk {
namespace {

using nlohmann::json;

std::string type_name(ParamType t) {
  switch (t) {
    case ParamType::Int: return "integer";
    case ParamType::Real: return "number";
    case ParamType::Bool: return "boolean (true/false)";
    case ParamType::String: return "string";
    case ParamType::IntList: return "list of integers";
    case ParamType::RealList: return "list of numbers";
    case ParamType::StringList: return "list of strings";
  }
  return "?";
}

std::string allowed_text(const ParamSpec& s) {
  std::ostringstream o;
  o << type_name(s.type);
  if (!s.choices.empty()) {
    o << " from {";
    for (size_t i = 0; i < s.choices.size(); ++i) o << (i ? ", " : "") << s.choices[i];
    o << "}";
  }
  if (std::isfinite(s.min) || std::isfinite(s.max)) o << " in [" << s.min << ", " << s.max << "]";
  return o.str();
}

[[noreturn]] void fail(const ParamSpec& s, const json& value, const std::string& origin, const std::string& why) {
  throw ConfigError("config key '" + s.key + "' (" + origin + "): value " + value.dump() + " " + why +
                    "; expected " + allowed_text(s));
}

json check_number(const ParamSpec& s, const json& v, const std::string& origin, bool integer) {
  if (integer) {
    if (!v.is_number_integer()) fail(s, v, origin, "is not an integer");
  } else if (!v.is_number()) {
    fail(s, v, origin, "is not a number");
  }
  const double d = v.get<double>();
  if (!std::isfinite(d)) fail(s, v, origin, "is not finite");
  if (d < s.min || d > s.max) fail(s, v, origin, "is out of range");
  return integer ? json(v.get<int64_t>()) : json(d);
}

json check_string(const ParamSpec& s, const json& v, const std::string& origin) {
  if (!v.is_string()) fail(s, v, origin, "is not a string");
  if (!s.choices.empty()) {
    bool ok = false;
    for (const auto& c : s.choices) ok = ok || c == v.get<std::string>();
    if (!ok) fail(s, v, origin, "is not one of the allowed choices");
  }
  return v;
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::string cur;
  std::istringstream in(text);
  while (std::getline(in, cur, ',')) parts.push_back(cur);
  return parts;
}

ParamSpec make_spec(const std::string& key, ParamType type, const std::string& help, double min, double max,
                    std::vector<std::string> choices) {
  ParamSpec p;
  p.key = key;
  p.type = type;
  p.help = help;
  p.min = min;
  p.max = max;
  p.choices = std::move(choices);
  return p;
}

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

ConfigSchema& ConfigSchema::add_int(const std::string& key, int64_t min, int64_t max, const std::string& help) {
  params_.push_back(make_spec(key, ParamType::Int, help, double(min), double(max), {}));
  return *this;
}
ConfigSchema& ConfigSchema::add_real(const std::string& key, double min, double max, const std::string& help) {
  params_.push_back(make_spec(key, ParamType::Real, help, min, max, {}));
  return *this;
}
ConfigSchema& ConfigSchema::add_bool(const std::string& key, const std::string& help) {
  params_.push_back(make_spec(key, ParamType::Bool, help, -kInf, kInf, {}));
  return *this;
}
ConfigSchema& ConfigSchema::add_string(const std::string& key, std::vector<std::string> choices, const std::string& help) {
  params_.push_back(make_spec(key, ParamType::String, help, -kInf, kInf, std::move(choices)));
  return *this;
}
ConfigSchema& ConfigSchema::add_int_list(const std::string& key, int64_t min, int64_t max, const std::string& help) {
  params_.push_back(make_spec(key, ParamType::IntList, help, double(min), double(max), {}));
  return *this;
}
ConfigSchema& ConfigSchema::add_real_list(const std::string& key, double min, double max, const std::string& help) {
  params_.push_back(make_spec(key, ParamType::RealList, help, min, max, {}));
  return *this;
}
ConfigSchema& ConfigSchema::add_string_list(const std::string& key, std::vector<std::string> choices,
                                            const std::string& help) {
  params_.push_back(make_spec(key, ParamType::StringList, help, -kInf, kInf, std::move(choices)));
  return *this;
}

ConfigSchema& ConfigSchema::add(ParamSpec spec) {
  if (find(spec.key)) throw ConfigError("config schema: key '" + spec.key + "' is registered twice (a program bug)");
  if (!spec.default_value.is_null()) spec.default_value = validate_value(spec, spec.default_value, "default of the schema");
  params_.push_back(std::move(spec));
  return *this;
}

const ParamSpec* ConfigSchema::find(const std::string& key) const {
  for (const auto& p : params_)
    if (p.key == key) return &p;
  return nullptr;
}

std::string ConfigSchema::describe() const {
  std::ostringstream o;
  for (const auto& p : params_) {
    o << "  " << p.key << " : " << allowed_text(p);
    if (!p.default_value.is_null()) o << " (default " << p.default_value.dump() << ")";
    o << "\n      " << p.help << "\n";
  }
  return o.str();
}

json validate_value(const ParamSpec& s, const json& v, const std::string& origin) {
  switch (s.type) {
    case ParamType::Int: return check_number(s, v, origin, true);
    case ParamType::Real: return check_number(s, v, origin, false);
    case ParamType::Bool:
      if (!v.is_boolean()) fail(s, v, origin, "is not a boolean");
      return v;
    case ParamType::String: return check_string(s, v, origin);
    case ParamType::IntList:
    case ParamType::RealList:
    case ParamType::StringList: {
      if (!v.is_array() || v.empty()) fail(s, v, origin, "is not a non-empty list");
      json out = json::array();
      for (const auto& e : v) {
        if (s.type == ParamType::StringList) out.push_back(check_string(s, e, origin));
        else out.push_back(check_number(s, e, origin, s.type == ParamType::IntList));
      }
      return out;
    }
  }
  fail(s, v, origin, "has an unknown type");
}

json parse_override_value(const ParamSpec& s, const std::string& text) {
  const std::string origin = "command line";
  auto parse_scalar = [&](const std::string& t, ParamType scalar) -> json {
    if (scalar == ParamType::String) return json(t);
    if (scalar == ParamType::Bool) {
      if (t == "true" || t == "1") return true;
      if (t == "false" || t == "0") return false;
      fail(s, json(t), origin, "is not a boolean");
    }
    if (t.empty()) fail(s, json(t), origin, "is empty");
    errno = 0;
    char* end = nullptr;
    if (scalar == ParamType::Int) {
      const long long x = std::strtoll(t.c_str(), &end, 10);
      if (*end != '\0' || errno == ERANGE) fail(s, json(t), origin, "is not an integer");
      return json(static_cast<int64_t>(x));
    }
    const double x = std::strtod(t.c_str(), &end);
    if (*end != '\0' || errno == ERANGE) fail(s, json(t), origin, "is not a number");
    return json(x);
  };
  switch (s.type) {
    case ParamType::Int:
    case ParamType::Real:
    case ParamType::Bool:
    case ParamType::String: return validate_value(s, parse_scalar(text, s.type), origin);
    default: break;
  }
  // Lists: "a,b,c" or a JSON array.
  if (!text.empty() && text.front() == '[') {
    json parsed;
    try {
      parsed = json::parse(text);
    } catch (const std::exception&) {
      fail(s, json(text), origin, "is not a valid JSON list");
    }
    return validate_value(s, parsed, origin);
  }
  const ParamType scalar = s.type == ParamType::IntList    ? ParamType::Int
                           : s.type == ParamType::RealList ? ParamType::Real
                                                           : ParamType::String;
  json arr = json::array();
  for (const auto& part : split_commas(text)) arr.push_back(parse_scalar(part, scalar));
  return validate_value(s, arr, origin);
}

void apply_option_object(const ConfigSchema& schema, const json& obj, const std::string& where, json& values) {
  if (!obj.is_object()) throw ConfigError(where + ": expected a JSON object of option keys");
  std::set<std::string> seen;
  std::function<void(const json&, const std::string&)> take = [&](const json& o, const std::string& prefix) {
    for (auto it = o.begin(); it != o.end(); ++it) {
      if (it.key().rfind("_", 0) == 0) continue;  // "_comment" and friends
      const std::string key = prefix + it.key();
      const ParamSpec* spec = schema.find(key);
      if (!spec && it.value().is_object()) {
        take(it.value(), key + ".");
        continue;
      }
      if (!spec) throw ConfigError(where + ": unknown key '" + key + "'; allowed keys:\n" + schema.describe());
      if (!seen.insert(key).second) throw ConfigError(where + ": key '" + key + "' is given twice (flat and nested)");
      values[key] = validate_value(*spec, it.value(), where);
    }
  };
  take(obj, "");
}

void fill_option_defaults(const ConfigSchema& schema, const std::string& where, json& values) {
  for (const auto& p : schema.params()) {
    if (values.contains(p.key)) continue;
    if (p.default_value.is_null()) throw ConfigError(where + ": missing key '" + p.key + "' (" + p.help + ")");
    values[p.key] = p.default_value;
  }
}

Config load_config(const ConfigSchema& schema, const std::string& preset_path, const std::string& preset_name,
                   const std::vector<std::string>& overrides) {
  std::ifstream in(preset_path);
  if (!in) throw ConfigError("preset file '" + preset_path + "' cannot be opened (preset '" + preset_name + "')");
  json raw;
  try {
    in >> raw;
  } catch (const std::exception& e) {
    throw ConfigError("preset file '" + preset_path + "' is not valid JSON: " + e.what());
  }
  if (!raw.is_object()) throw ConfigError("preset file '" + preset_path + "' must hold a JSON object");
  json values = json::object();
  const std::string where = "preset file '" + preset_path + "'";
  apply_option_object(schema, raw, where, values);
  fill_option_defaults(schema, where, values);
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) throw ConfigError("override '" + o + "' is not of the form key=value");
    const std::string key = o.substr(0, eq);
    const ParamSpec* spec = schema.find(key);
    if (!spec) throw ConfigError("override '" + o + "': unknown key '" + key + "'; allowed keys:\n" + schema.describe());
    values[key] = parse_override_value(*spec, o.substr(eq + 1));
  }
  return Config(values, preset_name);
}

const json& Config::at(const std::string& key) const {
  if (!values_.contains(key)) throw ConfigError("config has no key '" + key + "' (a schema/preset mismatch in the program)");
  return values_.at(key);
}
int64_t Config::get_int(const std::string& key) const { return at(key).get<int64_t>(); }
double Config::get_real(const std::string& key) const { return at(key).get<double>(); }
bool Config::get_bool(const std::string& key) const { return at(key).get<bool>(); }
std::string Config::get_string(const std::string& key) const { return at(key).get<std::string>(); }
std::vector<int64_t> Config::get_int_list(const std::string& key) const { return at(key).get<std::vector<int64_t>>(); }
std::vector<double> Config::get_real_list(const std::string& key) const { return at(key).get<std::vector<double>>(); }
std::vector<std::string> Config::get_string_list(const std::string& key) const {
  return at(key).get<std::vector<std::string>>();
}

}  // namespace rbk
