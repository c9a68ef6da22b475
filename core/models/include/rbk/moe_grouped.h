// A sparse MoE dispatch with static shapes and no host synchronisation (issue 25): each expert
// runs on the tokens routed to it only, like MoeDispatch::Gather, yet every tensor's size is known
// on the host before the step, like MoeDispatch::Dense, so a CUDA graph can capture it.
//
// Why (NOTES.md, "Where ResNet-BK's 32k step goes"): the dense dispatch evaluates all E experts on
// every token, E x the expert FLOPs and E x the (E, T, hD) hidden activations that are written,
// rectified, saved and read back in the backward; with top-1 routing over 4 experts three quarters
// of that is multiplied by an exact zero. The gather dispatch does only the routed work but needs
// each expert's row count on the host to size its GEMM.
//
// How: the (token, slot) pairs are sorted by expert, and each expert's rows are padded to a
// multiple of `tile_rows` in one buffer of a fixed n_tiles = ceil(S / tile_rows) + E tiles (S = T k
// slots; the padding of E segments never needs more than E extra tiles). Every tile then belongs to
// one expert, so each projection is one batched GEMM over the tiles with that tile's expert weights
// gathered beside it. Padding rows and unused trailing tiles are zero inputs whose outputs are never
// read (their gradients are exact zeros), so they cost work, never correctness.
//
// The function equals the dispatch's definition, out_t = sum_j w_tj expert_{idx_tj}(x_t) (test
// MoeGrouped.*: fp64 outputs against that sum and the module's gather dispatch, gradients against
// the gather dispatch's). Dropout draws
// its mask over the padded buffer: with dropout > 0 the random stream differs from both.
#pragma once
#include <torch/torch.h>

namespace rbk {

class MoeImpl;

// The experts' parameters stacked along a leading expert dimension; stacking is differentiable,
// so gradients reach the experts' own Linear parameters.
struct StackedExperts {
  torch::Tensor up_weight;    // (E, hD, D)
  torch::Tensor up_bias;      // (E, hD)
  torch::Tensor down_weight;  // (E, D, hD)
  torch::Tensor down_bias;    // (E, D)
};
StackedExperts stack_experts(const MoeImpl& moe);

// The tile height used when tile_rows = 0: the power of two nearest to S / (8 E), clamped to
// [16, 1024]. The padded buffer computes S + E tile_rows rows (an overhead of about 1 / 8 at that
// size) and gathers n_tiles copies of the weights; smaller tiles trade the first for the second.
int64_t default_grouped_tile_rows(int64_t slots, int64_t num_experts);

// x (T, D); idx (T, k) int64 expert of each slot in [0, E) (shapes are checked, values are not:
// that would read them on the host); w (T, k) routing weights. Returns
// sum_j w_tj * down(dropout(relu(up(x_t)))) of expert idx_tj, (T, D) in x's dtype.
torch::Tensor grouped_expert_mlp(const torch::Tensor& x, const torch::Tensor& idx, const torch::Tensor& w,
                                 const StackedExperts& experts, double dropout, bool training,
                                 int64_t tile_rows = 0);

// Relative L2 errors against fp64 up to which a dispatch's results under bf16 autocast count as
// correct (GPU tests, which also require the grouped dispatch within 2x the dense one's, and
// bench_moe_dispatch).
// The output: two bf16 roundings of each GEMM input give ~2^-8 (4e-3 measured on an H100).
inline constexpr double kBf16MoeOutputRelTol = 2e-2;
// Gradients through the ReLU: bf16 rounding flips the mask of pre-activations near zero (0.07 % of
// them), and each flip changes a gradient entry by O(1), so the error grows as the square root of
// the flipped fraction: 0.038 measured on an H100 for the dense and the grouped dispatch alike
// (results/device_runs/251dd46/call1/gpu_tests.log); a numpy simulation of the roundings gives 0.0375,
// and 0.0037 with the exact mask (scripts/bf16_relu_mask_error.py, hidden 2 D;
// results/lm_throughput/bench_moe_dispatch/bf16_relu_mask_error.txt). 0.1 leaves a
// margin over that; a dispatch that computes something else fails the output bound.
inline constexpr double kBf16MoeGradientRelTol = 0.1;

// The definition grouped_expert_mlp is checked against (tests, benchmark): every expert evaluated on
// every token by plain matmuls, weighted by the slots that chose it. E x the work; no dropout.
torch::Tensor expert_mlp_reference(const torch::Tensor& x, const torch::Tensor& idx, const torch::Tensor& w,
                                   const StackedExperts& experts);

}  // namespace rbk
