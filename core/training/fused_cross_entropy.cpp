// fused_linear_cross_entropy and language_model_loss_fused (fused_cross_entropy.h).
#include "rbk/fused_cross_entropy.h"

#include "rbk/bias_fold.h"
#include "rbk/lm_loss.h"
#include "rbk/torch_compat.h"

#if defined(RBK_WITH_CUDA_KERNELS)
#include "rbk/cuda_glue/softmax_xent_cuda.h"
#endif

#include <c10/core/impl/LocalDispatchKeySet.h>

#include <cmath>
#include <utility>

namespace rbk {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// {row_loss (rows,) float32 or float64, gradient of grad_scale x sum(row_loss) in the logits' dtype}:
// the fused kernel where it applies, else softmax_xent_reference.
std::pair<Tensor, Tensor> softmax_xent(const Tensor& logits, const Tensor& targets, double grad_scale) {
#if defined(RBK_WITH_CUDA_KERNELS)
  if (fused_softmax_cross_entropy_applies(logits)) return cuda::softmax_xent_cuda(logits, targets, grad_scale);
#endif
  return softmax_xent_reference(logits, targets, grad_scale);
}

// Inputs: features (T, D), weight (V, D), bias (V) or empty, targets (T); the bool flags say which
// gradients to form. The logits and their gradient G live only inside forward; forward keeps
// dF = G W, dW = G^T F and db = sum_rows(G) (each already / T), and backward scales them by the
// incoming gradient: the scaling touches (T + V) x D + V numbers instead of T x V.
// A bias is folded into the GEMMs as one more column: logits = [F 1 0] [W b 0]^T, and the weight
// gradient's GEMM G^T [F 1 0] then has db as its column D. Summing G's rows separately was one more
// full pass over G (T x V): 1.1 ms of a 23 ms step at T = 32,768, V = 50,000 on the H100 (NOTES.md,
// session 29). The zero columns pad the rows to a multiple of 8 (16-byte rows for bf16 GEMMs); they
// cost ~3 % more in the two GEMMs that see them at D = 256. db is then rounded to the compute
// dtype, like dW (under bf16, as the plain autocast head's bias gradient is).
struct FusedLinearCrossEntropy : public torch::autograd::Function<FusedLinearCrossEntropy> {
  static Tensor forward(AutogradContext* ctx, const Tensor& features, const Tensor& weight, const Tensor& bias,
                        const Tensor& targets, bool bf16, bool need_df, bool need_dw, bool need_db) {
    // The casts are explicit here; autocast must not re-cast inside (as in lm_loss.cpp).
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    // bf16 is CUDA autocast's: elsewhere the head stays in the inputs' precision, as in lm_loss.h.
    const bool fp64 = features.scalar_type() == torch::kDouble || weight.scalar_type() == torch::kDouble;
    const auto compute = bf16 && features.is_cuda() ? torch::kBFloat16 : (fp64 ? torch::kDouble : torch::kFloat);
    const int64_t T = features.size(0), D = features.size(1);
    const bool has_bias = bias.numel() > 0;
    Tensor f = features.to(compute), w = weight.to(compute);
    if (has_bias) {
      f = append_ones_column(f);
      w = append_bias_column(w, bias.to(compute), with_bias_column(D));
    }
    Tensor grad, row_loss;
    {
      const Tensor logits = torch::mm(f, w.t());
      std::tie(row_loss, grad) = softmax_xent(logits, targets, 1.0 / static_cast<double>(T));
    }
    std::vector<Tensor> kept;
    if (need_df) kept.push_back(torch::mm(grad, w.narrow(1, 0, D)).to(features.scalar_type()));
    if (need_dw || need_db) {
      const Tensor dw_folded = torch::mm(grad.t(), f);  // (V, D) or (V, with_bias_column(D)) with db at column D
      if (need_dw) kept.push_back(dw_folded.narrow(1, 0, D).contiguous().to(weight.scalar_type()));
      if (need_db) kept.push_back(dw_folded.select(1, D).contiguous().to(bias.scalar_type()));
    }
    ctx->saved_data["need"] = c10::List<bool>({need_df, need_dw, need_db});
    ctx->save_for_backward(kept);
    return row_loss.mean();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto need = ctx->saved_data["need"].toBoolList();
    const auto kept = ctx->get_saved_variables();
    variable_list out(8);  // one per forward argument; the last five take none
    size_t next = 0;
    for (size_t i = 0; i < 3; ++i) {
      if (!need.get(i)) continue;
      const Tensor& g = kept[next++];
      out[i] = g * grad_outputs[0].to(g.scalar_type());
    }
    return out;
  }
};

}  // namespace

