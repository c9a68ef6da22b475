// AR-SSM ("adaptive-rank semiseparable") layer of seed 001 §6.3 (claims C16, C18;
// upstream-audit §6.4), the attention replacement of the Phase-1 model. For x (B, L, D):
//   t = depthwise Conv1d(kernel 3, no bias) along L  (upstream pads 1 on both sides, so the layer
//       sees x_{l+1}: non-causal; causal_conv = true pads 2 on the left instead)
//   g = sigmoid(W_g2 relu(W_g1 x + b_g1) + b_g2)          (B, L, R) soft rank gates
//   u = (U x) * g,  w = (V x) * g                          U, V: Linear(D, R), no bias
//   k = cumsum_l u                                          (inclusive, causal)
//   y = t + W_o (k * w) + b_o                               W_o: Linear(R, D)
// Parameters: D h + h + h R + R (gate) + 2 D R (U, V) + 3 D (conv) + R D + D (out), h the gate's
// hidden width (upstream: max(D / 4, min_rank)). The gate L1 term (mean |g|) is kept for callers.
#pragma once
#include <torch/torch.h>
#include <cstdint>

namespace rbk {

struct ArSsmOptions {
  int64_t d_model = 0;
  int64_t max_rank = 32;      // R
  int64_t min_rank = 4;
  int64_t gate_hidden = 0;    // 0: max(d_model / 4, min_rank), upstream's default
  bool causal_conv = false;   // false: upstream's symmetric padding (non-causal); true: left padding
};

int64_t ar_ssm_gate_hidden(const ArSsmOptions& o);
// Closed form of the parameter count (the file comment).
int64_t ar_ssm_parameter_count(const ArSsmOptions& o);

class ArSsmImpl : public torch::nn::Module {
 public:
  explicit ArSsmImpl(const ArSsmOptions& options);
  // x: (B, L, D) float -> (B, L, D).
  torch::Tensor forward(const torch::Tensor& x);
  // mean |g| of the last forward (0-dim), undefined before the first.
  const torch::Tensor& last_gate_l1() const { return last_gate_l1_; }
  const ArSsmOptions& options() const { return options_; }

 private:
  ArSsmOptions options_;
  torch::nn::Conv1d conv_{nullptr};
  torch::nn::Linear gate1_{nullptr}, gate2_{nullptr}, u_proj_{nullptr}, v_proj_{nullptr}, out_proj_{nullptr};
  torch::Tensor last_gate_l1_;
};
TORCH_MODULE(ArSsm);

}  // namespace rbk
