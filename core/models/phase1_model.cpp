// Phase-1 and Phase-2-compat language models (phase1_model.h; seed 001 §6.2-6.5).
#include "rbk/phase1_model.h"

#include "rbk/block_checkpoint.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace rbk {

namespace {
void check_dims(const char* who, int64_t V, int64_t D, int64_t L) {
  if (V < 2 || D < 4 || L < 1)
    throw std::invalid_argument(std::string(who) + ": need vocab_size >= 2, d_model >= 4, n_layers >= 1, got " +
                                std::to_string(V) + ", " + std::to_string(D) + ", " + std::to_string(L));
}
int64_t linear_count(int64_t in, int64_t out, bool bias = true) { return in * out + (bias ? out : 0); }
int64_t count_module(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}
}  // namespace

nlohmann::json ParameterBreakdown::to_json() const {
  return {{"embedding", embedding}, {"layers", layers}, {"head", head}, {"other", other}, {"total", total()}};
}

nlohmann::json Phase1Config::to_json() const {
  return {{"vocab_size", vocab_size}, {"d_model", d_model},         {"n_layers", n_layers},
          {"htt_rank", htt_rank},     {"ar_max_rank", ar_max_rank}, {"ffn_rank", phase1_ffn_rank(*this)},
          {"head_rank", phase1_head_rank(*this)}, {"causal_conv", causal_conv}};
}

int64_t phase1_ffn_rank(const Phase1Config& c) { return c.ffn_rank > 0 ? c.ffn_rank : std::max<int64_t>(1, c.d_model / 16); }
int64_t phase1_head_rank(const Phase1Config& c) {
  return c.head_rank > 0 ? c.head_rank : std::max<int64_t>(c.d_model / 32, 32);
}

int64_t low_rank_ffn_parameter_count(int64_t D, int64_t r) {
  return linear_count(D, r) + linear_count(r, 4 * D) + linear_count(4 * D, r) + linear_count(r, D);
}

ParameterBreakdown phase1_parameter_breakdown(const Phase1Config& c) {
  ParameterBreakdown b;
  const int64_t D = c.d_model, hr = phase1_head_rank(c);
  b.embedding = htt_embedding_parameter_count(c.vocab_size, D, c.htt_rank, true);
  ArSsmOptions ao;
  ao.d_model = D;
  ao.max_rank = c.ar_max_rank;
  b.layers = c.n_layers * (4 * D + ar_ssm_parameter_count(ao) + low_rank_ffn_parameter_count(D, phase1_ffn_rank(c)));
  b.head = linear_count(D, hr) + linear_count(hr, c.vocab_size);
  b.other = 2 * D;  // final LayerNorm
  return b;
}

