// Strict field readers shared by the registry and table loaders (internal to rbk_validation).
// Every error is a RegistryError "<file>: <JSON path>: <what was found, what was expected>".
#pragma once
#include "rbk/validation/registry.h"

#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <vector>

namespace rbk::validation::detail {

[[noreturn]] void fail(const std::string& file, const std::string& where, const std::string& what);
std::string short_dump(const nlohmann::json& v);
void check_keys(const nlohmann::json& obj, const std::set<std::string>& allowed, const std::string& file,
                const std::string& where);
std::string get_string(const nlohmann::json& obj, const std::string& key, const std::string& file,
                       const std::string& where, bool required, const std::string& fallback = "");
double get_number(const nlohmann::json& obj, const std::string& key, const std::string& file, const std::string& where,
                  bool required, double fallback = 0.0);
bool get_bool(const nlohmann::json& obj, const std::string& key, const std::string& file, const std::string& where,
              bool required, bool fallback = false);
std::vector<std::string> get_string_list(const nlohmann::json& obj, const std::string& key, const std::string& file,
                                         const std::string& where, bool required);
void check_pointer(const std::string& p, const std::string& file, const std::string& where);
nlohmann::json read_json(const std::string& path);

}  // namespace rbk::validation::detail
