// RWKV-4 language model, a baseline of the LM comparison (issue 7; claim C05 family), with the
// LanguageModel interface (language_model.h) of the ResNet-BK LM, so the same trainer and evaluator run it.
// Structure as BlinkDL/RWKV-LM RWKV-v4 (src/model.py), written from scratch:
//   x = LN0(tok_emb[ids])                       (LN0 belongs to layer 0; no position embedding)
//   per block: x = x + TimeMix(LN1(x));  x = x + ChannelMix(LN2(x))
//   logits = head(LN_out(x))                    (head without bias, as upstream; tied to tok_emb
//                                               when tie_weights)
// TimeMix:    xx = token_shift(x) (x_{t-1}, zero at t = 0); xk = x mk + xx (1 - mk), same for v, r;
//             k = key(xk), v = value(xv), r = receptance(xr) (Linear(C, C), no bias);
//             out = output(sigmoid(r) * wkv(time_decay, time_first, k, v))        (wkv.h)
// ChannelMix: xk, xr as above with their own mixes; out = sigmoid(receptance(xr)) *
//             value(relu(key(xk))^2), key Linear(C, F), value Linear(F, C), receptance Linear(C, C).
// Initialisation (RWKV-4's "fancy init"): for layer l of L, r01 = l/(L-1) (0 if L = 1), r10 = 1 - l/L,
// channel i of C:
//   time_decay_i = -5 + 8 (i/(C-1))^(0.7 + 1.3 r01);  time_first_i = ln 0.3 + 0.5 ((i+1) mod 3 - 1)
//   TimeMix  mix_k = (i/C)^r10, mix_v = (i/C)^r10 + 0.3 r01, mix_r = (i/C)^(0.5 r10)
//   ChannelMix mix_k = mix_r = (i/C)^r10
// init "papertime" (the suite's default) applies RWKV-4's RWKV_Init to the matrices: zero for
// TimeMix key / receptance / output and ChannelMix value / receptance; orthogonal with gain
// sqrt(out/in) (if out > in, else 1) for the other Linears; head orthogonal, gain 0.5 sqrt(V/C) if
// V > C else 0.5; token embedding orthogonal with gain 1e-4 sqrt(max(V, C)). "torch_default" keeps
// LibTorch's defaults for the matrices (the ramps above are applied either way).
// Simplifications against upstream: no head_qk "copy" attention (RWKV_HEAD_QK_DIM, off in later
// RWKV-4 code); no ffnPre variant; dropout (config.dropout) on each residual branch's output (upstream
// RWKV-4 has none; 0 by default); the channel-mix width is config.ffn_dim (RWKV-4: 4 d_model).
#pragma once
#include "rbk/language_model.h"
#include "rbk/wkv.h"

#include <torch/torch.h>

namespace rbk {

// x: (B, n, C) -> (B, n, C) with row t = x[:, t-1] and row 0 = 0.
torch::Tensor token_shift(const torch::Tensor& x);

class RwkvTimeMixImpl : public torch::nn::Module {
 public:
  RwkvTimeMixImpl(int64_t d_model, int64_t layer, int64_t n_layers);
  torch::Tensor forward(const torch::Tensor& x);  // (B, n, C) -> (B, n, C)
  torch::Tensor time_decay, time_first;            // (C,)
  torch::Tensor time_mix_k, time_mix_v, time_mix_r;  // (C,)
  torch::nn::Linear key{nullptr}, value{nullptr}, receptance{nullptr}, output{nullptr};
  WkvPath wkv_path = WkvPath::Auto;
};
TORCH_MODULE(RwkvTimeMix);

class RwkvChannelMixImpl : public torch::nn::Module {
 public:
  RwkvChannelMixImpl(int64_t d_model, int64_t ffn_dim, int64_t layer, int64_t n_layers);
  torch::Tensor forward(const torch::Tensor& x);  // (B, n, C) -> (B, n, C)
  torch::Tensor time_mix_k, time_mix_r;            // (C,)
  torch::nn::Linear key{nullptr}, value{nullptr}, receptance{nullptr};
};
TORCH_MODULE(RwkvChannelMix);

// One residual block: x + TimeMix(LN1(x)), then + ChannelMix(LN2(x)) (LN0 is the model's).
class RwkvBlockImpl : public torch::nn::Module {
 public:
  RwkvBlockImpl(const LmConfig& config, int64_t layer);
  torch::Tensor forward(const torch::Tensor& x);  // (B, n, C) -> (B, n, C)
  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  RwkvTimeMix att{nullptr};
  RwkvChannelMix ffn{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(RwkvBlock);

class RwkvLm : public LanguageModel {
 public:
  explicit RwkvLm(const LmConfig& config);
  // ids: (B, n) int64, n <= n_seq. Returns the final-normed features (B, n, C); forward() adds the head.
  torch::Tensor forward_features(const torch::Tensor& ids) override;
  torch::Tensor head_weight() const override { return head_ ? head_->weight : tok_emb_->weight; }
  torch::Tensor head_bias() const override { return head_ ? head_->bias : torch::Tensor(); }
  // Path of every block's WKV (default Auto: the CUDA kernel on the GPU, the reference on the CPU).
  void set_wkv_path(WkvPath path);
  const std::vector<RwkvBlock>& blocks() const { return blocks_; }

 private:
  void reset_parameters();
  torch::nn::Embedding tok_emb_{nullptr};
  torch::nn::LayerNorm ln0_{nullptr}, ln_out_{nullptr};
  std::vector<RwkvBlock> blocks_;
  torch::nn::Linear head_{nullptr};
};

std::shared_ptr<LanguageModel> make_rwkv_lm(const LmConfig& config);

// Parameters of one block (LN1, LN2, TimeMix, ChannelMix) in closed form: 5 C^2 + 2 C F + 11 C.
int64_t rwkv_block_parameters(const LmConfig& config);
// The whole model: V C (embedding) + 2 C (LN0) + L block + 2 C (LN_out) + V C (head, unless tied).
int64_t rwkv_lm_parameters(const LmConfig& config);

}  // namespace rbk
