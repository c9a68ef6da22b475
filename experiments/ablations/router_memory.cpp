// Router timing and the dense-resolvent memory projection of exp_ablations (see router_memory.h).
#include "router_memory.h"

#include "rbk/bk_core_autograd.h"
#include "rbk/lowrank_resolvent.h"
#include "rbk/moe.h"
#include "rbk/timing.h"

#include <cmath>

namespace rbk::ablations {

nlohmann::json time_routers(const RouterTimingSpec& s) {
  torch::NoGradGuard ng;
  torch::manual_seed(s.seed);
  MoeOptions o;
  o.d_model = s.d_model;
  o.num_experts = s.num_experts;
  o.top_k = s.top_k;
  MoeOptions os = o;
  os.router = RouterKind::ScatteringPhase;
  Moe learned(o), scattering(os);
  learned->eval();
  scattering->eval();
  // Fresh random inputs (never zeros); G_ii from the BK-Core of a random potential, as the block
  // computes it anyway before routing (its cost is not the router's).
  auto x = torch::randn({s.tokens, s.d_model});
  auto v = torch::rand({1, s.tokens}) * 6.0 - 3.0;
  auto f = bk_core_features(v);
  auto g = torch::complex(f.select(-1, 0), f.select(-1, 1)).reshape({s.tokens});
  // Equal work: every token gets a valid expert with a positive finite weight from both routers.
  bool equal_work = true;
  for (auto* r : {&learned, &scattering}) {
    auto routing = (*r)->route(x, g);
    auto idx = routing.idx, w = routing.w;
    equal_work = equal_work && idx.size(0) == s.tokens && idx.min().item<int64_t>() >= 0 &&
                 idx.max().item<int64_t>() < s.num_experts && torch::isfinite(w).all().item<bool>() &&
                 (w.sum(-1) > 0).all().item<bool>();
  }
  auto sample = [&](const std::function<void()>& fn) { return time_repeated(fn, 1, static_cast<int>(s.inner)).median_s; };
  nlohmann::json route_l = nlohmann::json::array(), route_s = nlohmann::json::array();
  nlohmann::json moe_l = nlohmann::json::array(), moe_s = nlohmann::json::array();
  nlohmann::json route_ratio = nlohmann::json::array(), moe_ratio = nlohmann::json::array();
  for (int64_t r = 0; r < s.repeats; ++r) {
    const double rl = sample([&] { (void)learned->route(x, g); });
    const double rs = sample([&] { (void)scattering->route(x, g); });
    const double ml = sample([&] { (void)learned->forward(x, g); });
    const double ms = sample([&] { (void)scattering->forward(x, g); });
    route_l.push_back(rl);
    route_s.push_back(rs);
    moe_l.push_back(ml);
    moe_s.push_back(ms);
    route_ratio.push_back(rl / rs);
    moe_ratio.push_back(ml / ms);
  }
  return {{"tokens", s.tokens},
          {"d_model", s.d_model},
          {"num_experts", s.num_experts},
          {"top_k", s.top_k},
          {"repeats", s.repeats},
          {"calls_per_sample", s.inner},
          {"what", "forward, no grad, eval mode; MLP gating = learned_topk (gate Linear(D, E), top-k); G_ii given"},
          {"route_seconds", {{"scattering", route_s}, {"learned", route_l}}},
          {"moe_seconds", {{"scattering", moe_s}, {"learned", moe_l}}},
          {"route_speedup", route_ratio},
          {"moe_speedup", moe_ratio},
          {"equal_work_checked", equal_work}};
}

nlohmann::json project_semiseparable_memory(const OomSpec& s) {
  LmConfig c;
  c.n_seq = s.n;
  c.semiseparable_rank = -1;
  const int64_t rank = semiseparable_rank_of(c);
  const double device = s.device_gib * 1024.0 * 1024.0 * 1024.0;
  // The model's peak holds every layer's saved tensors for the backward; one layer's transient
  // working set comes on top (lowrank_resolvent.h counts a layer's peak as saved + transient).
  auto model_peak = [&](int64_t n, bool dense) {
    const auto m = resolvent_memory_per_layer(s.batch, n, rank);
    const double layer = dense ? m.dense_bytes : m.semiseparable_bytes;
    constexpr double kSavedShare = 1.0 / 3.0;  // of a layer's peak: the one inverse autograd keeps
    return static_cast<double>(s.n_layers - 1) * layer * kSavedShare + layer;
  };
  const double dense = model_peak(s.n, true), semi = model_peak(s.n, false);
  nlohmann::json from_n = nullptr;
  for (int64_t n = 2; n <= (int64_t(1) << 30); n *= 2)
    if (model_peak(n, true) > device) {
      from_n = n;
      break;
    }
  return {{"kind", "projected"},
          {"rule", "bytes of the tensors each path must hold: dense = the N x N complex64 (T + U V^T - z), its "
                   "inverse and its gradient per layer, one saved inverse per other layer; semiseparable = band, "
                   "factors and O(N r) solves; lower bounds (the rest of the model is not counted)"},
          {"n", s.n},
          {"batch", s.batch},
          {"n_layers", s.n_layers},
          {"rank", rank},
          {"device_gib", s.device_gib},
          {"dense_peak_bytes", dense},
          {"semiseparable_peak_bytes", semi},
          {"oom", dense > device},
          {"dense_oom_from_n", from_n}};
}

}  // namespace rbk::ablations
