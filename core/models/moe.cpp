// Mixture-of-experts layer and its routers (see moe.h; upstream-audit §2.1, §3; claims C05, C09).
#include "rbk/moe.h"

#include "rbk/block_checkpoint.h"
#include "rbk/moe_grouped.h"

#include <cmath>
#include <stdexcept>
#include <vector>

namespace rbk {

std::string to_string(RouterKind r) {
  switch (r) {
    case RouterKind::LearnedTopK: return "learned_topk";
    case RouterKind::SwitchTop1: return "switch_top1";
    case RouterKind::GumbelHard: return "gumbel_hard";
    case RouterKind::ScatteringPhase: return "scattering_phase";
  }
  return "?";
}

RouterKind parse_router(const std::string& s) {
  if (s == "learned_topk") return RouterKind::LearnedTopK;
  if (s == "switch_top1") return RouterKind::SwitchTop1;
  if (s == "gumbel_hard") return RouterKind::GumbelHard;
  if (s == "scattering_phase") return RouterKind::ScatteringPhase;
  throw std::invalid_argument("router '" + s + "': expected learned_topk, switch_top1, gumbel_hard or scattering_phase");
}

std::string to_string(MoeDispatch d) {
  switch (d) {
    case MoeDispatch::Gather: return "gather";
    case MoeDispatch::Dense: return "dense";
    case MoeDispatch::Grouped: return "grouped";
  }
  return "?";
}

MoeDispatch parse_moe_dispatch(const std::string& s) {
  if (s == "gather") return MoeDispatch::Gather;
  if (s == "dense") return MoeDispatch::Dense;
  if (s == "grouped") return MoeDispatch::Grouped;
  throw std::invalid_argument("moe dispatch '" + s + "': expected gather, dense or grouped");
}

MoeImpl::MoeImpl(const MoeOptions& o) : options_(o) {
  if (o.num_experts < 1 || o.top_k < 1 || o.d_model < 1 || o.hidden_mult < 1)
    throw std::invalid_argument("MoE: num_experts, top_k, d_model, hidden_mult must be >= 1");
  if (o.router != RouterKind::ScatteringPhase) gate_ = register_module("gate", torch::nn::Linear(o.d_model, o.num_experts));
  up_ = register_module("up", torch::nn::ModuleList());
  down_ = register_module("down", torch::nn::ModuleList());
  for (int64_t e = 0; e < o.num_experts; ++e) {
    up_->push_back(torch::nn::Linear(o.d_model, o.hidden_mult * o.d_model));
    down_->push_back(torch::nn::Linear(o.hidden_mult * o.d_model, o.d_model));
  }
  drop_ = register_module("drop", torch::nn::Dropout(o.dropout));
  counts_ = torch::zeros({o.num_experts}, torch::kInt64);
}

torch::Tensor MoeImpl::expert_forward(int64_t e, const torch::Tensor& x) {
  auto h = torch::relu(up_[e]->as<torch::nn::Linear>()->forward(x));
  return down_[e]->as<torch::nn::Linear>()->forward(drop_->forward(h));
}

torch::Tensor MoeImpl::dispatch(const torch::Tensor& x, const torch::Tensor& idx, const torch::Tensor& w) {
  if (options_.dispatch == MoeDispatch::Grouped)
    return grouped_expert_mlp(x, idx, w, stack_experts(*this), options_.dropout, is_training());
  const int64_t T = x.size(0), E = options_.num_experts;
  // hit[e, t, j]: slot j of token t chose expert e. Expert e's rows are the tokens with a hit, in
  // ascending order, and each row's weight is the sum of its slots' weights for e (the scattering
  // router can give one token the same expert in both slots).
  const auto hit = idx.unsqueeze(0).eq(torch::arange(E, idx.options()).view({E, 1, 1}));  // (E, T, k)
  const auto member = hit.any(2);                                                        // (E, T)
  const auto weight = (w.unsqueeze(0) * hit.to(w.scalar_type())).sum(2);                 // (E, T)
  if (options_.dispatch == MoeDispatch::Dense) return dispatch_dense(x, weight);
  // The row counts are the layer's one host synchronisation (the experts' GEMMs need their sizes).
  const auto counts = member.sum(1).to(torch::kCPU);
  const int64_t* count = counts.data_ptr<int64_t>();
  // The members' positions e T + t in (E, T) order: a stable sort puts every member (key 0) first,
  // in that order, so the rows of expert e are the next count[e] positions.
  const auto order = std::get<1>(member.logical_not().reshape({-1}).to(torch::kInt32).sort(/*stable=*/true, 0, false));
  int64_t total = 0;
  for (int64_t e = 0; e < E; ++e) total += count[e];
  const auto pos = order.narrow(0, 0, total);
  const auto rows = pos.remainder(T);
  // One gather, each expert on its contiguous segment, one weighted scatter-add back: a gather, a
  // product and a scatter per layer instead of per expert (the ResNet-BK LM's GPU step is never
  // ahead of its host; measured no slower, a few % faster within the noise: NOTES.md, session 7).
  // A token's contributions (top-k, k > 1) are summed in expert order on the CPU; on CUDA by
  // atomic adds, in any order, which for two contributions gives the same sum.
  const auto xs = x.index_select(0, rows);
  std::vector<torch::Tensor> ys;
  int64_t offset = 0;
  for (int64_t e = 0; e < E; ++e) {
    if (count[e] == 0) continue;
    ys.push_back(expert_forward(e, xs.narrow(0, offset, count[e])));
    offset += count[e];
  }
  auto out = torch::zeros_like(x);
  if (ys.empty()) return out;
  const auto we = weight.reshape({-1}).index_select(0, pos).unsqueeze(1);
  // Under CUDA autocast the experts return bf16 while x (and out) may be fp32: index_add needs one
  // dtype, so the contributions are cast to the accumulator's (no-op in fp32).
  return out.index_add(0, rows, (torch::cat(ys) * we).to(out.scalar_type()));
}

torch::Tensor MoeImpl::dispatch_dense(const torch::Tensor& x, const torch::Tensor& weight) {
  const int64_t E = options_.num_experts;
  std::vector<torch::Tensor> w_up, b_up, w_down, b_down;
  for (int64_t e = 0; e < E; ++e) {
    const auto& up = up_[e]->as<torch::nn::Linear>();
    const auto& down = down_[e]->as<torch::nn::Linear>();
    w_up.push_back(up->weight);
    b_up.push_back(up->bias);
    w_down.push_back(down->weight);
    b_down.push_back(down->bias);
  }
  // (E, T, D) x (E, D, hD) + bias -> (E, T, hD), ReLU, dropout, -> (E, T, D): each expert on every token.
  const auto xe = x.unsqueeze(0).expand({E, x.size(0), x.size(1)});
  auto h = torch::baddbmm(torch::stack(b_up).unsqueeze(1), xe, torch::stack(w_up).transpose(1, 2));
  h = drop_->forward(torch::relu(h));
  const auto y = torch::baddbmm(torch::stack(b_down).unsqueeze(1), h, torch::stack(w_down).transpose(1, 2));
  // The routing weight of expert e for token t is 0 unless a slot chose e: the sum over experts is
  // the sum over the chosen ones (an exact 0 contribution from the others).
  return (y * weight.unsqueeze(2).to(y.scalar_type())).sum(0).to(x.scalar_type());
}

MoeImpl::Routing MoeImpl::route(const torch::Tensor& x, const torch::Tensor& g) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == options_.d_model, "MoE: x must be (T, ", options_.d_model, "), got ", x.sizes());
  const int64_t E = options_.num_experts;
  Routing r;
  switch (options_.router) {
    case RouterKind::LearnedTopK: {
      auto logits = gate_->forward(x);
      if (options_.legacy_scattering_scale > 0) {
        // Upstream's always-on modulation: batch statistics of the token norms (non-causal
        // across the batch, and not learnable).
        auto nrm = x.norm(2, 1, true);
        logits = logits + options_.legacy_scattering_scale * (nrm - nrm.mean()) / (nrm.std() + 1e-6);
      }
      if (options_.top_k >= E) {
        r.w = torch::softmax(logits, -1);
        r.dense = r.w;
        r.idx = torch::arange(E, torch::TensorOptions().dtype(torch::kInt64).device(x.device())).expand({x.size(0), E});
      } else {
        auto top = logits.topk(options_.top_k, -1);
        r.w = torch::softmax(std::get<0>(top), -1);  // over the k selected logits only (k = 1: w == 1)
        r.idx = std::get<1>(top);
      }
      break;
    }
    case RouterKind::SwitchTop1: {
      auto p = torch::softmax(gate_->forward(x), -1);
      auto top = p.max(-1, true);
      r.w = std::get<0>(top);
      r.idx = std::get<1>(top);
      break;
    }
    case RouterKind::GumbelHard: {
      auto logits = gate_->forward(x);
      // Gumbel noise as torch.nn.functional.gumbel_softmax draws it: -log(Exp(1)).
      // In eval mode the noise is left out (argmax of the logits, the distribution's mode), so
      // held-out scores are deterministic; the PoC never evaluates, so there is nothing to copy.
      auto noisy = is_training() ? logits - torch::empty_like(logits).exponential_().log() : logits;
      auto soft = torch::softmax(noisy, -1);
      r.idx = soft.argmax(-1, true);
      auto hard = torch::zeros_like(soft).scatter_(1, r.idx, 1.0);
      r.dense = hard - soft.detach() + soft;  // straight-through
      r.w = r.dense.gather(1, r.idx);
      break;
    }
    case RouterKind::ScatteringPhase: {
      TORCH_CHECK(g.defined() && g.numel() == x.size(0) && g.is_complex(),
                  "MoE scattering_phase router needs G_ii (T,) complex, got ", g.defined() ? g.sizes() : c10::IntArrayRef{});
      torch::NoGradGuard ng;  // routing is a discrete function of G (no gradient upstream either)
      auto gd = g.to(torch::kComplexDouble);
      auto re = torch::real(gd), im = torch::imag(gd);
      auto delta = torch::atan2(im, re) / (options_.scattering_epsilon + 0.1);
      delta = torch::remainder(delta + M_PI, 2 * M_PI) - M_PI;
      auto u = (delta + M_PI) / (2 * M_PI);
      auto primary = (u * static_cast<double>(E)).floor().clamp(0, E - 1).to(torch::kInt64);
      auto mag = torch::abs(gd);
      auto thr = torch::quantile(mag, 1.0 - options_.resonance_fraction);
      auto res = mag.gt(thr);
      const int64_t k = std::min<int64_t>(2, E);
      auto start = (primary - 1).clamp_min(0).clamp_max(E - k);
      auto slots = start.unsqueeze(1) + torch::arange(k, primary.options()).unsqueeze(0);  // (T, k)
      auto raw = 1.0 / (1.0 + (slots - primary.unsqueeze(1)).abs().to(torch::kDouble));
      auto rw = raw / raw.sum(1, true);
      // Non-resonance tokens: primary expert, weight 1 (second slot weight 0, same expert).
      auto one_hot_w = torch::zeros_like(rw);
      one_hot_w.select(1, 0).fill_(1.0);
      r.idx = torch::where(res.unsqueeze(1), slots, primary.unsqueeze(1).expand({-1, k}));
      r.w = torch::where(res.unsqueeze(1), rw, one_hot_w).to(x.scalar_type());
      break;
    }
  }
  return r;
}

