// The one description of a language model of the suite (ResNet-BK, Transformer, Mamba, RWKV):
// what make_language_model (language_model.h) builds, what checkpoints store and what every LM
// experiment's "model" options fill. Its fields, ranges, choices and cross-field checks are the
// model field table of options.h; this header needs neither LibTorch nor any model.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
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
  std::string moe_dispatch = "gather";  // "gather" | "dense" | "grouped" (moe.h: MoeDispatch; the same function)
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

}  // namespace rbk
