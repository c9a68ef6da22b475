// The interface every language model of the suite implements (ResNet-BK: resnet_bk_lm.h;
// baselines: transformer_lm.h, mamba_lm.h, rwkv_lm.h), and the factory that builds one from an
// LmConfig. The factory is defined in language_model.cpp, the one file that knows every
// architecture, so no model header includes another.
#pragma once
#include "rbk/lm_config.h"

#include <torch/torch.h>

#include <cstdint>
#include <memory>

namespace rbk {

class LanguageModel : public torch::nn::Module {
 public:
  // ids: (B, n) int64 with n <= n_seq. Returns logits (B, n, V) float32 (or the autocast dtype):
  // the head applied to forward_features. Training and evaluation use the chunked head + loss of
  // lm_loss.h instead, which never holds the (B n x V) logits.
  virtual torch::Tensor forward(const torch::Tensor& ids) { return apply_head(forward_features(ids)); }
  // Everything but the head: the final-normed hidden states (B, n, D).
  virtual torch::Tensor forward_features(const torch::Tensor& ids) = 0;
  // The head's weight (V, D) (the token embedding where the head is tied) and bias (V), undefined
  // when the head has none.
  virtual torch::Tensor head_weight() const = 0;
  virtual torch::Tensor head_bias() const { return torch::Tensor(); }
  // h (..., D) -> logits (..., V), exactly as the models computed them before the split: the
  // biased head through linear, a bias-free or tied head as h @ W^T.
  torch::Tensor apply_head(const torch::Tensor& h) const {
    const auto b = head_bias();
    return b.defined() ? torch::linear(h, head_weight(), b) : torch::matmul(h, head_weight().t());
  }
  // Expert-usage counts summed over layers, (L, E) int64; empty for models without experts.
  virtual torch::Tensor expert_counts() const { return torch::Tensor(); }
  virtual void reset_expert_counts() {}
  const LmConfig& config() const { return config_; }
  // Per-block activation checkpointing (block_checkpoint.h; train.checkpoint_blocks): each block
  // keeps only its input and is recomputed in backward. Off by default; no effect without grad.
  void set_checkpoint_blocks(bool on) { checkpoint_blocks_ = on; }
  bool checkpoint_blocks() const { return checkpoint_blocks_; }

 protected:
  explicit LanguageModel(LmConfig c) : config_(std::move(c)) {}
  LmConfig config_;
  bool checkpoint_blocks_ = false;
};

// The model config describes (config.arch), after config.validate(); an architecture not built into
// this library is a std::invalid_argument naming it.
std::shared_ptr<LanguageModel> make_language_model(const LmConfig& config);
int64_t count_parameters(const torch::nn::Module& m);

// Paper-time initialisation shared by every LM of the suite (audit §2.3): embeddings N(0, 0.02),
// every Linear Xavier-uniform with zero bias.
void init_papertime_weights(torch::nn::Module& model, torch::nn::Embedding& tok_emb, torch::nn::Embedding& pos_emb);

}  // namespace rbk
