// The model factory and what every LM of the suite shares (see language_model.h). This is the one
// file that includes every architecture's header.
#include "rbk/language_model.h"
#include "rbk/mamba_lm.h"
#include "rbk/resnet_bk_lm.h"
#include "rbk/rwkv_lm.h"
#include "rbk/transformer_lm.h"

#include <stdexcept>

namespace rbk {

int64_t count_parameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::shared_ptr<LanguageModel> make_language_model(const LmConfig& config) {
  config.validate();
  if (config.arch == "transformer") return std::make_shared<TransformerLm>(config);
  if (config.arch == "mamba") return make_mamba_lm(config);
  if (config.arch == "rwkv") return make_rwkv_lm(config);
  if (config.arch != "resnet_bk")
    throw std::invalid_argument("model config 'arch' = '" + config.arch + "': not built into this library");
  return std::make_shared<ResNetBkLm>(config);
}

void init_papertime_weights(torch::nn::Module& model, torch::nn::Embedding& tok_emb, torch::nn::Embedding& pos_emb) {
  torch::NoGradGuard ng;
  torch::nn::init::normal_(tok_emb->weight, 0.0, 0.02);
  if (!pos_emb.is_empty()) torch::nn::init::normal_(pos_emb->weight, 0.0, 0.02);  // empty: no learned table
  for (auto& m : model.modules(false)) {
    if (auto* lin = m->as<torch::nn::Linear>()) {
      torch::nn::init::xavier_uniform_(lin->weight);
      if (lin->bias.defined()) lin->bias.zero_();
    }
  }
}

}  // namespace rbk
