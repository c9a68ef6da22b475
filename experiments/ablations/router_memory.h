// exp_ablations' two measurements that are not training runs (claims C09, C14):
//  * router speed: the scattering-phase router against MLP gating (learned top-k), the routing
//    decision alone and the whole MoE layer, same tokens, same G_ii, same device, interleaved repeats;
//  * "w/o semiseparable: OOM": the dense alternative's peak memory at the claim's length, projected
//    from the tensors it must hold (lowrank_resolvent.h: resolvent_memory_per_layer).
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>

namespace rbk::ablations {

struct RouterTimingSpec {
  int64_t tokens = 4096;
  int64_t d_model = 64;
  int64_t num_experts = 4;
  int64_t top_k = 1;
  int64_t repeats = 5;   // interleaved: one ratio per repeat
  int64_t inner = 5;     // calls per timed sample (median of these)
  uint64_t seed = 0;
};
// {tokens, d_model, num_experts, route_seconds/{scattering, learned} (median per repeat, arrays),
//  moe_seconds/{...}, route_speedup (learned / scattering per repeat), moe_speedup, equal_work_checked}
nlohmann::json time_routers(const RouterTimingSpec& spec);

struct OomSpec {
  int64_t n = 2048;
  int64_t batch = 8;
  int64_t n_layers = 6;
  double device_gib = 10.0;
};
// {n, batch, n_layers, rank, device_bytes, dense_peak_bytes, semiseparable_peak_bytes, oom (bool),
//  dense_oom_from_n (smallest power of two N where the dense peak exceeds the device), kind: "projected"}
nlohmann::json project_semiseparable_memory(const OomSpec& spec);

}  // namespace rbk::ablations
