// ResNet-BK language model, PoC and paper-time forms (see resnet_bk_lm.h; upstream-audit §2.1,
// §2.3, §4.2; claim C05).
#include "rbk/resnet_bk_lm.h"
#include "rbk/act.h"
#include "rbk/block_checkpoint.h"
#include "rbk/lowrank_resolvent.h"
#include "rbk/prime_bump.h"

#include <stdexcept>

namespace rbk {

ResNetBkLm::ResNetBkLm(const LmConfig& c) : LanguageModel(c) {
  c.validate();
  check_ablation_and_act_config(c);
  bk_.forward = parse_forward_mode(c.bk_forward);
  bk_.gradient = parse_gradient_mode(c.bk_gradient);
  bk_.context = parse_context(c.bk_context);
  bk_.z = c10::complex<double>(c.bk_z_real, c.bk_z_imag);
  router_ = parse_router(c.router);
  position_ = resolve_position(c);  // also rejects Prime-Bump without the learned table
  const int64_t D = c.d_model;
  tok_emb_ = register_module("tok_emb", torch::nn::Embedding(c.vocab_size, D));
  if (position_ == PositionMode::Learned) pos_emb_ = register_module("pos_emb", torch::nn::Embedding(c.n_seq, D));
  for (int64_t l = 0; l < c.n_layers; ++l) blocks_.push_back(make_resnet_bk_block(*this, "block" + std::to_string(l) + "_", c));
  final_norm_ = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
  head_ = register_module("head", torch::nn::Linear(D, c.vocab_size));
  reset_parameters();
}

void ResNetBkLm::reset_parameters() {
  torch::NoGradGuard ng;
  const auto& c = config_;
  if (c.init == "papertime") init_papertime_weights(*this, tok_emb_, pos_emb_);
  // torch_default: the LibTorch constructors already match PyTorch's defaults (PoC)
  if (c.prime_bump == "simple") {
    for (int64_t p : primes_below(c.n_seq)) pos_emb_->weight[p].add_(c.prime_bump_scale);
  } else if (c.prime_bump == "potential") {
    PrimeBumpOptions po;
    po.epsilon = c.prime_bump_epsilon;
    po.scale = c.prime_bump_scale;
    auto V = prime_bump_potential(c.n_seq, PrimeBumpGrid::Integer, po).to(torch::kFloat32);  // (N,)
    pos_emb_->weight.add_(V.unsqueeze(1));
  }
}

ResNetBkBlock make_resnet_bk_block(torch::nn::Module& owner, const std::string& p, const LmConfig& c) {
  const int64_t D = c.d_model;
  MoeOptions mo;
  mo.d_model = D;
  mo.num_experts = c.num_experts;
  mo.top_k = c.top_k;
  mo.dropout = c.dropout;
  mo.router = parse_router(c.router);
  mo.dispatch = parse_moe_dispatch(c.moe_dispatch);
  mo.legacy_scattering_scale = c.legacy_scattering_scale;
  mo.scattering_epsilon = c.scattering_epsilon;
  ResNetBkBlock b;
  b.papertime = c.block == "papertime";
  b.norm = owner.register_module(p + "norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
  b.moe = owner.register_module(p + "moe", Moe(mo));
  b.v_proj = owner.register_module(p + "v_proj", torch::nn::Linear(D, 1));
  b.out_proj = owner.register_module(p + "out_proj", torch::nn::Linear(2, D));
  if (b.papertime) b.bk_scale = owner.register_parameter(p + "bk_scale", torch::ones({}));
  // Ablation and ACT parts: registered only when switched on, after the parts above, so a default
  // config builds (and draws its random initial weights) exactly as before.
  if (c.bk_lap) b.lap_s = c.bk_lap_s;
  const int64_t rank = semiseparable_rank_of(c);
  if (rank > 0) {
    // HEAD's initialisation of the factors (upstream-audit §6.1: randn * 0.01); at paper time they
    // were zero buffers, which makes the structure inert.
    b.ss_u = owner.register_parameter(p + "ss_u", torch::randn({c.n_seq, rank}) * kSemiseparableInitStd);
    b.ss_v = owner.register_parameter(p + "ss_v", torch::randn({c.n_seq, rank}) * kSemiseparableInitStd);
  }
  if (c.act != "none" && c.act_signal == "learned") b.halt = owner.register_module(p + "halt", torch::nn::Linear(D, 1));
  return b;
}

torch::Tensor resnet_bk_block_features(const ResNetBkBlock& b, const torch::Tensor& v, const BkCoreOptions& bk) {
  auto f = bk_core_features(v, bk);  // (B, n, 2)
  const int64_t n = v.size(1);
  if (b.ss_u.defined()) {
    using torch::indexing::Slice;
    auto corr = semiseparable_diagonal_correction(v, b.ss_u.index({Slice(0, n)}), b.ss_v.index({Slice(0, n)}), bk.z);
    f = f - torch::stack({torch::real(corr), torch::imag(corr)}, -1).to(f.scalar_type());
  }
  if (b.lap_s > 0.0) {
    auto x = torch::arange(n, v.options().dtype(torch::kFloat64));
    auto w = torch::pow(1.0 + x * x, -b.lap_s).to(f.scalar_type());  // (n,): <x>^-s on both sides of G
    f = f * w.view({1, n, 1});
  }
  return f;
}

torch::Tensor resnet_bk_block_forward(ResNetBkBlock& b, const torch::Tensor& h, const BkCoreOptions& bk) {
  const auto B = h.size(0), n = h.size(1), D = h.size(2);
  auto u = b.norm->forward(h);
  if (!b.papertime) {
    auto m = b.moe->forward(u.reshape({B * n, D})).view({B, n, D});
    auto v = b.v_proj->forward(m).squeeze(-1);                  // (B, n): potential from the MoE output
    auto f = bk_core_features(v, bk).to(h.scalar_type());     // (B, n, 2)
    return m + b.out_proj->forward(f);
  }
  auto v = b.v_proj->forward(u).squeeze(-1).clamp(-3.0, 3.0);  // (B, n)
  auto f = resnet_bk_block_features(b, v, bk).to(h.scalar_type());  // (B, n, 2)
  torch::Tensor g;
  if (b.moe->options().router == RouterKind::ScatteringPhase)
    g = torch::complex(f.select(-1, 0).detach(), f.select(-1, 1).detach()).reshape({B * n});
  auto m = b.moe->forward(u.reshape({B * n, D}), g).view({B, n, D});
  return m + b.bk_scale * b.out_proj->forward(f.clamp(-10.0, 10.0));
}

torch::Tensor ResNetBkLm::forward_features(const torch::Tensor& ids) {
  TORCH_CHECK(ids.dim() == 2, "ResNetBkLm: ids must be (B, n), got ", ids.sizes());
  TORCH_CHECK(ids.size(1) <= config_.n_seq, "ResNetBkLm: sequence length ", ids.size(1), " exceeds n_seq ", config_.n_seq);
  const int64_t n = ids.size(1);
  auto h = tok_emb_->forward(ids);  // (B, n, D)
  if (position_ == PositionMode::Learned) {
    h = h + pos_emb_->forward(torch::arange(n, ids.options())).unsqueeze(0);
  } else if (position_ == PositionMode::Sinusoidal) {
    h = h + sinusoidal_amplitude(config_) * sinusoidal_positions(n, config_.d_model, h.options()).unsqueeze(0);
  }
  if (config_.act != "none") {
    TORCH_CHECK(!checkpoint_blocks_, "ResNetBkLm: model.act = '", config_.act,
                "' runs its own block loop; train.checkpoint_blocks must be false");
    return final_norm_->forward(act_forward_blocks(blocks_, h, bk_, config_, act_));
  }
  for (auto& b : blocks_) {
    // Captures the block by reference: blocks_ never changes after construction, and the model
    // outlives the backward pass that a checkpointed block's graph keeps the closure for.
    const BlockFunction block = [this, &b](const torch::Tensor& x) { return x + resnet_bk_block_forward(b, x, bk_); };
    h = run_block(block, h, checkpoint_blocks_);
  }
  return final_norm_->forward(h);
}

torch::Tensor ResNetBkLm::expert_counts() const {
  std::vector<torch::Tensor> rows;
  for (const auto& b : blocks_) rows.push_back(b.moe->expert_counts());
  return torch::stack(rows);
}

void ResNetBkLm::reset_expert_counts() {
  for (auto& b : blocks_) b.moe->reset_expert_counts();
}

}  // namespace rbk
