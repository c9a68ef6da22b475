// The LM head's loss with the fused softmax cross-entropy kernel (issue 25; kernel and numerics:
// rbk/kernels/softmax_xent_launch.h). An alternative to language_model_loss's plain path that
// exp_lm_throughput measures (`loss_kernel`); the trainer does not use it yet.
#pragma once
#include "rbk/language_model.h"

#include <torch/torch.h>

#include <utility>

namespace rbk {

// Whether fused_linear_cross_entropy takes the fused kernel for these logits (CUDA bfloat16 or
// float32, in a build with the CUDA kernels).
bool fused_softmax_cross_entropy_applies(const torch::Tensor& logits);

// The fused kernel's reference: per-row losses -log softmax(logits)[target] and the gradient
// (softmax - onehot(target)) x grad_scale, from aten ops in at least float32 (float64 for float64
// logits); the gradient in the logits' dtype. logits (rows, cols), targets (rows,) int64 in range.
std::pair<torch::Tensor, torch::Tensor> softmax_xent_reference(const torch::Tensor& logits, const torch::Tensor& targets,
                                                               double grad_scale);

// How far a softmax cross-entropy output (row_loss, grad) is from the float64 reference of
// (logits, targets, grad_scale), all moved to the CPU: the largest loss error, and by how much the
// gradient's error exceeds its bound |ref| x rel + 2e-5 x grad_scale (fp32 rounding of p, plus rel
// for one rounding to the output dtype: 2^-8 for bfloat16, else 0); <= 0 is within the bound.
// The fused kernel's tests and bench_softmax_xent hold the loss to kSoftmaxXentLossTol (the row sum
// of ~cols / threads fp32 terms per thread, then a tree: ~1e-5 in log s).
constexpr double kSoftmaxXentLossTol = 1e-4;
struct SoftmaxXentErrors {
  double loss = 0.0;              // max |row_loss - fp64|
  double gradient_excess = 0.0;   // max (|grad - fp64| - bound)
  double gradient_max_abs = 0.0;  // max |grad - fp64|
};
SoftmaxXentErrors softmax_xent_errors_vs_fp64(const torch::Tensor& logits, const torch::Tensor& targets, double grad_scale,
                                              const torch::Tensor& row_loss, const torch::Tensor& grad);

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
