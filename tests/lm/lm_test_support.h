// Model configuration shared by the language-model unit tests: a ResNet-BK / Transformer small
// enough that forward + backward take milliseconds on the CPU.
#pragma once
#include "rbk/language_model.h"

#include <string>

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

}  // namespace rbk::lm_test
