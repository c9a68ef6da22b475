// softmax_cross_entropy_mean and language_model_loss_fused (fused_cross_entropy.h).
#include "rbk/fused_cross_entropy.h"

#include "rbk/lm_loss.h"
#include "rbk/torch_compat.h"

#if defined(RBK_WITH_CUDA_KERNELS)
#include "rbk/cuda_glue/softmax_xent_cuda.h"
#endif

namespace rbk {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#if defined(RBK_WITH_CUDA_KERNELS)
struct FusedSoftmaxCrossEntropy : public torch::autograd::Function<FusedSoftmaxCrossEntropy> {
  static Tensor forward(AutogradContext* ctx, const Tensor& logits, const Tensor& targets) {
    const int64_t rows = logits.size(0);
    auto [row_loss, grad] = cuda::softmax_xent_cuda(logits, targets, rows > 0 ? 1.0 / static_cast<double>(rows) : 1.0);
    ctx->saved_data["grad"] = grad;  // an intermediate, neither an input nor the output
    return row_loss.mean();
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const Tensor grad = ctx->saved_data["grad"].toTensor();
    // grad_outputs[0] is the 0-dim dL/dloss (1 for loss.backward()): one scaling pass.
    return {grad * grad_outputs[0].to(grad.scalar_type()), Tensor()};
  }
};
#endif

}  // namespace

bool fused_softmax_cross_entropy_applies(const Tensor& logits) {
#if defined(RBK_WITH_CUDA_KERNELS)
  return logits.is_cuda() && logits.dim() == 2 &&
         (logits.scalar_type() == torch::kBFloat16 || logits.scalar_type() == torch::kFloat);
#else
  (void)logits;
  return false;
#endif
}

Tensor softmax_cross_entropy_mean(const Tensor& logits, const Tensor& targets) {
  TORCH_CHECK(logits.dim() == 2 && targets.dim() == 1 && targets.size(0) == logits.size(0),
              "softmax_cross_entropy_mean: logits must be (rows, V) and targets (rows,), got ", logits.sizes(), " and ",
              targets.sizes());
#if defined(RBK_WITH_CUDA_KERNELS)
  if (fused_softmax_cross_entropy_applies(logits)) return FusedSoftmaxCrossEntropy::apply(logits, targets);
#endif
  return torch::nn::functional::cross_entropy(logits.to(torch::kFloat), targets);
}

Tensor language_model_loss_fused(LanguageModel& model, const Tensor& x, const Tensor& y, bool bf16) {
  AutocastGuard autocast(bf16);
  const int64_t V = model.config().vocab_size;
  const auto logits = model.forward(x.contiguous());  // (B, n, V) float32 | bfloat16
  return softmax_cross_entropy_mean(logits.reshape({-1, V}), y.reshape({-1}));
}

Tensor language_model_loss_with(LanguageModel& model, const Tensor& x, const Tensor& y, bool bf16, int64_t chunk_tokens,
                                bool fused) {
  if (!fused) return language_model_loss(model, x, y, bf16, chunk_tokens);
  TORCH_CHECK(chunk_tokens <= 0, "the fused loss takes the full logits; got loss_chunk_tokens = ", chunk_tokens);
  return language_model_loss_fused(model, x, y, bf16);
}

}  // namespace rbk
