// The language-model head and its cross-entropy, computed in chunks of tokens (issue 17: "the head
// and the loss must not materialise the logits"). The plain path forms the (B n x V) logits, their
// log-softmax and its gradient: at the PoC size (V = 23,909, B n = 2,560) that is 61M elements per
// tensor and about three quarters of a CPU training step. The chunked path walks the tokens in
// chunks of `chunk_tokens` rows and never holds more than one (chunk x V) block of logits:
//   forward, per chunk:  L = F_c W^T + b (fp32, or fp64 for fp64 inputs); L <- log_softmax(L) in
//                        place; nll_t = -L[t, y_t]; the loss is sum(nll) (/ T for the mean).
//   gradient, per chunk: G = exp(L) - onehot(y) (softmax minus one-hot, in place);
//                        dF_c = G W, dW += G^T F_c, db += sum_rows(G); all scaled once by
//                        grad_output (/ T for the mean).
// Two schedules for the gradient (HeadGradient): InForward forms it while the chunk's
// log-softmax is in cache and keeps dF (T x D), dW (V x D), db (V) until backward, which only
// scales them; RecomputeInBackward keeps the inputs and the per-token log-sum-exp and recomputes
// each chunk's logits in backward (one more (T x D x V) GEMM). Neither holds a (T x V) tensor.
//
// Numerics: the chunk's logits and every accumulator are fp32 (fp64 when any input is fp64),
// whatever the inputs' dtype; under CUDA bf16 autocast the features arrive in bf16 and are cast
// up, as the plain path casts its logits to fp32 (the GEMM itself is then fp32, slightly more
// precise than autocast's bf16 GEMM). Autocast is switched off inside. Results equal the plain path
// up to floating-point summation order (tests/lm/test_lm_loss.cpp states the tolerances).
#pragma once
#include "rbk/language_model.h"

#include <torch/torch.h>

namespace rbk {

// Default tokens per chunk. A chunk's fp32 logits take chunk x V x 4 bytes: 128 rows at the PoC
// vocabulary (23,909) are 12.2 MB, inside this machine's 32 MB L3 beside the head weight and its
// gradient (6.1 MB each); fewer rows make the dW += G^T F_c GEMM (inner size = chunk) inefficient.
// experiments/head_loss, PoC size (T = 2,560, D = 64), CPU, head + loss forward + backward,
// in-forward schedule: 1 thread 0.63 / 0.48 / 0.57 s at 64 / 128 / 256 rows (plain 5.2 s);
// 2 threads 0.59 / 0.38 / 0.33 / 0.33 s at 64 / 128 / 256 / 512 (plain 1.80 s). 128 is within
// 15% of the best in both at half the block of 256.
constexpr int64_t kDefaultLossChunkTokens = 128;

enum class LossReduction { Mean, Sum };
enum class HeadGradient { InForward, RecomputeInBackward };

// Cross-entropy of the logits features weight^T + bias against targets, chunk_tokens tokens at a
// time. features (T, D) float/bf16/double; weight (V, D); bias (V) or an undefined tensor; targets
// (T) int64 in [0, V). Differentiable in features, weight and bias (first order). Returns a 0-dim
// tensor: fp64 when any input is fp64, else fp32. chunk_tokens >= 1 (>= T: one chunk).
torch::Tensor chunked_linear_cross_entropy(const torch::Tensor& features, const torch::Tensor& weight,
                                           const torch::Tensor& bias, const torch::Tensor& targets,
                                           int64_t chunk_tokens, LossReduction reduction = LossReduction::Mean,
                                           HeadGradient schedule = HeadGradient::InForward);

// The training loss of one batch, as the trainer computes it: forward under CUDA autocast when
// bf16, mean cross-entropy in fp32. x, y: (B, n) int64 on the model's device (the caller transposes
// for the upstream layout). Returns a 0-dim float32 tensor on that device.
// chunk_tokens <= 0: the plain path (full logits, cast to fp32, torch cross_entropy);
// chunk_tokens > 0: forward_features + chunked_linear_cross_entropy over the model's head.
torch::Tensor language_model_loss(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, bool bf16,
                                  int64_t chunk_tokens);
// The plain path (chunk_tokens = 0); also declared in trainer.h, where its callers find it.
torch::Tensor language_model_loss(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, bool bf16);

// Summed NLL (nats) of one batch for evaluation: the same two paths, reduction sum, fp32 0-dim.
torch::Tensor language_model_nll_sum(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, bool bf16,
                                     int64_t chunk_tokens);

}  // namespace rbk
