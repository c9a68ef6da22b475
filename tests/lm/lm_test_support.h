// Model configuration shared by the language-model unit tests: a ResNet-BK / Transformer small
// enough that forward + backward take milliseconds on the CPU; and the comparison of two runs'
// gradients.
#pragma once
#include "rbk/language_model.h"

#include <algorithm>
#include <string>
#include <vector>

namespace rbk::lm_test {

inline LmConfig tiny_config(const std::string& arch = "resnet_bk") {
  LmConfig c;
  c.arch = arch;
  c.vocab_size = 37;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_seq = 12;
  c.num_experts = 3;
  c.n_heads = 2;
  c.ffn_dim = 24;
  return c;
}

// x's gradient followed by every parameter's (zeros where a parameter got none), after a backward.
inline std::vector<torch::Tensor> input_and_parameter_gradients(const torch::Tensor& x, const torch::nn::Module& m) {
  std::vector<torch::Tensor> g{x.grad()};
  for (const auto& p : m.parameters()) g.push_back(p.grad().defined() ? p.grad() : torch::zeros_like(p));
  return g;
}

struct GradientComparison {
  double max_difference = 0;  // max over tensors of max |a - b|
  double largest = 0;         // max |a|: that the gradients compared are not trivially small
};
inline GradientComparison compare_gradients(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  GradientComparison c;
  for (size_t i = 0; i < a.size(); ++i) {
    c.max_difference = std::max(c.max_difference, (a[i] - b[i]).abs().max().item<double>());
    c.largest = std::max(c.largest, a[i].abs().max().item<double>());
  }
  return c;
}

}  // namespace rbk::lm_test
