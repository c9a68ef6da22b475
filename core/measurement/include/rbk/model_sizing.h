// Sizing baselines to a parameter budget (issue 7: "a helper that sizes each baseline to match a
// ResNet-BK configuration's parameter count within 5%"), so throughput and quality comparisons of
// ResNet-BK, Transformer, Mamba and RWKV LMs are made at equal size.
#pragma once
#include "rbk/language_model.h"

#include <cstdint>

namespace rbk {

// Returns `base` with its width changed so that count_parameters(*make_language_model(result)) is
// as close as possible to target_params; n_layers, vocab_size, n_seq and every other field stay.
// The width is searched over multiples of `width_multiple` (8: tensor-core friendly), per arch:
//   resnet_bk    d_model
//   transformer  d_model (also a multiple of 8 n_heads: head dim a multiple of 8), ffn_dim = 4 d_model
//   rwkv         d_model, ffn_dim = 4 d_model
//   mamba        d_model, dt_rank = 0 (auto: ceil(d_model / 16))
// Throws std::runtime_error naming the arch, the target and the closest count found when no width
// lands within |count / target - 1| <= tolerance, and std::invalid_argument for a bad request
// (and whatever make_language_model throws, e.g. "not built into this library").
//
// Counting: parameter counts of these models are affine in vocab_size and n_seq (embeddings,
// head, position table), so each candidate is counted on copies with tiny V and N and
// extrapolated; the chosen configuration is then counted once at full size, and that direct count
// decides the tolerance check. Counting models are built with init "torch_default" (same shapes,
// none of the paper-time schemes' cost); the returned config keeps base's init.
LmConfig size_to_parameter_count(const LmConfig& base, int64_t target_params, double tolerance = 0.05,
                                 int64_t width_multiple = 8);

// count_parameters(*make_language_model(c)) without allocating the V- and N-sized tables (the
// affine extrapolation above). Exact for every arch whose count is affine in V and N.
int64_t estimate_parameter_count(const LmConfig& c);

}  // namespace rbk
