// Chunked LM head + cross-entropy and the trainer's loss (see lm_loss.h; issue 17).
#include "rbk/lm_loss.h"
#include "rbk/torch_compat.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

#include <algorithm>
#include <cmath>

namespace rbk {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The operands in the compute dtype, with the bias folded into the GEMM: fa = [F | 1] and
// wa = [W | b], so that fa wa^T = F W^T + b and G^T fa = [dW | db] come out of one GEMM each,
// with no pass to broadcast the bias into the logits or to sum G's rows. extra_column (recompute
// schedule) appends one more column to each: fa gets -lse, wa gets 1, so the GEMM yields the
// log-probabilities directly.
struct HeadOperands {
  Tensor fa;  // (T, K)
  Tensor wa;  // (V, K)
  int64_t d = 0;
};

HeadOperands make_operands(const Tensor& features, const Tensor& weight, const Tensor& bias, torch::ScalarType ct,
                           const Tensor& extra_feature_column = Tensor()) {
  const int64_t T = features.size(0), D = features.size(1), V = weight.size(0);
  const int64_t K = D + (bias.defined() ? 1 : 0) + (extra_feature_column.defined() ? 1 : 0);
  HeadOperands o;
  o.d = D;
  if (K == D) {
    o.fa = features.to(ct).contiguous();
    o.wa = weight.to(ct).contiguous();
    return o;
  }
  const auto opt = features.options().dtype(ct);
  o.fa = torch::empty({T, K}, opt);
  o.wa = torch::empty({V, K}, opt);
  o.fa.narrow(1, 0, D).copy_(features);
  o.wa.narrow(1, 0, D).copy_(weight);
  int64_t col = D;
  if (bias.defined()) {
    o.fa.select(1, col).fill_(1.0);
    o.wa.select(1, col).copy_(bias);
    ++col;
  }
  if (extra_feature_column.defined()) {
    o.fa.select(1, col).copy_(extra_feature_column);
    o.wa.select(1, col).fill_(1.0);
  }
  return o;
}

torch::ScalarType compute_dtype(const Tensor& f, const Tensor& w, const Tensor& b) {
  const bool fp64 = f.scalar_type() == torch::kDouble || w.scalar_type() == torch::kDouble ||
                    (b.defined() && b.scalar_type() == torch::kDouble);
  return fp64 ? torch::kDouble : torch::kFloat;
}

// Accumulators of the unscaled gradient sum over tokens of (softmax - onehot) terms.
struct HeadGrads {
  Tensor df;   // (T, D) or undefined
  Tensor dwa;  // (V, K) = [dW | db | unused] or undefined
};

// G (c x V) holds exp(log-probabilities) - onehot for tokens [s, s + c): accumulate its gradients.
void accumulate_chunk_grads(const Tensor& g, const HeadOperands& op, int64_t s, HeadGrads& acc) {
  const int64_t c = g.size(0);
  if (acc.df.defined()) {
    auto df_rows = acc.df.narrow(0, s, c);
    at::mm_out(df_rows, g, op.wa.narrow(1, 0, op.d));
  }
  if (acc.dwa.defined()) acc.dwa.addmm_(g.t(), op.fa.narrow(0, s, c));
}

// G <- exp(G) - onehot(targets), in place (G held log-probabilities).
void softmax_minus_onehot_(Tensor& g, const Tensor& targets_col, const Tensor& minus_ones) {
  g.exp_();
  g.scatter_add_(1, targets_col, minus_ones.narrow(0, 0, g.size(0)));
}

// nll_t = -log p_t[y_t] read from an fp32 softmax loses its precision once p_t[y_t] leaves the
// normal range (nll > ~87 nats; > ~708 in fp64) and is inf once it underflows to 0. Tokens past a
// safe margin below that (1e-30, i.e. nll > 69 nats; 1e-290 in fp64) get their nll recomputed
// exactly from their own row of logits through log_softmax. The gradient needs no repair: there
// p_t is exact up to its absolute rounding, as in the plain path's exp(log_softmax).
void fix_underflowed_nll(Tensor& nll, const HeadOperands& op, const Tensor& y) {
  const double smallest_safe_p = nll.scalar_type() == torch::kDouble ? 1e-290 : 1e-30;
  const auto rows = (nll > -std::log(smallest_safe_p)).nonzero().squeeze(1);
  if (rows.numel() == 0) return;
  const auto logp = torch::log_softmax(torch::mm(op.fa.index_select(0, rows), op.wa.t()), 1);
  nll.index_copy_(0, rows, logp.gather(1, y.index_select(0, rows).unsqueeze(1)).squeeze(1).neg());
}

struct Flags {
  bool df = false, dw = false, db = false;
  bool any() const { return df || dw || db; }
};

HeadGrads make_accumulators(const Flags& need, int64_t T, const HeadOperands& op) {
  HeadGrads acc;
  const auto opt = op.fa.options();
  if (need.df) acc.df = torch::empty({T, op.d}, opt);
  if (need.dw || need.db) acc.dwa = torch::zeros({op.wa.size(0), op.wa.size(1)}, opt);
  return acc;
}

// Splits accumulated gradients into (dF, dW, db) scaled by coef (0-dim), in the inputs' dtypes.
variable_list finish_grads(const HeadGrads& acc, const Flags& need, const Tensor& coef, int64_t D,
                           torch::ScalarType f_dtype, torch::ScalarType w_dtype, torch::ScalarType b_dtype) {
  Tensor gf, gw, gb;
  if (need.df) gf = (acc.df * coef).to(f_dtype);
  if (need.dw) gw = (acc.dwa.narrow(1, 0, D) * coef).to(w_dtype);
  if (need.db) gb = (acc.dwa.select(1, D) * coef).to(b_dtype);
  return {gf, gw, gb};
}

class ChunkedLinearCrossEntropy : public torch::autograd::Function<ChunkedLinearCrossEntropy> {
 public:
  // Returns the reduced loss. Arguments after targets are plain values (no gradient).
  // bias_or_empty: the bias, or a 0-element placeholder when has_bias is false (a custom Function
  // of LibTorch 1.13 cannot take an undefined tensor argument).
  static variable_list forward(AutogradContext* ctx, const Tensor& features, const Tensor& weight,
                               const Tensor& bias_or_empty, const Tensor& targets, int64_t chunk, bool mean,
                               bool recompute, bool has_bias, bool need_df, bool need_dw, bool need_db) {
    const Tensor bias = has_bias ? bias_or_empty : Tensor();
    // Autocast would turn the chunk GEMMs into bf16 ones; the logits are formed in fp32 here.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const int64_t T = features.size(0), V = weight.size(0);
    const auto ct = compute_dtype(features, weight, bias);
    const Flags need{need_df, need_dw, need_db && bias.defined()};
    const bool grad_now = need.any() && !recompute;
    // On the CPU the elementwise passes over the (chunk x V) block cost as much as a GEMM: there the
    // in-forward schedule takes softmax in place (one exp per logit; log_softmax then exp would be
    // two) and reads nll_t = -log p_t[y_t], repairing the rare underflowed rows afterwards (one
    // host read, free on the CPU). On CUDA, where that read would be a device sync per step, it
    // takes log_softmax + exp.
    const bool softmax_direct = grad_now && !features.is_cuda();
    const auto op = make_operands(features, weight, bias, ct);
    const auto y = targets.contiguous();
    const auto opt = op.fa.options();
    const int64_t rows = std::min(chunk, T);
    auto block = torch::empty({rows, V}, opt);  // the only logits ever held
    auto nll = torch::empty({T}, opt);
    auto minus_ones = torch::full({rows, 1}, -1.0, opt);
    auto acc = grad_now ? make_accumulators(need, T, op) : HeadGrads{};
    // Recompute schedule: lse_t = logit_t[y_t] + nll_t is kept instead of the logits; the target
    // logit is read from the GEMM's own output so that backward's logits - lse match it exactly.
    auto target_logit = recompute && need.any() ? torch::empty({T}, opt) : Tensor();
    for (int64_t s = 0; s < T; s += chunk) {
      const int64_t c = std::min(chunk, T - s);
      auto g = block.narrow(0, 0, c);
      at::mm_out(g, op.fa.narrow(0, s, c), op.wa.t());
      const auto y_col = y.narrow(0, s, c).unsqueeze(1);
      if (target_logit.defined()) target_logit.narrow(0, s, c).copy_(g.gather(1, y_col).squeeze(1));
      auto nll_rows = nll.narrow(0, s, c);
      if (softmax_direct) {
        at::_softmax_out(g, g, 1, false);  // in place: the kernel reads and writes row by row
        at::log_out(nll_rows, g.gather(1, y_col).squeeze(1));
        nll_rows.neg_();
        g.scatter_add_(1, y_col, minus_ones.narrow(0, 0, c));
        accumulate_chunk_grads(g, op, s, acc);
        continue;
      }
      at::_log_softmax_out(g, g, 1, false);  // in place, as above
      at::neg_out(nll_rows, g.gather(1, y_col).squeeze(1));
      if (grad_now) {
        softmax_minus_onehot_(g, y_col, minus_ones);
        accumulate_chunk_grads(g, op, s, acc);
      }
    }
    if (softmax_direct) fix_underflowed_nll(nll, op, y);
    auto loss = nll.sum();
    if (mean) loss.div_(static_cast<double>(T));
    ctx->saved_data["mean"] = mean;
    ctx->saved_data["recompute"] = recompute;
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["tokens"] = T;
    ctx->saved_data["d"] = op.d;
    ctx->saved_data["need"] = c10::List<bool>({need.df, need.dw, need.db});
    ctx->saved_data["dtypes"] = c10::List<int64_t>({static_cast<int64_t>(features.scalar_type()),
                                                    static_cast<int64_t>(weight.scalar_type()),
                                                    static_cast<int64_t>(bias.defined() ? bias.scalar_type() : ct),
                                                    static_cast<int64_t>(ct)});
    if (!need.any()) return {loss};
    if (recompute)
      ctx->save_for_backward({features, weight, bias_or_empty, y, target_logit + nll});
    else
      ctx->save_for_backward({acc.df, acc.dwa});
    return {loss};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const bool mean = ctx->saved_data["mean"].toBool();
    const bool recompute = ctx->saved_data["recompute"].toBool();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const auto need_list = ctx->saved_data["need"].toBoolList();
    const Flags need{need_list.get(0), need_list.get(1), need_list.get(2)};
    const auto dtypes = ctx->saved_data["dtypes"].toIntList();
    const auto f_dtype = static_cast<torch::ScalarType>(dtypes.get(0));
    const auto w_dtype = static_cast<torch::ScalarType>(dtypes.get(1));
    const auto b_dtype = static_cast<torch::ScalarType>(dtypes.get(2));
    const auto saved = ctx->get_saved_variables();
    variable_list none(11);  // one per forward argument after ctx
    if (!need.any()) return none;

    const auto ct = static_cast<torch::ScalarType>(dtypes.get(3));
    const int64_t T = ctx->saved_data["tokens"].toInt();
    const int64_t D = ctx->saved_data["d"].toInt();
    HeadGrads acc;
    if (!recompute) {
      acc = {saved[0], saved[1]};
    } else {
      const auto &features = saved[0], &weight = saved[1], &y = saved[3], &lse = saved[4];
      const Tensor bias = saved[2].numel() > 0 ? saved[2] : Tensor();  // the placeholder is empty
      const auto op = make_operands(features, weight, bias, ct, -lse);
      acc = make_accumulators(need, T, op);
      const int64_t rows = std::min(chunk, T);
      auto block = torch::empty({rows, weight.size(0)}, op.fa.options());
      auto minus_ones = torch::full({rows, 1}, -1.0, op.fa.options());
      for (int64_t s = 0; s < T; s += chunk) {
        const int64_t c = std::min(chunk, T - s);
        auto g = block.narrow(0, 0, c);
        at::mm_out(g, op.fa.narrow(0, s, c), op.wa.t());  // log-probabilities: the -lse column is in op
        softmax_minus_onehot_(g, y.narrow(0, s, c).unsqueeze(1), minus_ones);
        accumulate_chunk_grads(g, op, s, acc);
      }
    }
    auto coef = grad_outputs[0].to(ct);
    if (mean) coef = coef / static_cast<double>(T);
    auto g3 = finish_grads(acc, need, coef, D, f_dtype, w_dtype, b_dtype);
    variable_list out(11);
    out[0] = g3[0];
    out[1] = g3[1];
    out[2] = g3[2];
    return out;
  }
};

}  // namespace

