// Experiment configuration: a JSON preset (smoke / cpu / gpu) plus key=value overrides, checked
// against a schema. Every problem is a ConfigError naming the key, the value and what is allowed;
// experiment mains turn it into exit code 2 before anything is written.
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace rbk {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class ParamType { Int, Real, Bool, String, IntList, RealList, StringList };

struct ParamSpec {
  std::string key;
  ParamType type;
  std::string help;
  double min = -std::numeric_limits<double>::infinity();  // numbers and list elements
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;                        // strings and string-list elements
  // Null: the preset must give the key. Otherwise the value used when the preset omits it (section
  // fields of options.h carry their struct's default); the resolved config records it.
  nlohmann::json default_value;
};

class ConfigSchema {
 public:
  ConfigSchema& add_int(const std::string& key, int64_t min, int64_t max, const std::string& help);
  ConfigSchema& add_real(const std::string& key, double min, double max, const std::string& help);
  ConfigSchema& add_bool(const std::string& key, const std::string& help);
  ConfigSchema& add_string(const std::string& key, std::vector<std::string> choices, const std::string& help);
  ConfigSchema& add_int_list(const std::string& key, int64_t min, int64_t max, const std::string& help);
  ConfigSchema& add_real_list(const std::string& key, double min, double max, const std::string& help);
  ConfigSchema& add_string_list(const std::string& key, std::vector<std::string> choices, const std::string& help);
  // Any spec (e.g. with a default_value); a key registered twice throws ConfigError.
  ConfigSchema& add(ParamSpec spec);

  const ParamSpec* find(const std::string& key) const;
  const std::vector<ParamSpec>& params() const { return params_; }
  std::string describe() const;  // one line per key, for --help

 private:
  std::vector<ParamSpec> params_;
};

class Config {
 public:
  Config() = default;
  Config(nlohmann::json values, std::string preset) : values_(std::move(values)), preset_(std::move(preset)) {}

  int64_t get_int(const std::string& key) const;
  double get_real(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<int64_t> get_int_list(const std::string& key) const;
  std::vector<double> get_real_list(const std::string& key) const;
  std::vector<std::string> get_string_list(const std::string& key) const;

  const nlohmann::json& values() const { return values_; }
  const std::string& preset() const { return preset_; }

 private:
  const nlohmann::json& at(const std::string& key) const;
  nlohmann::json values_;
  std::string preset_;
};

// Reads the preset file, applies the key=value overrides in order, validates types and ranges.
// Every schema key without a default must be present; keys with a default may be omitted; unknown
// keys are errors. Keys may be written flat ("model.d_model": 64) or as nested objects
// ({"model": {"d_model": 64}}); nesting joins names with '.', and a key given both ways is an
// error. Keys starting with '_' are comments. Throws ConfigError.
Config load_config(const ConfigSchema& schema, const std::string& preset_path, const std::string& preset_name,
                   const std::vector<std::string>& overrides);

// Writes the option keys of obj over `values`, flattened ({"model": {"d_model": 64}} ->
// "model.d_model"; an object is a section only when its name is not itself a schema key; keys
// starting with '_' are comments) and validated. `where` names the source in messages. Throws
// ConfigError for an unknown key and for a key given twice (flat and nested).
void apply_option_object(const ConfigSchema& schema, const nlohmann::json& obj, const std::string& where,
                         nlohmann::json& values);
// Gives every schema key missing from values its default; a key without one is a ConfigError.
void fill_option_defaults(const ConfigSchema& schema, const std::string& where, nlohmann::json& values);

// Checks one JSON value against its spec; returns it normalised (e.g. 3 -> 3.0 for Real).
nlohmann::json validate_value(const ParamSpec& spec, const nlohmann::json& value, const std::string& origin);

// Parses the text of a key=value override into JSON for the spec's type.
nlohmann::json parse_override_value(const ParamSpec& spec, const std::string& text);

}  // namespace rbk
