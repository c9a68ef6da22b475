// Causal Transformer LM baseline (claim C05 variant (d); later long-context and quantisation
// comparisons), shaped like upstream's src/models/transformer_baseline.py (upstream-audit §9.4):
// token + position embedding (model.position: learned (the baseline's), none, sinusoidal, or
// rotary applied to q and k, position_encoding.h), dropout, pre-LN blocks x + MHA(LN(x)) with a
// causal mask, x + FFN(LN(x)) with FFN = Linear(D, F) -> GELU -> Dropout -> Linear(F, D), final LN, head
// (untied by default so its size matches the untied ResNet-BK head). Attention goes through
// rbk::causal_attention (torch_compat.h): scaled_dot_product_attention where LibTorch has it
// (flash attention on the GPU), an explicit masked softmax otherwise.
#pragma once
#include "rbk/language_model.h"
#include "rbk/position_encoding.h"

namespace rbk {

class TransformerLm : public LanguageModel {
 public:
  explicit TransformerLm(const LmConfig& config);
  torch::Tensor forward_features(const torch::Tensor& ids) override;
  torch::Tensor head_weight() const override { return head_ ? head_->weight : tok_emb_->weight; }
  torch::Tensor head_bias() const override { return head_ ? head_->bias : torch::Tensor(); }

 private:
  struct Block {
    torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
    torch::nn::Linear qkv{nullptr}, proj{nullptr}, fc1{nullptr}, fc2{nullptr};
  };
  // x (B, n, D) -> the block's output (B, n, D), residuals included; rotary: empty tables = none.
  torch::Tensor block_forward(Block& b, const torch::Tensor& x, const RotaryTables& rotary);
  torch::nn::Embedding tok_emb_{nullptr}, pos_emb_{nullptr};  // pos_emb_: position "learned" only
  PositionMode position_ = PositionMode::Learned;
  std::vector<Block> blocks_;
  torch::nn::LayerNorm final_norm_{nullptr};
  torch::nn::Linear head_{nullptr};
  torch::nn::Dropout drop_{nullptr};
};

// Parameters of one Transformer block (for choosing ffn_dim to match another model's size).
int64_t transformer_block_parameters(int64_t d_model, int64_t ffn_dim);

}  // namespace rbk