torch::Tensor chunked_linear_cross_entropy(const torch::Tensor& features, const torch::Tensor& weight,
                                           const torch::Tensor& bias, const torch::Tensor& targets,
                                           int64_t chunk_tokens, LossReduction reduction, HeadGradient schedule) {
  TORCH_CHECK(features.dim() == 2, "chunked_linear_cross_entropy: features must be (T, D), got ", features.sizes());
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == features.size(1),
              "chunked_linear_cross_entropy: weight must be (V, D) with D = ", features.size(1), ", got ", weight.sizes());
  TORCH_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)),
              "chunked_linear_cross_entropy: bias must be (V) with V = ", weight.size(0), ", got ", bias.sizes());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == features.size(0) && targets.scalar_type() == torch::kLong,
              "chunked_linear_cross_entropy: targets must be (T) int64 with T = ", features.size(0));
  TORCH_CHECK(features.size(0) > 0, "chunked_linear_cross_entropy: no tokens");
  TORCH_CHECK(chunk_tokens >= 1, "chunked_linear_cross_entropy: chunk_tokens must be >= 1, got ", chunk_tokens);
  const bool grad = torch::GradMode::is_enabled();
  const bool need_df = grad && features.requires_grad();
  const bool need_dw = grad && weight.requires_grad();
  const bool need_db = grad && bias.defined() && bias.requires_grad();
  const auto bias_or_empty = bias.defined() ? bias : torch::empty({0}, weight.options());
  return ChunkedLinearCrossEntropy::apply(features, weight, bias_or_empty, targets, chunk_tokens,
                                          reduction == LossReduction::Mean, schedule == HeadGradient::RecomputeInBackward,
                                          bias.defined(), need_df, need_dw, need_db)[0];
}

