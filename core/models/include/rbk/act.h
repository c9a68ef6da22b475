// Adaptive computation time for the ResNet-BK LM (papers 000 §3.5, 002 §3.5; claim C11;
// upstream-audit §7). Selected by model.act:
//  * "compat": upstream's ACTModule/ACTResNetBKBlock. Every block runs on every token; after each
//    block a halting probability is computed and accumulated, and the counters record upstream's
//    "layers executed" (the sum of halting weights). The model's output is that of the plain
//    model: upstream never uses the weights to mix outputs and never skips work.
//  * "skip": a token whose cumulative halting probability reached act_threshold gets no further
//    block work: its LayerNorm, v_proj, MoE and out_proj are not computed and its hidden state is
//    carried unchanged to the final norm. The BK-Core still runs over the whole sequence (it couples
//    neighbouring positions); a halted token enters it with potential v = 0.
// Halting signal (model.act_signal):
//  * "phase" (upstream): delta = pi tanh(mean_D of the block's output hidden state); u =
//    (delta + pi) / (2 pi), p0 = 1 - u; p = clamp(2 p0) if u < 0.2, clamp(0.5 p0) if u > 0.8,
//    else p0; p *= (l + 1) / L; p = 0 for l < act_min_layers.
//  * "learned": p = sigmoid(halt_l(h)) per block (Graves-style halting unit). In "skip" mode the
//    still-running tokens' block update is scaled by their remaining mass (1 - cumulative p), so
//    the unit is trained by the LM loss (there is no ponder-cost term: the trainer has none).
// A token halts at block l when cum + p >= act_threshold (upstream 0.99); its weight is then
// 1 - cum (the remainder), else p.
#pragma once
#include "rbk/resnet_bk_lm.h"

#include <torch/torch.h>
#include <vector>

namespace rbk {

// Cross-field checks of the ablation and ACT keys (std::invalid_argument naming the keys).
void check_ablation_and_act_config(const LmConfig& c);

// Upstream's halting probability from its phase: phase (T,) float, 0-based layer l of L.
torch::Tensor upstream_halting_probability(const torch::Tensor& phase, int64_t layer, int64_t n_layers,
                                           int64_t min_layers);

// The residual branch of a papertime block computed for the running tokens only.
// h (B, n, D); running (B, n) bool. Returns (R, D) for the R running tokens in row-major order
// (flat index running.nonzero()), and work->token_blocks_run += R.
torch::Tensor resnet_bk_block_forward_running(ResNetBkBlock& b, const torch::Tensor& h, const torch::Tensor& running,
                                              const BkCoreOptions& bk);

// The block loop with ACT (model.act != "none"): h (B, n, D) after the embeddings -> hidden
// states before the final norm, (B, n, D). Adds to counters.
torch::Tensor act_forward_blocks(std::vector<ResNetBkBlock>& blocks, const torch::Tensor& h, const BkCoreOptions& bk,
                                 const LmConfig& c, ActCounters& counters);

}  // namespace rbk