torch::Tensor MoeImpl::forward(const torch::Tensor& x, const torch::Tensor& g) {
  const int64_t E = options_.num_experts;
  const Routing r = route(x, g);
  torch::Tensor out;
  if (r.dense.defined()) {
    out = torch::zeros_like(x);
    for (int64_t e = 0; e < E; ++e) out = out + expert_forward(e, x) * r.dense.select(1, e).unsqueeze(1);
  } else {
    out = dispatch(x, r.idx, r.w);
  }
  const torch::Tensor& idx = r.idx;
  const torch::Tensor& w = r.w;
  // Counts stay on the device (no host sync per step); a slot counts when its weight is > 0,
  // so a non-resonant scattering token counts once.
  if (counts_.device() != x.device()) counts_ = counts_.to(x.device());
  // A checkpointed block's backward recomputes this forward (block_checkpoint.h): its tokens were
  // counted when the forward first ran.
  if (!in_block_recompute()) {
    torch::NoGradGuard ng;
    auto used = w.detach().gt(0).to(torch::kInt64);
    counts_ += torch::zeros({E}, counts_.options()).index_add_(0, idx.reshape({-1}), used.reshape({-1}));
    last_weights_ = w.detach();
  }
  return out;
}

double MoeImpl::last_routing_entropy() const {
  if (!last_weights_.defined()) return 0.0;
  auto wd = last_weights_.to(torch::kDouble);
  return -(wd * wd.clamp_min(1e-300).log()).sum(1).mean().item<double>();
}

}  // namespace rbk