torch::Tensor language_model_loss(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, bool bf16,
                                  int64_t chunk_tokens) {
  // Forward and loss under autocast, backward outside it (as torch.autocast prescribes).
  AutocastGuard autocast(bf16);
  const int64_t V = model.config().vocab_size;
  if (chunk_tokens <= 0) {
    auto logits = model.forward(x.contiguous());  // (B, n, V) float32 | bfloat16
    return torch::nn::functional::cross_entropy(logits.reshape({-1, V}).to(torch::kFloat), y.reshape({-1}));
  }
  const auto h = model.forward_features(x.contiguous());  // (B, n, D)
  return chunked_linear_cross_entropy(h.reshape({-1, h.size(-1)}), model.head_weight(), model.head_bias(),
                                      y.reshape({-1}), chunk_tokens)
      .to(torch::kFloat);
}

torch::Tensor language_model_loss(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, bool bf16) {
  return language_model_loss(model, x, y, bf16, 0);
}

torch::Tensor language_model_nll_sum(LanguageModel& model, const torch::Tensor& x, const torch::Tensor& y, bool bf16,
                                     int64_t chunk_tokens) {
  AutocastGuard autocast(bf16);
  const int64_t V = model.config().vocab_size;
  if (chunk_tokens <= 0) {
    auto logits = model.forward(x.contiguous()).to(torch::kFloat32);
    return torch::nn::functional::cross_entropy(logits.reshape({-1, V}), y.reshape({-1}),
                                                torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  }
  const auto h = model.forward_features(x.contiguous());
  return chunked_linear_cross_entropy(h.reshape({-1, h.size(-1)}), model.head_weight(), model.head_bias(),
                                      y.reshape({-1}), chunk_tokens, LossReduction::Sum)
      .to(torch::kFloat);
}

}  // namespace rbk
