// The non-search parts of exp_memory_search: the HTT / AR-SSM compression tables (seed 001
// Tables 10-11, claim C16), the semiseparable structure (claim C10) and the model sizes (claim
// C20). Each fills its summary block and appends rows.
#pragma once
#include "rbk/config.h"
#include <nlohmann/json.hpp>
#include <string>

namespace memory_search {

void run_htt_tables(const rbk::Config& cfg, const std::string& scratch, nlohmann::json& summary, nlohmann::json& rows);
void run_semiseparable(const rbk::Config& cfg, nlohmann::json& summary, nlohmann::json& rows);
void run_model_sizes(const rbk::Config& cfg, nlohmann::json& summary, nlohmann::json& rows);

// Least-squares slope of log y against log x (the scaling exponent).
double fitted_power_exponent(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace memory_search
