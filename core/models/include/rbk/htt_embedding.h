// HTT ("holographic tensor-train") token embedding of seed 001 §6.2, Table 10 (claims C16, C18;
// upstream-audit §6.3): a V x D embedding table replaced by two tensor-train cores over a
// factorised vocabulary and width,
//   v1 = ceil(sqrt V), v2 = ceil(V / v1),  d1 = ceil(sqrt D), d2 = ceil(D / d1),
//   core1 (v1, r, d1), core2 (v2, r, d2), phase theta (r),
//   E(t)[a, b] = sum_rho cos(theta_rho) core1[t / v2, rho, a] core2[t mod v2, rho, b],
// flattened to d1 d2 entries and cropped to the first D. In the real mode upstream uses, the
// "phase" is only a per-rank amplitude cos(theta). Parameters: r (v1 d1 + v2 d2) + r (the phase
// is a parameter when phase_encoding is on, a fixed zero buffer otherwise).
#pragma once
#include <torch/torch.h>
#include <cstdint>

namespace rbk {

struct HttEmbeddingOptions {
  int64_t vocab_size = 0;
  int64_t d_model = 0;
  int64_t rank = 16;            // tensor-train rank r (upstream default 16; Table 10 uses 4)
  bool phase_encoding = true;   // theta trainable (true) or a zero buffer (cos 0 = 1)
  double init_scale = 0.02;     // cores ~ N(0, init_scale^2); theta ~ N(0, 0.1^2) as upstream
};

// The factorisation of one HTT embedding.
struct HttFactors {
  int64_t v1 = 0, v2 = 0, d1 = 0, d2 = 0;
};
HttFactors htt_factors(int64_t vocab_size, int64_t d_model);

// Closed form of the parameter count: r (v1 d1 + v2 d2) + (phase_encoding ? r : 0).
int64_t htt_embedding_parameter_count(int64_t vocab_size, int64_t d_model, int64_t rank, bool phase_encoding = true);

class HttEmbeddingImpl : public torch::nn::Module {
 public:
  explicit HttEmbeddingImpl(const HttEmbeddingOptions& options);
  // ids: (B, n) int64 in [0, V) -> (B, n, D) in the cores' dtype. Ids outside [0, V) throw.
  torch::Tensor forward(const torch::Tensor& ids);
  const HttEmbeddingOptions& options() const { return options_; }
  const HttFactors& factors() const { return factors_; }

 private:
  HttEmbeddingOptions options_;
  HttFactors factors_;
  torch::Tensor core1_, core2_, phase_;
};
TORCH_MODULE(HttEmbedding);

}  // namespace rbk
