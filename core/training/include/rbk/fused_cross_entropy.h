// The LM head's loss with the fused softmax cross-entropy kernel (issue 25; kernel and numerics:
// rbk/kernels/softmax_xent_launch.h). An alternative to language_model_loss's plain path that
// exp_lm_throughput measures (`loss_kernel`); the trainer does not use it yet.
#pragma once
#include "rbk/language_model.h"

#include <torch/torch.h>

namespace rbk {

// Whether fused_linear_cross_entropy takes the fused kernel for these logits (CUDA bfloat16 or
// float32, in a build with the CUDA kernels).
bool fused_softmax_cross_entropy_applies(const torch::Tensor& logits);

// Mean cross-entropy of logits = features weight^T + bias against targets, differentiable in
// features, weight and bias. features (T, D) and weight (V, D) in any float dtype; bias (V) or
// undefined; targets (T) int64. bf16 with CUDA inputs: the head's GEMMs in bfloat16, as CUDA autocast
// computes them; otherwise float32 (float64 for float64 inputs). The logits go through the fused
// softmax cross-entropy kernel (CUDA bfloat16 / float32; elsewhere the same quantities from aten
// ops, so the wiring is testable on the CPU), which gives the loss and its gradient G in one pass.
// Forward then forms dF = G W, dW = G^T F and db and frees the logits and G; backward only scales
// those three by the incoming gradient (the schedule of lm_loss.h's InForward, without chunks).
// Returns a 0-dim float32 tensor (float64 for float64 inputs off the fused kernel).
torch::Tensor fused_linear_cross_entropy(const torch::Tensor& features, const torch::Tensor& weight,
                                         const torch::Tensor& bias, const torch::Tensor& targets, bool bf16);

// language_model_loss (lm_loss.h) with chunk_tokens <= 0, its head and cross-entropy replaced by
// fused_linear_cross_entropy: the model's forward_features under bf16 autocast where asked, then
// the fused head and loss over the model's head_weight / head_bias.
torch::Tensor language_model_loss_fused(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, bool bf16);

// The one place a step picks its loss: language_model_loss (fused = false) or
// language_model_loss_fused (fused = true; an error unless chunk_tokens <= 0).
torch::Tensor language_model_loss_with(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, bool bf16,
                                       int64_t chunk_tokens, bool fused);

}  // namespace rbk
