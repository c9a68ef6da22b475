// Adaptive computation time for the ResNet-BK LM (see act.h; upstream-audit §7; claim C11).
#include "rbk/act.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace rbk {

void check_ablation_and_act_config(const LmConfig& c) {
  if (c.arch != "resnet_bk") {
    if (c.act != "none" || c.bk_lap || c.semiseparable_rank != 0)
      throw std::invalid_argument("model config: act / bk_lap / semiseparable_rank are ResNet-BK switches, but arch = '" +
                                  c.arch + "'; expected act = 'none', bk_lap = false, semiseparable_rank = 0");
    return;
  }
  if ((c.bk_lap || c.semiseparable_rank != 0 || c.act != "none") && c.block != "papertime")
    throw std::invalid_argument("model config: bk_lap, semiseparable_rank and act need block = 'papertime' (got '" +
                                c.block + "'); the PoC block has no such parts");
  if (c.semiseparable_rank != 0 && c.bk_context != "bidirectional")
    throw std::invalid_argument("model config: semiseparable_rank = " + std::to_string(c.semiseparable_rank) +
                                " needs bk_context = 'bidirectional' (got '" + c.bk_context +
                                "'); the low-rank term couples every position with every other");
  if (c.act != "none" && c.act_min_layers > c.n_layers)
    throw std::invalid_argument("model config: act_min_layers = " + std::to_string(c.act_min_layers) +
                                " exceeds n_layers = " + std::to_string(c.n_layers));
}

torch::Tensor upstream_halting_probability(const torch::Tensor& phase, int64_t layer, int64_t n_layers,
                                           int64_t min_layers) {
  // Upstream's normalised-phase regimes (compute_halting_probability): thresholds on u, not |delta|.
  constexpr double kLowU = 0.2, kHighU = 0.8, kLowGain = 2.0, kHighGain = 0.5;
  if (layer < min_layers) return torch::zeros_like(phase);
  auto u = (phase + M_PI) / (2.0 * M_PI);
  auto p0 = 1.0 - u;
  auto p = torch::where(u < kLowU, (kLowGain * p0).clamp(0.0, 1.0),
                        torch::where(u > kHighU, (kHighGain * p0).clamp(0.0, 1.0), p0));
  return p * (static_cast<double>(layer + 1) / static_cast<double>(n_layers));
}

torch::Tensor resnet_bk_block_forward_running(ResNetBkBlock& b, const torch::Tensor& h, const torch::Tensor& running,
                                              const BkCoreOptions& bk) {
  TORCH_CHECK(b.papertime, "resnet_bk_block_forward_running: papertime block only");
  const auto B = h.size(0), n = h.size(1), D = h.size(2);
  auto idx = running.reshape({B * n}).nonzero().squeeze(1);  // (R,)
  auto u = b.norm->forward(h.reshape({B * n, D}).index_select(0, idx));  // (R, D): the only tokens worked on
  auto v_run = b.v_proj->forward(u).squeeze(-1).clamp(-3.0, 3.0);
  // A halted token enters the BK-Core with potential 0: the recursion couples positions, so it
  // runs over the whole sequence (its O(N) cost is counted for every position in flop_count.h).
  auto v = torch::zeros({B * n}, v_run.options()).index_copy(0, idx, v_run).view({B, n});
  auto f = resnet_bk_block_features(b, v, bk).to(h.scalar_type()).reshape({B * n, 2}).index_select(0, idx);
  torch::Tensor g;
  if (b.moe->options().router == RouterKind::ScatteringPhase)
    g = torch::complex(f.select(-1, 0).detach(), f.select(-1, 1).detach());
  auto m = b.moe->forward(u, g);
  return m + b.bk_scale * b.out_proj->forward(f.clamp(-10.0, 10.0));
}

namespace {

// Halting probability of every token (T,) from the hidden states x (B, n, D) after block l.
torch::Tensor halting_signal(ResNetBkBlock& b, const torch::Tensor& x, int64_t l, const LmConfig& c, bool keep_grad) {
  const auto T = x.size(0) * x.size(1);
  if (c.act_signal == "learned") {
    if (l < c.act_min_layers) return torch::zeros({T}, x.options());
    auto p = torch::sigmoid(b.halt->forward(x.reshape({T, x.size(2)})).squeeze(-1));
    return keep_grad ? p : p.detach();
  }
  auto phase = M_PI * torch::tanh(x.detach().reshape({T, x.size(2)}).mean(-1));
  return upstream_halting_probability(phase, l, c.n_layers, c.act_min_layers);
}

}  // namespace

torch::Tensor act_forward_blocks(std::vector<ResNetBkBlock>& blocks, const torch::Tensor& h, const BkCoreOptions& bk,
                                 const LmConfig& c, ActCounters& counters) {
  const auto B = h.size(0), n = h.size(1), D = h.size(2), T = B * n;
  const bool skip = c.act == "skip";
  // The learned unit is trained through the mixing weights in skip mode (see act.h).
  const bool soft_weights = skip && c.act_signal == "learned";
  auto x = h;
  auto cum = torch::zeros({T}, h.options().dtype(torch::kFloat32));
  auto running = torch::ones({T}, h.options().dtype(torch::kBool));
  const int64_t L = static_cast<int64_t>(blocks.size());
  int64_t halted_before_last = 0;  // halting at the last block saves no block work: not counted
  for (int64_t l = 0; l < L; ++l) {
    auto& b = blocks[static_cast<size_t>(l)];
    if (l == L - 1) halted_before_last = T - running.sum().item<int64_t>();
    counters.token_blocks_full += T;
    if (!skip) {
      x = x + resnet_bk_block_forward(b, x, bk);
      counters.token_blocks_run += T;
    } else {
      const int64_t R = running.sum().item<int64_t>();
      if (R == 0) {  // every token halted: no block work remains
        halted_before_last = T;
        break;
      }
      auto delta = resnet_bk_block_forward_running(b, x, running.view({B, n}), bk);  // (R, D)
      auto idx = running.nonzero().squeeze(1);
      if (soft_weights) delta = delta * (1.0 - cum.index_select(0, idx)).unsqueeze(1).to(delta.scalar_type());
      x = x.reshape({T, D}).index_add(0, idx, delta).view({B, n, D});
      counters.token_blocks_run += R;
    }
    auto p = halting_signal(b, x, l, c, soft_weights).to(torch::kFloat32);
    auto run_f = running.to(torch::kFloat32);
    p = p * run_f;
    auto halt = running & ((cum + p) >= c.act_threshold);
    auto weight = torch::where(halt, 1.0 - cum, p);
    counters.upstream_weight_sum += weight.detach().sum().item<double>();
    cum = cum + weight;
    running = running & halt.logical_not();
  }
  counters.halted_tokens += halted_before_last;
  counters.tokens += T;
  return x;
}

}  // namespace rbk
