// The ResNet-BK language model (claim C05; base of the long-context, quantisation, ablation and
// memory experiments) in its PoC (seed 004) and paper-time (efaa555) forms, built from an
// LmConfig (lm_config.h) like every LM of the suite (language_model.h).
//
// ResNet-BK (upstream-audit §2.1, §2.3): h = tok_emb[x] + pos_emb[0..n-1]; L pre-LN residual
// blocks h <- h + Block(LN(h)); logits = lm_head(LN_f(h)) with an untied, biased head. The
// position term follows model.position (position_encoding.h): the learned table (compat), none,
// or the fixed sinusoidal encoding. Blocks can be checkpointed (set_checkpoint_blocks).
//  * block "poc":       m = MoE(u); v = Linear(D,1)(m); f = BK(v); out = m + Linear(2,D)(f)
//  * block "papertime": v = clamp(Linear(D,1)(u), +-3); f = BK(v); m = MoE(u, G);
//                       out = m + bk_scale * Linear(2,D)(clamp(f, +-10)),  bk_scale init 1
// BK(v) is rbk::bk_core_features (forward stable/compat, gradient exact/hybrid, context
// bidirectional/causal). The models accept any n <= n_seq, so the PoC layout bug (the model fed
// (N, B) = (128, 20), i.e. BK across 20 streams) is reproduced by the caller transposing.
//
// Initialisation: "torch_default" (PoC: embeddings N(0,1), Linear kaiming-uniform) or
// "papertime" (embeddings N(0, 0.02), Linear xavier-uniform with zero bias). Prime-Bump (§4.2):
// "simple" adds prime_bump_scale to the position-embedding rows of primes < n_seq, "potential"
// adds V(x) of the Prime-Bump potential (integer grid) to row x.
#pragma once
#include "rbk/bk_core_autograd.h"
#include "rbk/language_model.h"
#include "rbk/moe.h"
#include "rbk/position_encoding.h"

#include <string>
#include <vector>

namespace rbk {

// One ResNet-BK block, exactly as ResNetBkLm runs it; public so that benchmarks time the LM's own
// layer (exp_cpu_scaling, claims C02-C04, C09).
struct ResNetBkBlock {
  bool papertime = true;  // block "papertime" vs "poc" (see the file comment)
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear v_proj{nullptr}, out_proj{nullptr};
  Moe moe{nullptr};
  torch::Tensor bk_scale;  // papertime only
  double lap_s = 0.0;      // bk_lap: features weighted by (1 + x^2)^-lap_s; 0 = off
  torch::Tensor ss_u, ss_v;  // semiseparable factors (n_seq, r) float32; undefined when off
  torch::nn::Linear halt{nullptr};  // ACT learned halting unit (act_signal = "learned")
};
// Builds block parts from c (d_model, block, MoE keys, dropout, ablation and ACT keys) and
// registers them on owner as prefix + {norm, moe, v_proj, out_proj, bk_scale, ss_u, ss_v, halt}
// (the last three only when switched on): the LM's parameter names with prefix "block<l>_".
ResNetBkBlock make_resnet_bk_block(torch::nn::Module& owner, const std::string& prefix, const LmConfig& c);
// h: (B, n, D) float -> the residual branch Block(LN(h)), (B, n, D); the caller adds h.
torch::Tensor resnet_bk_block_forward(ResNetBkBlock& b, const torch::Tensor& h, const BkCoreOptions& bk);
// The block's spectral features for potential v (B, n) float: BK-Core's (Re G, Im G) (B, n, 2),
// with the semiseparable correction and the LAP weights when the block has them.
torch::Tensor resnet_bk_block_features(const ResNetBkBlock& b, const torch::Tensor& v, const BkCoreOptions& bk);

// Work counters of adaptive computation (act.h), summed since the last reset.
struct ActCounters {
  int64_t token_blocks_run = 0;      // (token, block) pairs whose per-token block work was computed
  int64_t token_blocks_full = 0;     // (token, block) pairs a full-depth pass computes
  double upstream_weight_sum = 0.0;  // compat: upstream's sum of halting weights ("layers executed")
  int64_t halted_tokens = 0;         // tokens that halted before the last block
  int64_t tokens = 0;                // tokens seen
};

class ResNetBkLm : public LanguageModel {
 public:
  explicit ResNetBkLm(const LmConfig& config);
  torch::Tensor forward_features(const torch::Tensor& ids) override;
  torch::Tensor head_weight() const override { return head_->weight; }
  torch::Tensor head_bias() const override { return head_->bias; }
  torch::Tensor expert_counts() const override;
  void reset_expert_counts() override;
  const ActCounters& act_counters() const { return act_; }
  void reset_act_counters() { act_ = ActCounters{}; }

 private:
  void reset_parameters();
  torch::nn::Embedding tok_emb_{nullptr}, pos_emb_{nullptr};
  std::vector<ResNetBkBlock> blocks_;
  torch::nn::LayerNorm final_norm_{nullptr};
  torch::nn::Linear head_{nullptr};
  BkCoreOptions bk_;
  RouterKind router_;
  PositionMode position_ = PositionMode::Learned;  // pos_emb_ exists only for Learned
  ActCounters act_;
};

}  // namespace rbk
