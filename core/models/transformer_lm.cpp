// Causal Transformer LM baseline (see transformer_lm.h; upstream-audit §9.4; claim C05 (d)).
#include "rbk/transformer_lm.h"
#include "rbk/block_checkpoint.h"
#include "rbk/torch_compat.h"

namespace rbk {

int64_t transformer_block_parameters(int64_t D, int64_t F) { return 4 * D * D + 9 * D + 2 * D * F + F; }

TransformerLm::TransformerLm(const LmConfig& c) : LanguageModel(c) {
  c.validate();
  position_ = resolve_position(c);
  const int64_t D = c.d_model;
  tok_emb_ = register_module("tok_emb", torch::nn::Embedding(c.vocab_size, D));
  if (position_ == PositionMode::Learned) pos_emb_ = register_module("pos_emb", torch::nn::Embedding(c.n_seq, D));
  drop_ = register_module("drop", torch::nn::Dropout(c.dropout));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "block" + std::to_string(l) + "_";
    Block b;
    b.ln1 = register_module(p + "ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
    b.qkv = register_module(p + "qkv", torch::nn::Linear(D, 3 * D));
    b.proj = register_module(p + "proj", torch::nn::Linear(D, D));
    b.ln2 = register_module(p + "ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
    b.fc1 = register_module(p + "fc1", torch::nn::Linear(D, c.ffn_dim));
    b.fc2 = register_module(p + "fc2", torch::nn::Linear(c.ffn_dim, D));
    blocks_.push_back(b);
  }
  final_norm_ = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
  // Tied: no head module; the logits reuse the token embedding (counted once).
  if (!c.tie_weights) head_ = register_module("head", torch::nn::Linear(D, c.vocab_size));
  if (c.init == "papertime") init_papertime_weights(*this, tok_emb_, pos_emb_);
}

torch::Tensor TransformerLm::forward_features(const torch::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2, "TransformerLm: ids must be (B, n), got ", ids.sizes());
  TORCH_CHECK(ids.size(1) <= config_.n_seq, "TransformerLm: sequence length ", ids.size(1), " exceeds n_seq ", config_.n_seq);
  const int64_t n = ids.size(1), D = config_.d_model;
  auto x = tok_emb_->forward(ids);  // (B, n, D)
  if (position_ == PositionMode::Learned) {
    x = x + pos_emb_->forward(torch::arange(n, ids.options())).unsqueeze(0);
  } else if (position_ == PositionMode::Sinusoidal) {
    x = x + sinusoidal_amplitude(config_) * sinusoidal_positions(n, D, x.options()).unsqueeze(0);
  }
  x = drop_->forward(x);
  RotaryTables rotary;  // undefined tensors: no rotation
  if (position_ == PositionMode::Rotary) rotary = rotary_tables(n, D / config_.n_heads, x.options());
  for (auto& b : blocks_) {
    // blocks_ is fixed after construction and the model outlives a checkpointed graph's closure.
    const BlockFunction block = [this, &b, rotary](const torch::Tensor& h) { return block_forward(b, h, rotary); };
    x = run_block(block, x, checkpoint_blocks_);
  }
  return final_norm_->forward(x);
}

torch::Tensor TransformerLm::block_forward(Block& b, const torch::Tensor& x, const RotaryTables& rotary) {
  const int64_t B = x.size(0), n = x.size(1), D = config_.d_model, H = config_.n_heads;
  const double p = is_training() ? config_.dropout : 0.0;
  auto qkv = b.qkv->forward(b.ln1->forward(x)).view({B, n, 3, H, D / H}).permute({2, 0, 3, 1, 4});
  auto q = qkv[0], k = qkv[1];  // (B, H, n, Dh)
  if (rotary.cos.defined()) {
    q = apply_rotary(q, rotary);
    k = apply_rotary(k, rotary);
  }
  auto a = causal_attention(q, k, qkv[2], p, is_training());  // (B, H, n, Dh)
  auto y = x + drop_->forward(b.proj->forward(a.transpose(1, 2).reshape({B, n, D})));
  auto f = torch::gelu(b.fc1->forward(b.ln2->forward(y)));
  return y + drop_->forward(b.fc2->forward(drop_->forward(f)));
}

}  // namespace rbk
