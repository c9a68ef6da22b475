// Per-block activation checkpointing for the language models (issue 17, train.checkpoint_blocks):
// the LibTorch C++ API has no torch.utils.checkpoint, so this is one, written as an autograd
// Function. A checkpointed block keeps only its input for backward; its forward runs without
// building a graph, and backward recomputes it (with the forward's random state) and
// back-propagates through the recomputed graph. The price is one more forward per block per step;
// the gain is that a step holds L block inputs plus ONE block's activations instead of L blocks'.
//
// Semantics (those of PyTorch's reentrant checkpoint, use_reentrant=True):
//  * Random state: the forward records the default CPU generator's state (and the CUDA device's
//    when the input is on CUDA); the recomputation runs with that state restored, so dropout masks
//    and Gumbel noise are redrawn identically, and afterwards the generators are put back where
//    they were, so the caller's random stream is the same as without checkpointing.
//  * CUDA autocast: the forward's enabled flag and dtype are re-entered for the recomputation
//    (backward may run on another thread, where the caller's autocast state does not hold).
//  * Parameter gradients: backward calls torch::autograd::backward on the recomputed block, which
//    accumulates into every parameter's .grad, as loss.backward() does. Therefore
//    torch::autograd::grad(outputs, inputs) through a checkpointed block is NOT supported: it
//    would still write .grad of the block's parameters, and gradients w.r.t. parameters (or
//    create_graph / double backward) do not come back from it. Use backward().
//  * Side effects: while a block is recomputed, in_block_recompute() is true on that thread; a
//    block that counts things (the MoE's expert-usage counts, moe.cpp) skips counting then, so a
//    checkpointed step records exactly what a plain step records.
//  * The block must be a pure function of its input, its parameters and the random state, must
//    not modify its input in place, and must outlive the backward pass (the function is held by
//    the graph until then).
#pragma once
#include <torch/torch.h>

#include <functional>

namespace rbk {

// One block: x (B, n, D) -> y (B, n, D), any dtype (the residual included, if the block has one).
using BlockFunction = std::function<torch::Tensor(const torch::Tensor&)>;

// y = block(x), checkpointed: only x is kept for backward. Where grad mode is off (evaluation),
// it is block(x). x that does not require grad is passed on as a fresh leaf that does, so the
// block's parameters still get their gradients.
torch::Tensor checkpoint_block(const BlockFunction& block, const torch::Tensor& x);

// The models' block loops call this: checkpoint_block when `checkpoint` is set, block(x) otherwise.
inline torch::Tensor run_block(const BlockFunction& block, const torch::Tensor& x, bool checkpoint) {
  return checkpoint ? checkpoint_block(block, x) : block(x);
}

// True on this thread while checkpoint_block recomputes a block in backward.
bool in_block_recompute();

}  // namespace rbk
