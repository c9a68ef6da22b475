// How token positions enter the language models (issue 17, "long contexts"): the option
// model.position, which architectures support which mode, the parameters a mode costs, and the
// fixed encodings (sinusoidal, rotary) computed for the actual sequence length.
//
// The learned n_seq x D table of the papers' models makes a 1M-token model mostly position table
// (256M parameters at D = 256); "none" and "sinusoidal" cost no parameters, and "rotary" (the
// Transformer's attention only) none either. Support per architecture:
//   resnet_bk    learned (auto), none, sinusoidal
//   transformer  learned (auto), none, sinusoidal, rotary
//   mamba, rwkv  none (auto): the recurrence carries order
// Prime-Bump (LmConfig::prime_bump) perturbs rows of the learned table, so it needs "learned".
//
//  * sinusoidal (Vaswani et al. 2017, §3.5): PE[t, 2i] = sin(t w_i), PE[t, 2i+1] = cos(t w_i),
//    w_i = 10000^(-2i/D), added to the token embedding. Scaled so that its RMS equals the init std
//    of the token embedding (the learned table it replaces starts at that scale too), see
//    sinusoidal_amplitude.
//  * rotary (Su et al. 2021, RoFormer): q and k of every head are rotated pairwise by the angle
//    t theta_i, theta_i = 10000^(-2i/Dh), pairing channel i with channel i + Dh/2 (the "rotate
//    half" layout); scores then depend on positions only through t_q - t_k.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace rbk {

struct LmConfig;

enum class PositionMode { Learned, None, Sinusoidal, Rotary };
std::string to_string(PositionMode m);  // "learned", "none", "sinusoidal", "rotary"

// The modes `arch` supports, its own (what "auto" means) first; "auto" itself is always allowed
// and not listed. Empty for an unknown arch. The one list: options.cpp validates model.position
// with it, the model constructors build from it (resolve_position).
std::vector<std::string> supported_positions(const std::string& arch);

// The mode c.position means for c.arch ("auto" -> the arch's own). Throws std::invalid_argument
// naming model.position, its value, the arch and the allowed modes when the arch does not support
// it, and naming model.prime_bump when Prime-Bump is asked for without the learned table.
PositionMode resolve_position(const LmConfig& c);
// The same checks without the result: the cross-field validation of model.position.
void check_position_supported(const LmConfig& c);

// Parameters the position encoding adds to the model: n_seq * d_model for the learned table,
// 0 otherwise. count_parameters(model) - position_parameters(config) is the count without it.
int64_t position_parameters(const LmConfig& c);

// (n, D) fixed sinusoidal encoding of positions 0..n-1 (unit amplitude), computed in fp64 (angles
// reach n radians; fp32 would lose them above ~1e4) and returned in options' dtype and device.
torch::Tensor sinusoidal_positions(int64_t n, int64_t d_model, const torch::TensorOptions& options);
// Amplitude the models give the sinusoidal encoding: sqrt(2) * the token embedding's init std
// (0.02 for init "papertime", 1 for "torch_default"), so its RMS matches the embedding's.
double sinusoidal_amplitude(const LmConfig& c);

// cos and sin of t theta_i for t < n, i < head_dim / 2: two (n, head_dim / 2) tensors in
// options' dtype (angles computed in fp64). head_dim must be even.
struct RotaryTables {
  torch::Tensor cos, sin;  // (n, head_dim / 2)
};
RotaryTables rotary_tables(int64_t n, int64_t head_dim, const torch::TensorOptions& options);
// x: (..., n, head_dim) -> x rotated by position, same shape and dtype (tables cast to x's dtype).
torch::Tensor apply_rotary(const torch::Tensor& x, const RotaryTables& tables);

}  // namespace rbk
