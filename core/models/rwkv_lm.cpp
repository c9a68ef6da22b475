// RWKV-4 language model (see rwkv_lm.h; issue 7, baseline of the claim C05 comparison).
#include "rbk/rwkv_lm.h"

#include "rbk/block_checkpoint.h"
#include "rbk/position_encoding.h"

#include <algorithm>
#include <cmath>

namespace rbk {
namespace {

using torch::Tensor;

// Layer position ratios of RWKV-4's init: r01 runs 0 -> 1 over the layers, r10 runs 1 -> 1/L.
double ratio_0_to_1(int64_t layer, int64_t n_layers) {
  return n_layers > 1 ? static_cast<double>(layer) / static_cast<double>(n_layers - 1) : 0.0;
}
double ratio_1_to_almost0(int64_t layer, int64_t n_layers) {
  return 1.0 - static_cast<double>(layer) / static_cast<double>(n_layers);
}

// (C,) float32: (i / C)^e + add, the per-channel mixing ramp.
Tensor mix_ramp(int64_t C, double e, double add = 0.0) {
  return (torch::pow(torch::arange(C, torch::kDouble) / static_cast<double>(C), e) + add).to(torch::kFloat);
}

Tensor mix(const Tensor& x, const Tensor& xx, const Tensor& m) { return x * m + xx * (1 - m); }

}  // namespace

Tensor token_shift(const Tensor& x) {
  TORCH_CHECK(x.dim() == 3, "token_shift: x must be (B, n, C), got ", x.sizes());
  const int64_t n = x.size(1);
  if (n == 0) return x;
  return torch::cat({torch::zeros_like(x.narrow(1, 0, 1)), x.narrow(1, 0, n - 1)}, 1);
}

RwkvTimeMixImpl::RwkvTimeMixImpl(int64_t C, int64_t layer, int64_t n_layers) {
  const double r01 = ratio_0_to_1(layer, n_layers), r10 = ratio_1_to_almost0(layer, n_layers);
  const Tensor i = torch::arange(C, torch::kDouble);
  const Tensor frac = C > 1 ? i / static_cast<double>(C - 1) : torch::zeros({C}, torch::kDouble);
  time_decay = register_parameter("time_decay", (-5.0 + 8.0 * torch::pow(frac, 0.7 + 1.3 * r01)).to(torch::kFloat));
  const Tensor zigzag = 0.5 * (torch::remainder(i + 1, 3) - 1);
  time_first = register_parameter("time_first", (std::log(0.3) + zigzag).to(torch::kFloat));
  time_mix_k = register_parameter("time_mix_k", mix_ramp(C, r10));
  time_mix_v = register_parameter("time_mix_v", mix_ramp(C, r10, 0.3 * r01));
  time_mix_r = register_parameter("time_mix_r", mix_ramp(C, 0.5 * r10));
  key = register_module("key", torch::nn::Linear(torch::nn::LinearOptions(C, C).bias(false)));
  value = register_module("value", torch::nn::Linear(torch::nn::LinearOptions(C, C).bias(false)));
  receptance = register_module("receptance", torch::nn::Linear(torch::nn::LinearOptions(C, C).bias(false)));
  output = register_module("output", torch::nn::Linear(torch::nn::LinearOptions(C, C).bias(false)));
}

Tensor RwkvTimeMixImpl::forward(const Tensor& x) {
  const Tensor xx = token_shift(x);
  const Tensor k = key->forward(mix(x, xx, time_mix_k));
  const Tensor v = value->forward(mix(x, xx, time_mix_v));
  const Tensor r = receptance->forward(mix(x, xx, time_mix_r));
  const Tensor y = wkv(time_decay, time_first, k, v, wkv_path);  // (B, n, C)
  return output->forward(torch::sigmoid(r) * y.to(r.scalar_type()));
}

RwkvChannelMixImpl::RwkvChannelMixImpl(int64_t C, int64_t F, int64_t layer, int64_t n_layers) {
  const double r10 = ratio_1_to_almost0(layer, n_layers);
  time_mix_k = register_parameter("time_mix_k", mix_ramp(C, r10));
  time_mix_r = register_parameter("time_mix_r", mix_ramp(C, r10));
  key = register_module("key", torch::nn::Linear(torch::nn::LinearOptions(C, F).bias(false)));
  value = register_module("value", torch::nn::Linear(torch::nn::LinearOptions(F, C).bias(false)));
  receptance = register_module("receptance", torch::nn::Linear(torch::nn::LinearOptions(C, C).bias(false)));
}

Tensor RwkvChannelMixImpl::forward(const Tensor& x) {
  const Tensor xx = token_shift(x);
  const Tensor k = torch::square(torch::relu(key->forward(mix(x, xx, time_mix_k))));
  return torch::sigmoid(receptance->forward(mix(x, xx, time_mix_r))) * value->forward(k);
}

RwkvBlockImpl::RwkvBlockImpl(const LmConfig& c, int64_t layer) {
  const int64_t C = c.d_model;
  ln1 = register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({C})));
  ln2 = register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({C})));
  att = register_module("att", RwkvTimeMix(C, layer, c.n_layers));
  ffn = register_module("ffn", RwkvChannelMix(C, c.ffn_dim, layer, c.n_layers));
  drop = register_module("drop", torch::nn::Dropout(c.dropout));
}

