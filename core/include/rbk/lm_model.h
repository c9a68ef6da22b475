// Language models of the project (claim C05; base of the long-context, quantisation, ablation and
// memory experiments): the ResNet-BK LM in its PoC (seed 004) and paper-time (efaa555) forms,
// and a causal Transformer baseline, all built from one LmConfig (also stored in checkpoints).
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
#include "rbk/moe.h"
#include "rbk/position_encoding.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <memory>
#include <string>

namespace rbk {

struct LmConfig {
  std::string arch = "resnet_bk";    // "resnet_bk" | "transformer" | "mamba" | "rwkv"
  int64_t vocab_size = 0;
  int64_t d_model = 64;
  int64_t n_layers = 4;
  int64_t n_seq = 128;               // longest sequence (rows of the learned position table)
  // How positions enter the model: "auto" (the architecture's own: the learned table for
  // resnet_bk and transformer, as the papers' models (compat); none for mamba and rwkv), "learned"
  // (an n_seq x D table), "none", "sinusoidal" (fixed, no parameters), "rotary" (Transformer only).
  std::string position = "auto";
  double dropout = 0.0;
  std::string init = "papertime";    // "torch_default" | "papertime"
  // ResNet-BK
  std::string block = "papertime";   // "poc" | "papertime"
  int64_t num_experts = 4;
  int64_t top_k = 1;
  std::string router = "learned_topk";
  double legacy_scattering_scale = 0.0;
  double scattering_epsilon = 1.0;
  std::string bk_forward = "stable";
  std::string bk_gradient = "exact";
  std::string bk_context = "bidirectional";
  // BK-Core's spectral parameter z = bk_z_real + i bk_z_imag (upstream fixes z = 1j); Im z > 0.
  double bk_z_real = 0.0;
  double bk_z_imag = 1.0;
  std::string prime_bump = "none";   // "none" | "simple" | "potential"
  double prime_bump_scale = 0.02;
  double prime_bump_epsilon = 1.0;
  // Ablation switches (exp_ablations, claim C14; upstream-audit §5, §6.1). The defaults leave the
  // model exactly as without them.
  // LAP weighting as the papers describe it: the BK features of position x (0-based) become the
  // diagonal of the weighted resolvent <x>^-s G <x>^-s, i.e. G_xx (1 + x^2)^-s. Upstream applies
  // its LAP weights only to the explicit Birman-Schwinger kernel, a path its models never take.
  bool bk_lap = false;
  double bk_lap_s = 1.0;
  // Semiseparable H = T + U V^T (U, V learned, n_seq x r): the features are the exact diagonal of
  // (T + U V^T - z)^-1 (Woodbury over tridiagonal solves, O(N r)). 0 = off (upstream's model path:
  // U = V = 0, so the structure is inert); -1 = r = max(1, ceil(log2 n_seq)), upstream's rank.
  int64_t semiseparable_rank = 0;
  // Adaptive computation (act.h; exp_act_flops, claim C11): "none"; "compat" (upstream's
  // ACTModule: halting computed and counted, every block still runs on every token); "skip"
  // (a halted token gets no further block work). Signal: "phase" (upstream: pi tanh(mean_D of the
  // block output)) or "learned" (a per-block halting unit sigmoid(Linear(D, 1))). A token halts
  // once its cumulative halting probability reaches act_threshold; never before act_min_layers.
  std::string act = "none";
  std::string act_signal = "phase";
  double act_threshold = 0.99;
  int64_t act_min_layers = 2;
  // Transformer
  int64_t n_heads = 4;
  int64_t ffn_dim = 256;
  bool tie_weights = false;          // Transformer, Mamba, RWKV
  // Mamba-1 (mamba_lm.h): inner width expand * d_model, state size, depthwise conv width,
  // rank of the Delta projection (0 = ceil(d_model / 16), as in the Mamba paper).
  int64_t expand = 2;
  int64_t d_state = 16;
  int64_t d_conv = 4;
  int64_t dt_rank = 0;
  // RWKV-4 (rwkv_lm.h) uses ffn_dim as the channel-mixing hidden width.

  // Built from the model field table (options.h: lm_config_fields, choices, cross-field checks).
  nlohmann::json to_json() const;
  // Missing keys keep their defaults; unknown keys, wrong types, values outside their range or
  // choices and inconsistent combinations throw std::invalid_argument naming the key(s).
  static LmConfig from_json(const nlohmann::json& j);
  void validate() const;
};

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

std::shared_ptr<LanguageModel> make_language_model(const LmConfig& config);
int64_t count_parameters(const torch::nn::Module& m);

// The ResNet-BK LM.
// Paper-time initialisation shared by every LM of the suite (audit §2.3): embeddings N(0, 0.02),
// every Linear Xavier-uniform with zero bias.
void init_papertime_weights(torch::nn::Module& model, torch::nn::Embedding& tok_emb, torch::nn::Embedding& pos_emb);

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
