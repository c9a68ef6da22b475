// Mixture-of-experts feed-forward layer of the ResNet-BK LM, with the routers the upstream code
// has and a corrected one (upstream-audit §3; claims C05, C09). One implementation, router chosen
// by an option:
//  * LearnedTopK (compat, paper-time SparseMoELayer): gate logits (+ the "legacy scattering
//    modulation" s*(|x|-mean|x|)/(std|x|+1e-6) over all tokens of the batch when s > 0), top-k,
//    softmax over the k selected logits only. With k = 1 the weight is softmax of one number,
//    exactly 1, so the gate gets no gradient (audit §3.2 item 5); reproduced, not fixed.
//    k >= E is the dense softmax mixture.
//  * SwitchTop1 (corrected): argmax expert scaled by its router probability (Switch Transformer
//    style), so the gate learns.
//  * GumbelHard (PoC, audit §2.1): straight-through gumbel_softmax(logits, tau = 1, hard = true)
//    with every expert evaluated on every token, as the PoC does (the straight-through gradient
//    needs every expert's output). In eval mode: the noiseless argmax, so evaluation is deterministic.
//  * ScatteringPhase (compat, audit §3.3): no parameters; routes by arg(G_ii) of the BK-Core
//    output, top 10 % |G_ii| of the batch as "resonances" sent to two neighbouring experts.
// Experts: Linear(D, hD) -> ReLU -> Dropout -> Linear(hD, D), h = 2 upstream.
#pragma once
#include <torch/torch.h>
#include <string>

namespace rbk {

enum class RouterKind { LearnedTopK, SwitchTop1, GumbelHard, ScatteringPhase };
std::string to_string(RouterKind r);
RouterKind parse_router(const std::string& s);  // "learned_topk", "switch_top1", "gumbel_hard", "scattering_phase"

// How a sparse router's choice is computed (the function is the same; issue 25):
//  * Gather: each expert runs on the tokens routed to it (one gather, a GEMM per expert on its
//    segment, one weighted scatter-add). The work a sparse MoE promises; one host synchronisation
//    per layer (the experts' row counts size their GEMMs).
//  * Dense: every expert runs on every token as one batched GEMM per projection over the stacked
//    expert weights, and the outputs are summed with the routing weights (zero for experts not
//    chosen). No host synchronisation and a handful of operations per layer instead of a few per
//    expert, for E x the experts' FLOPs and activation memory: a GPU speed option where launches,
//    not FLOPs, bound the step. Dropout draws its mask over every expert's hidden units, so with
//    dropout > 0 the random stream differs from Gather's.
//  * Grouped: the routed tokens only, like Gather, over expert-aligned tiles of sizes fixed on the
//    host, like Dense: no host synchronisation, capturable (moe_grouped.h). Pads each expert's rows
//    to a tile multiple (~1/8 more rows at the default tile). Dropout's stream differs from both.
enum class MoeDispatch { Gather, Dense, Grouped };
std::string to_string(MoeDispatch d);
MoeDispatch parse_moe_dispatch(const std::string& s);  // "gather", "dense", "grouped"

struct MoeOptions {
  int64_t d_model = 64;
  int64_t num_experts = 4;
  int64_t top_k = 1;
  int64_t hidden_mult = 2;
  double dropout = 0.0;
  RouterKind router = RouterKind::LearnedTopK;
  double legacy_scattering_scale = 0.0;  // upstream default 0.1 (LearnedTopK only); 0 = off
  double scattering_epsilon = 1.0;       // ScatteringPhase: phase scaled by 1/(eps + 0.1)
  double resonance_fraction = 0.1;       // ScatteringPhase: top fraction of |G| per batch
  MoeDispatch dispatch = MoeDispatch::Gather;  // sparse routers only (dense mixtures use every expert anyway)
};

class MoeImpl : public torch::nn::Module {
 public:
  explicit MoeImpl(const MoeOptions& options);
  // x: (T, D) float; g: (T,) complex G_ii, needed by ScatteringPhase only. Returns (T, D).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& g = torch::Tensor());

  // The routing decision alone, no expert evaluated (forward = route + experts), so the routers
  // can be timed on their own (claim C09). Sparse routers: idx, w (T, k) as dispatched. Dense
  // mixtures (LearnedTopK with k >= E, GumbelHard): `dense` (T, E) holds the mixing weights and
  // idx, w (T, k) what the expert counts record. GumbelHard draws its noise here (training mode).
  struct Routing {
    torch::Tensor idx, w;  // (T, k) int64, (T, k) x's dtype
    torch::Tensor dense;   // (T, E) or undefined
  };
  Routing route(const torch::Tensor& x, const torch::Tensor& g = torch::Tensor());

  // Tokens routed to each expert since the last reset (every slot of top-k counts once),
  // (E,) int64 on the CPU. Recorded in training and evaluation alike.
  torch::Tensor expert_counts() const { return counts_.to(torch::kCPU).clone(); }
  void reset_expert_counts() { counts_.zero_(); }
  // Mean routing entropy -sum w log w of the last forward (0 for hard top-1 routers).
  double last_routing_entropy() const;
  const MoeOptions& options() const { return options_; }

 private:
  torch::Tensor expert_forward(int64_t e, const torch::Tensor& x);
  // Sparse dispatch: idx, w (T, k) -> sum_j w_j expert_{idx_j}(x), as options_.dispatch says.
  torch::Tensor dispatch(const torch::Tensor& x, const torch::Tensor& idx, const torch::Tensor& w);
  torch::Tensor dispatch_dense(const torch::Tensor& x, const torch::Tensor& weight);
  MoeOptions options_;
  torch::nn::Linear gate_{nullptr};
  torch::nn::ModuleList up_, down_;
  torch::nn::Dropout drop_{nullptr};
  torch::Tensor counts_;
  torch::Tensor last_weights_;  // (T, k) routing weights of the last forward, detached
};
TORCH_MODULE(Moe);

}  // namespace rbk
