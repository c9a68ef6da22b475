// Paired designs (train_poc's variants, the sweep runner's arms): for one seed every arm starts
// from the same initial weights where parameter names and shapes allow. These are the parameter
// snapshots, the comparison and the copy both use.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace rbk {

using ParameterMap = std::map<std::string, torch::Tensor>;

// Detached copies of a module's named parameters (recursive).
ParameterMap parameter_snapshot(const torch::nn::Module& module);

// True when module has exactly the parameters of `reference`: the same names, shapes and values.
bool same_parameters(const torch::nn::Module& module, const ParameterMap& reference);

struct CopiedParameters {
  std::vector<std::string> copied;       // name and shape matched: overwritten with the reference
  std::vector<std::string> not_copied;   // "<name>: <why>" (absent from the reference, shape differs)
  nlohmann::json to_json() const;
};
// Copies every parameter of `module` whose name and shape match an entry of `reference`.
CopiedParameters copy_matching_parameters(torch::nn::Module& module, const ParameterMap& reference);

}  // namespace rbk