Phase1Lm::Phase1Lm(const Phase1Config& config) : config_(config) {
  check_dims("Phase1Lm", config.vocab_size, config.d_model, config.n_layers);
  const int64_t D = config.d_model, r = phase1_ffn_rank(config), hr = phase1_head_rank(config);
  HttEmbeddingOptions eo;
  eo.vocab_size = config.vocab_size;
  eo.d_model = D;
  eo.rank = config.htt_rank;
  embedding_ = register_module("embedding", HttEmbedding(eo));
  for (int64_t l = 0; l < config.n_layers; ++l) {
    const std::string p = "block" + std::to_string(l) + "_";
    Block b;
    b.ln1 = register_module(p + "ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
    b.ln2 = register_module(p + "ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
    ArSsmOptions ao;
    ao.d_model = D;
    ao.max_rank = config.ar_max_rank;
    ao.causal_conv = config.causal_conv;
    b.ar_ssm = register_module(p + "ar_ssm", ArSsm(ao));
    b.ffn_down1 = register_module(p + "ffn_down1", torch::nn::Linear(D, r));
    b.ffn_up1 = register_module(p + "ffn_up1", torch::nn::Linear(r, 4 * D));
    b.ffn_down2 = register_module(p + "ffn_down2", torch::nn::Linear(4 * D, r));
    b.ffn_up2 = register_module(p + "ffn_up2", torch::nn::Linear(r, D));
    blocks_.push_back(b);
  }
  final_norm_ = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
  head_down_ = register_module("head_down", torch::nn::Linear(D, hr));
  head_up_ = register_module("head_up", torch::nn::Linear(hr, config.vocab_size));
}

torch::Tensor Phase1Lm::block_forward(Block& b, const torch::Tensor& x) {
  auto y = x + b.ar_ssm->forward(b.ln1->forward(x));
  auto f = torch::relu(b.ffn_down1->forward(b.ln2->forward(y)));
  f = torch::relu(b.ffn_up1->forward(f));
  f = torch::relu(b.ffn_down2->forward(f));
  return y + b.ffn_up2->forward(f);
}

torch::Tensor Phase1Lm::forward_features(const torch::Tensor& ids) {
  auto x = embedding_->forward(ids);
  for (auto& b : blocks_) {
    const BlockFunction block = [this, &b](const torch::Tensor& h) { return block_forward(b, h); };
    x = run_block(block, x, checkpoint_blocks_);
  }
  return head_down_->forward(final_norm_->forward(x));
}

ParameterBreakdown Phase1Lm::count_by_component() const {
  ParameterBreakdown b;
  b.embedding = count_module(*embedding_);
  for (const auto& blk : blocks_)
    b.layers += count_module(*blk.ln1) + count_module(*blk.ln2) + count_module(*blk.ar_ssm) + count_module(*blk.ffn_down1) +
                count_module(*blk.ffn_up1) + count_module(*blk.ffn_down2) + count_module(*blk.ffn_up2);
  b.head = count_module(*head_down_) + count_module(*head_up_);
  b.other = count_module(*final_norm_);
  return b;
}

nlohmann::json Phase2CompatConfig::to_json() const {
  return {{"vocab_size", vocab_size}, {"d_model", d_model}, {"n_layers", n_layers}, {"rank", phase2_compat_rank(d_model)}};
}

int64_t phase2_compat_rank(int64_t d_model) {
  int64_t lg = 0;
  while ((int64_t{2} << lg) <= d_model) ++lg;  // floor(log2 D)
  return std::max<int64_t>(4, lg);
}

ParameterBreakdown phase2_compat_parameter_breakdown(const Phase2CompatConfig& c) {
  ParameterBreakdown b;
  const int64_t D = c.d_model, q = D / 4, r = phase2_compat_rank(D);
  b.embedding = 4 * c.vocab_size + 4 * D;
  b.layers = c.n_layers * (4 * D + 3 * D + 2 * D * r + linear_count(D, q) + linear_count(q, D));
  b.head = linear_count(D, q) + linear_count(q, c.vocab_size);
  b.other = c.n_layers * D;  // the unused V_potential of every layer
  return b;
}

Phase2CompatLm::Phase2CompatLm(const Phase2CompatConfig& config) : config_(config) {
  check_dims("Phase2CompatLm", config.vocab_size, config.d_model, config.n_layers);
  const int64_t D = config.d_model, q = D / 4, r = phase2_compat_rank(D);
  embedding_ = register_module("embedding", torch::nn::Embedding(config.vocab_size, 4));
  embed_proj_ = register_module("embed_proj", torch::nn::Linear(torch::nn::LinearOptions(4, D).bias(false)));
  for (int64_t l = 0; l < config.n_layers; ++l) {
    const std::string p = "block" + std::to_string(l) + "_";
    Block b;
    b.ln1 = register_module(p + "ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
    b.ln2 = register_module(p + "ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
    b.h_diag = register_parameter(p + "h_diag", torch::randn({D}) * 0.02);
    b.h_sub = register_parameter(p + "h_sub", torch::randn({D}) * 0.02);
    b.h_super = register_parameter(p + "h_super", torch::randn({D}) * 0.02);
    b.U = register_parameter(p + "U", torch::randn({D, r}) * 0.02);
    b.V = register_parameter(p + "V", torch::randn({D, r}) * 0.02);
    b.v_potential = register_parameter(p + "v_potential", torch::zeros({D}));
    b.ffn1 = register_module(p + "ffn1", torch::nn::Linear(D, q));
    b.ffn2 = register_module(p + "ffn2", torch::nn::Linear(q, D));
    blocks_.push_back(b);
  }
  head_down_ = register_module("head_down", torch::nn::Linear(D, q));
  head_up_ = register_module("head_up", torch::nn::Linear(q, config.vocab_size));
}

torch::Tensor Phase2CompatLm::block_forward(Block& b, const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  const auto u = b.ln1->forward(x);  // (B, n, D)
  const auto n = u.size(1);
  // u_{i-1} and u_{i+1} with zeros past the ends (upstream's loop skips the missing neighbour).
  const auto prev = F::pad(u, F::PadFuncOptions({0, 0, 1, 0})).narrow(1, 0, n);
  const auto next = F::pad(u, F::PadFuncOptions({0, 0, 0, 1})).narrow(1, 1, n);
  const auto tri = b.h_diag * u + b.h_sub * prev + b.h_super * next;
  const auto low_rank = torch::matmul(torch::matmul(u, b.V), b.U.t());
  const auto y = x + tri + low_rank;
  return y + b.ffn2->forward(torch::gelu(b.ffn1->forward(b.ln2->forward(y))));
}

torch::Tensor Phase2CompatLm::forward_features(const torch::Tensor& ids) {
  auto x = embed_proj_->forward(embedding_->forward(ids));
  for (auto& b : blocks_) {
    const BlockFunction block = [this, &b](const torch::Tensor& h) { return block_forward(b, h); };
    x = run_block(block, x, checkpoint_blocks_);
  }
  return torch::gelu(head_down_->forward(x));
}

}  // namespace rbk
