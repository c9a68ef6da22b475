// Parameter snapshots and the name-and-shape copy of paired designs (paired_init.h).
#include "rbk/paired_init.h"

#include <sstream>

namespace rbk {

ParameterMap parameter_snapshot(const torch::nn::Module& module) {
  ParameterMap snapshot;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) snapshot[p.key()] = p.value().detach().clone();
  return snapshot;
}

bool same_parameters(const torch::nn::Module& module, const ParameterMap& reference) {
  const auto params = module.named_parameters(/*recurse=*/true);
  if (params.size() != reference.size()) return false;
  for (const auto& p : params) {
    const auto it = reference.find(p.key());
    if (it == reference.end() || !it->second.sizes().equals(p.value().sizes()) || !torch::equal(it->second, p.value()))
      return false;
  }
  return true;
}

nlohmann::json CopiedParameters::to_json() const {
  return {{"copied", copied}, {"not_copied", not_copied}, {"n_copied", copied.size()},
          {"n_not_copied", not_copied.size()}};
}

CopiedParameters copy_matching_parameters(torch::nn::Module& module, const ParameterMap& reference) {
  torch::NoGradGuard no_grad;
  CopiedParameters result;
  for (auto& p : module.named_parameters(/*recurse=*/true)) {
    const auto it = reference.find(p.key());
    if (it == reference.end()) {
      result.not_copied.push_back(p.key() + ": not in the reference");
    } else if (!it->second.sizes().equals(p.value().sizes())) {
      std::ostringstream why;
      why << p.key() << ": shape " << p.value().sizes() << " vs reference " << it->second.sizes();
      result.not_copied.push_back(why.str());
    } else {
      p.value().copy_(it->second.to(p.value().device(), p.value().scalar_type()));
      result.copied.push_back(p.key());
    }
  }
  return result;
}

}  // namespace rbk
