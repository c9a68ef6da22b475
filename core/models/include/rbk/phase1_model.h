// The Phase-1 language model of seed 001 (§6.2-6.4, Tables 5-11; claims C16, C18, C15) and the
// "Phase 2 (BK-Core)" model of its memory search as upstream built it (Table 12, claim C15),
// each its own module (not an LmConfig architecture).
//
// Phase-1 (upstream-audit §6.4, MemoryOptimizedModel): HTT embedding (htt_embedding.h) +
// L x [x += ArSsm(LN(x)); x += LowRankFfn(LN(x))] + LN + low-rank head D -> r_h -> V, with
//   LowRankFfn: Linear(D, r) ReLU Linear(r, 4D) ReLU Linear(4D, r) ReLU Linear(r, D), r = D / 16,
//   r_h = max(D / 32, 32), every Linear with bias.
// Phase-2 compat (upstream-audit §6.2, Phase2BKCoreModel): the BK-Core is imported but never
// called. Embedding(V, 4) -> Linear(4, D, no bias); per layer, on u = LN(x):
//   x += h_diag * u_i + h_sub * u_{i-1} + h_super * u_{i+1}  (a per-channel 3-tap filter along the
//        sequence; upstream loops over positions in Python, here it is two shifted products, which
//        stores fewer temporaries)  +  u V U^T  (U, V: D x r, r = max(4, floor(log2 D)));
//   x += Linear(D/4, D)(GELU(Linear(D, D/4)(LN(x))));
// head Linear(D, D/4) -> GELU -> Linear(D/4, V); plus an unused per-channel vector (V_potential),
// kept because it is counted in upstream's parameter totals.
// Both expose the split the chunked loss needs (lm_loss.h): features (B, n, F) and a head
// weight (V, F) and bias (V).
#pragma once
#include "rbk/ar_ssm.h"
#include "rbk/htt_embedding.h"
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <cstdint>
#include <memory>
#include <vector>

namespace rbk {

// A language model seen as features + a linear head (what chunked_linear_cross_entropy needs).
class FeatureHeadLm : public torch::nn::Module {
 public:
  // ids (B, n) int64 -> (B, n, F) float: everything before the head's last Linear.
  virtual torch::Tensor forward_features(const torch::Tensor& ids) = 0;
  virtual torch::Tensor head_weight() const = 0;  // (V, F)
  virtual torch::Tensor head_bias() const = 0;    // (V)
  void set_checkpoint_blocks(bool on) { checkpoint_blocks_ = on; }

 protected:
  bool checkpoint_blocks_ = false;
};

struct Phase1Config {
  int64_t vocab_size = 0;
  int64_t d_model = 0;
  int64_t n_layers = 0;
  int64_t htt_rank = 16;       // upstream default; Table 10 uses 4
  int64_t ar_max_rank = 32;
  int64_t ffn_rank = 0;        // 0: d_model / 16
  int64_t head_rank = 0;       // 0: max(d_model / 32, 32)
  bool causal_conv = false;    // AR-SSM local conv: upstream's symmetric padding (false) or causal
  nlohmann::json to_json() const;
};
int64_t phase1_ffn_rank(const Phase1Config& c);
int64_t phase1_head_rank(const Phase1Config& c);

// Parameter counts by component, closed form.
struct ParameterBreakdown {
  int64_t embedding = 0, layers = 0, head = 0, other = 0;  // other: final norm, unused vectors
  int64_t total() const { return embedding + layers + head + other; }
  nlohmann::json to_json() const;
};
ParameterBreakdown phase1_parameter_breakdown(const Phase1Config& c);
int64_t low_rank_ffn_parameter_count(int64_t d_model, int64_t rank);

class Phase1Lm : public FeatureHeadLm {
 public:
  explicit Phase1Lm(const Phase1Config& config);
  torch::Tensor forward_features(const torch::Tensor& ids) override;  // (B, n, r_h)
  torch::Tensor head_weight() const override { return head_up_->weight; }
  torch::Tensor head_bias() const override { return head_up_->bias; }
  // Instantiated counts per component (the closed form's check).
  ParameterBreakdown count_by_component() const;
  const Phase1Config& config() const { return config_; }

 private:
  struct Block {
    torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
    ArSsm ar_ssm{nullptr};
    torch::nn::Linear ffn_down1{nullptr}, ffn_up1{nullptr}, ffn_down2{nullptr}, ffn_up2{nullptr};
  };
  torch::Tensor block_forward(Block& b, const torch::Tensor& x);
  Phase1Config config_;
  HttEmbedding embedding_{nullptr};
  std::vector<Block> blocks_;
  torch::nn::LayerNorm final_norm_{nullptr};
  torch::nn::Linear head_down_{nullptr}, head_up_{nullptr};
};

struct Phase2CompatConfig {
  int64_t vocab_size = 0;
  int64_t d_model = 0;
  int64_t n_layers = 0;
  nlohmann::json to_json() const;
};
int64_t phase2_compat_rank(int64_t d_model);  // max(4, floor(log2 D))
ParameterBreakdown phase2_compat_parameter_breakdown(const Phase2CompatConfig& c);

class Phase2CompatLm : public FeatureHeadLm {
 public:
  explicit Phase2CompatLm(const Phase2CompatConfig& config);
  torch::Tensor forward_features(const torch::Tensor& ids) override;  // (B, n, D/4)
  torch::Tensor head_weight() const override { return head_up_->weight; }
  torch::Tensor head_bias() const override { return head_up_->bias; }

 private:
  struct Block {
    torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
    torch::Tensor h_diag, h_sub, h_super, U, V, v_potential;
    torch::nn::Linear ffn1{nullptr}, ffn2{nullptr};
  };
  torch::Tensor block_forward(Block& b, const torch::Tensor& x);
  Phase2CompatConfig config_;
  torch::nn::Embedding embedding_{nullptr};
  torch::nn::Linear embed_proj_{nullptr}, head_down_{nullptr}, head_up_{nullptr};
  std::vector<Block> blocks_;
};

}  // namespace rbk
