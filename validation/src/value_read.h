// Reading a value from a result document and printing it (internal to rbk_validation).
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace rbk::validation::detail {

// A value read from a result file: a scalar, a per-seed sample, a bool, null, or something else.
struct Value {
  enum Kind { Absent, Null, Number, Sample, Bool, Other } kind = Absent;
  double x = 0.0;
  std::vector<double> sample;
  bool b = false;
  nlohmann::json raw;
};

Value read_value(const nlohmann::json& doc, const std::string& pointer);
// The value as printed in the ledger; a sample as "mean [lo, hi] unit (95% CI, n=k)".
std::string describe(const Value& v, const std::string& unit);
// a <op> b for op in <= >= < >.
bool compare(double a, const std::string& op, double b);

}  // namespace rbk::validation::detail
