// The LM head's loss with the fused softmax cross-entropy kernel (issue 25; kernel and numerics:
// rbk/kernels/softmax_xent_launch.h). An alternative to language_model_loss's plain path that
// exp_lm_throughput measures (`loss_kernel`); the trainer does not use it yet.
#pragma once
#include "rbk/language_model.h"

#include <torch/torch.h>

namespace rbk {

// Whether softmax_cross_entropy_mean takes the fused kernel for these logits (CUDA bfloat16 or
// float32, in a build with the CUDA kernels).
bool fused_softmax_cross_entropy_applies(const torch::Tensor& logits);

// Mean over rows of -log softmax(logits)[targets], float32, differentiable in logits. logits:
// (rows, V); targets: (rows,) int64. Fused: the forward computes the loss and the gradient in one
// kernel and keeps the gradient (in the logits' dtype), so the backward only scales it by the
// incoming gradient. Elsewhere: torch's cross_entropy on the logits cast to float32 (the plain path).
torch::Tensor softmax_cross_entropy_mean(const torch::Tensor& logits, const torch::Tensor& targets);

// language_model_loss (lm_loss.h) with chunk_tokens <= 0, its cross-entropy replaced by
// softmax_cross_entropy_mean: the model's logits under bf16 autocast where asked, then the fused loss.
torch::Tensor language_model_loss_fused(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, bool bf16);

// The one place a step picks its loss: language_model_loss (fused = false) or
// language_model_loss_fused (fused = true; an error unless chunk_tokens <= 0).
torch::Tensor language_model_loss_with(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, bool bf16,
                                       int64_t chunk_tokens, bool fused);

}  // namespace rbk
