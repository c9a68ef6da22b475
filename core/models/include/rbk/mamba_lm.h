// Mamba-1 language-model baseline (issue 7, baselines for claim C05-style comparisons; Gu & Dao
// 2023, "Mamba", Fig. 3 and §3.4, and the reference module state-spaces/mamba mamba_simple.py,
// re-implemented here): same LM interface as the ResNet-BK and Transformer LMs.
//
// LM: h = tok_emb[x] (no position embedding, model.position = none: the recurrence carries order); n_layers residual
// blocks h <- h + Dropout(Mixer(RMSNorm(h))); logits = head(RMSNorm_f(h)). The head is a biased
// Linear(D, V) like the other baselines' heads (upstream Mamba ties it to the embedding without a
// bias; tie_weights = true gives that: logits = h E^T). RMSNorm (Mamba's choice): x / sqrt(mean(x^2)
// + 1e-5) * w, computed in fp32.
//
// Mixer (MambaBlock), x (B, L, D) -> (B, L, D), Di = expand * D, R = dt_rank (0 -> ceil(D / 16)):
//   [x_in, z] = in_proj(x)               Linear(D, 2 Di), no bias
//   x_c = SiLU(causal depthwise conv1d(x_in)), kernel d_conv, with bias (left padding d_conv - 1)
//   [dt_low, B, C] = x_proj(x_c)          Linear(Di, R + 2N), no bias
//   dt = dt_proj.weight dt_low            (its bias is the scan's delta_bias, softplus in the scan)
//   y = selective_scan(x_c, dt, A = -exp(A_log), B, C, D, z, dt_proj.bias, softplus)
//   out = out_proj(y)                     Linear(Di, D), no bias
// Initialisation (as upstream's Mamba and MixerModel): A_log[d, n] = log(n + 1) (S4D-real);
// dt ~ exp(U[log 1e-3, log 1e-1]) clamped >= 1e-4 and dt_proj.bias = softplus^{-1}(dt) =
// dt + log(-expm1(-dt)); dt_proj.weight ~ U(-R^-0.5, R^-0.5); D = 1; in/x/out_proj and conv1d keep
// PyTorch's default init, out_proj then divided by sqrt(n_layers) (prenorm residual rescale);
// embeddings N(0, 0.02); norm weights 1. The config's `init` key is ignored for Mamba.
// Parameters stay fp32; under autocast the activations reaching the scan may be bf16 and the scan
// promotes them (selective_scan.h).
#pragma once
#include "rbk/language_model.h"
#include "rbk/selective_scan.h"

namespace rbk {

struct MambaBlockOptions {
  int64_t d_model = 64;
  int64_t expand = 2;
  int64_t d_state = 16;
  int64_t d_conv = 4;
  int64_t dt_rank = 0;  // 0 = ceil(d_model / 16)
  int64_t n_layers = 1; // for the out_proj rescale 1 / sqrt(n_layers)
  SelectiveScanImpl scan = SelectiveScanImpl::Auto;
  static MambaBlockOptions from_config(const LmConfig& c);
  int64_t d_inner() const { return expand * d_model; }
  int64_t resolved_dt_rank() const { return dt_rank > 0 ? dt_rank : (d_model + 15) / 16; }
};

// The Mamba mixer (without its norm and residual).
class MambaBlockImpl : public torch::nn::Module {
 public:
  explicit MambaBlockImpl(const MambaBlockOptions& o);
  // x: (B, L, d_model) float32 (or autocast dtype) -> (B, L, d_model)
  torch::Tensor forward(const torch::Tensor& x);
  MambaBlockOptions options;

  torch::nn::Linear in_proj{nullptr}, x_proj{nullptr}, dt_proj{nullptr}, out_proj{nullptr};
  torch::nn::Conv1d conv1d{nullptr};
  torch::Tensor A_log;  // (Di, N) float32
  torch::Tensor D;      // (Di,) float32
};
TORCH_MODULE(MambaBlock);

// RMSNorm over the last dimension: x / sqrt(mean(x^2) + eps) * weight, in fp32, returned in x's dtype.
class RmsNormImpl : public torch::nn::Module {
 public:
  explicit RmsNormImpl(int64_t dim, double eps = 1e-5);
  torch::Tensor forward(const torch::Tensor& x);  // (..., dim)
  torch::Tensor weight;                           // (dim,) float32, init 1
  double eps;
};
TORCH_MODULE(RmsNorm);

class MambaLm : public LanguageModel {
 public:
  explicit MambaLm(const LmConfig& config);
  torch::Tensor forward_features(const torch::Tensor& ids) override;
  torch::Tensor head_weight() const override { return head_ ? head_->weight : tok_emb_->weight; }
  torch::Tensor head_bias() const override { return head_ ? head_->bias : torch::Tensor(); }

 private:
  torch::nn::Embedding tok_emb_{nullptr};
  std::vector<RmsNorm> norms_;
  std::vector<MambaBlock> blocks_;
  RmsNorm final_norm_{nullptr};
  torch::nn::Linear head_{nullptr};
  torch::nn::Dropout drop_{nullptr};
};

std::shared_ptr<LanguageModel> make_mamba_lm(const LmConfig& config);

// Parameters of one residual layer (RMSNorm + mixer), closed form:
//   D (norm) + 2 D Di (in_proj) + Di (d_conv + 1) (conv) + Di (R + 2N) (x_proj) + Di (R + 1) (dt_proj)
//   + Di N (A_log) + Di (D skip) + Di D (out_proj).
int64_t mamba_block_parameters(const LmConfig& config);
// Whole LM: V D (embedding) + n_layers * block + D (final norm) + (tied ? 0 : D V + V) (head).
int64_t mamba_lm_parameters(const LmConfig& config);

}  // namespace rbk