Tensor RwkvBlockImpl::forward(const Tensor& x) {
  const Tensor h = x + drop->forward(att->forward(ln1->forward(x)));
  return h + drop->forward(ffn->forward(ln2->forward(h)));
}

RwkvLm::RwkvLm(const LmConfig& c) : LanguageModel(c) {
  c.validate();
  TORCH_CHECK(c.arch == "rwkv", "RwkvLm: config arch must be 'rwkv', got '", c.arch, "'");
  check_position_supported(c);  // none only: the recurrence (and token shift) carries order
  const int64_t C = c.d_model;
  tok_emb_ = register_module("tok_emb", torch::nn::Embedding(c.vocab_size, C));
  ln0_ = register_module("ln0", torch::nn::LayerNorm(torch::nn::LayerNormOptions({C})));
  for (int64_t l = 0; l < c.n_layers; ++l) blocks_.push_back(register_module("block" + std::to_string(l), RwkvBlock(c, l)));
  ln_out_ = register_module("ln_out", torch::nn::LayerNorm(torch::nn::LayerNormOptions({C})));
  // Tied: no head module; the logits reuse the token embedding (counted once).
  if (!c.tie_weights)
    head_ = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(C, c.vocab_size).bias(false)));
  reset_parameters();
}

void RwkvLm::reset_parameters() {
  if (config_.init != "papertime") return;  // torch_default: LibTorch's Linear / Embedding init
  torch::NoGradGuard ng;
  const int64_t C = config_.d_model, V = config_.vocab_size;
  // RWKV_Init: orthogonal with gain sqrt(out/in) when a Linear widens (out > in), else 1.
  auto orthogonal = [](const Tensor& weight, double extra) {
    const double out = static_cast<double>(weight.size(0)), in = static_cast<double>(weight.size(1));
    torch::nn::init::orthogonal_(weight, (out > in ? std::sqrt(out / in) : 1.0) * extra);
  };
  torch::nn::init::orthogonal_(tok_emb_->weight, 1e-4 * std::sqrt(static_cast<double>(std::max(V, C))));
  for (auto& b : blocks_) {
    // Zero: each block starts as the identity (output, ChannelMix value) and with neutral gates.
    b->att->key->weight.zero_();
    b->att->receptance->weight.zero_();
    b->att->output->weight.zero_();
    orthogonal(b->att->value->weight, 1.0);
    orthogonal(b->ffn->key->weight, 1.0);
    b->ffn->value->weight.zero_();
    b->ffn->receptance->weight.zero_();
  }
  if (head_) orthogonal(head_->weight, 0.5);
}

void RwkvLm::set_wkv_path(WkvPath path) {
  for (auto& b : blocks_) b->att->wkv_path = path;
}

Tensor RwkvLm::forward_features(const Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2, "RwkvLm: ids must be (B, n), got ", ids.sizes());
  TORCH_CHECK(ids.size(1) <= config_.n_seq, "RwkvLm: sequence length ", ids.size(1), " exceeds n_seq ", config_.n_seq);
  Tensor x = ln0_->forward(tok_emb_->forward(ids));
  for (auto& b : blocks_) {
    // The module holder is a shared pointer: the closure keeps the block alive for a checkpointed graph.
    const BlockFunction block = [b](const Tensor& h) mutable { return b->forward(h); };
    x = run_block(block, x, checkpoint_blocks_);
  }
  return ln_out_->forward(x);
}

std::shared_ptr<LanguageModel> make_rwkv_lm(const LmConfig& config) { return std::make_shared<RwkvLm>(config); }

int64_t rwkv_block_parameters(const LmConfig& c) {
  const int64_t C = c.d_model, F = c.ffn_dim;
  return 5 * C * C + 2 * C * F + 11 * C;
}

int64_t rwkv_lm_parameters(const LmConfig& c) {
  const int64_t C = c.d_model, V = c.vocab_size;
  return V * C + 2 * C + c.n_layers * rwkv_block_parameters(c) + 2 * C + (c.tie_weights ? 0 : V * C);
}

}  // namespace rbk