std::pair<Tensor, Tensor> softmax_xent_reference(const Tensor& logits, const Tensor& targets, double grad_scale) {
  const auto wide = logits.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const auto log_p = torch::log_softmax(logits.to(wide), 1);
  const auto y_col = targets.unsqueeze(1);
  auto row_loss = log_p.gather(1, y_col).squeeze(1).neg();
  auto grad = log_p.exp();
  grad.scatter_add_(1, y_col, -torch::ones({logits.size(0), 1}, grad.options()));
  return {row_loss, grad.mul_(grad_scale).to(logits.scalar_type())};
}

SoftmaxXentErrors softmax_xent_errors_vs_fp64(const Tensor& logits, const Tensor& targets, double grad_scale,
                                              const Tensor& row_loss, const Tensor& grad) {
  const auto cpu64 = [](const Tensor& t) { return t.detach().to(torch::kCPU, torch::kDouble); };
  const auto [ref_loss, ref_grad] = softmax_xent_reference(cpu64(logits), targets.to(torch::kCPU), grad_scale);
  const double rel = grad.scalar_type() == torch::kBFloat16 ? std::ldexp(1.0, -8) : 0.0;
  const auto diff = (cpu64(grad) - ref_grad).abs();
  SoftmaxXentErrors e;
  e.loss = (cpu64(row_loss) - ref_loss).abs().max().item<double>();
  e.gradient_excess = (diff - (ref_grad.abs() * rel + 2e-5 * grad_scale)).max().item<double>();
  e.gradient_max_abs = diff.max().item<double>();
  return e;
}

bool fused_softmax_cross_entropy_applies(const Tensor& logits) {
#if defined(RBK_WITH_CUDA_KERNELS)
  return logits.is_cuda() && logits.dim() == 2 &&
         (logits.scalar_type() == torch::kBFloat16 || logits.scalar_type() == torch::kFloat);
#else
  (void)logits;
  return false;
#endif
}

Tensor fused_linear_cross_entropy(const Tensor& features, const Tensor& weight, const Tensor& bias,
                                  const Tensor& targets, bool bf16) {
  TORCH_CHECK(features.dim() == 2 && weight.dim() == 2 && weight.size(1) == features.size(1),
              "fused_linear_cross_entropy: features must be (T, D) and weight (V, D), got ", features.sizes(), " and ",
              weight.sizes());
  TORCH_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)),
              "fused_linear_cross_entropy: bias must be (V) with V = ", weight.size(0), ", got ", bias.sizes());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == features.size(0) && targets.scalar_type() == torch::kInt64,
              "fused_linear_cross_entropy: targets must be (T) int64 with T = ", features.size(0), ", got ",
              targets.sizes(), " ", targets.scalar_type());
  TORCH_CHECK(features.size(0) > 0, "fused_linear_cross_entropy: no tokens");
  const bool grad = torch::GradMode::is_enabled();
  return FusedLinearCrossEntropy::apply(features, weight, bias.defined() ? bias : torch::empty({0}, weight.options()),
                                        targets, bf16, grad && features.requires_grad(), grad && weight.requires_grad(),
                                        grad && bias.defined() && bias.requires_grad());
}

Tensor language_model_loss_fused(LanguageModel& model, const Tensor& x, const Tensor& y, bool bf16) {
  Tensor h;
  {
    AutocastGuard autocast(bf16);
    h = model.forward_features(x.contiguous());  // (B, n, D)
  }
  // float32 whatever the model's dtype, as language_model_loss returns it.
  return fused_linear_cross_entropy(h.reshape({-1, h.size(-1)}), model.head_weight(), model.head_bias(), y.reshape({-1}),
                                    bf16)
      .to(torch::kFloat);
}

Tensor language_model_loss_with(LanguageModel& model, const Tensor& x, const Tensor& y, bool bf16, int64_t chunk_tokens,
                                bool fused) {
  if (!fused) return language_model_loss(model, x, y, bf16, chunk_tokens);
  TORCH_CHECK(chunk_tokens <= 0, "the fused loss takes the full logits; got loss_chunk_tokens = ", chunk_tokens);
  return language_model_loss_fused(model, x, y, bf16);
}

}  // namespace rbk
