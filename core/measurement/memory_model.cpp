// Search for the largest model in a budget and the analytic memory model (memory_model.h;
// seed 001 Table 12, claims C15, C16, C20, C22).
#include "rbk/memory_model.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <stdexcept>

namespace rbk {

nlohmann::json SearchResult::to_json() const {
  nlohmann::json probes = nlohmann::json::array();
  for (size_t i = 0; i < order.size(); ++i) {
    nlohmann::json p = outcomes[i].record;
    p["value"] = order[i];
    p["fits"] = outcomes[i].fits;
    p["probe_index"] = i;
    probes.push_back(p);
  }
  return {{"largest_fitting", largest_fitting < 0 ? nlohmann::json() : nlohmann::json(largest_fitting)},
          {"smallest_failing", smallest_failing < 0 ? nlohmann::json() : nlohmann::json(smallest_failing)},
          {"ended_at_upper_end", ended_at_upper_end},
          {"n_probes", order.size()},
          {"probes", probes}};
}

SearchResult search_largest_fitting(const SearchOptions& o, const std::function<ProbeOutcome(int64_t)>& probe) {
  if (o.step < 1 || o.start < o.step || o.hard_upper < o.start || o.hint < 0)
    throw std::invalid_argument("search_largest_fitting: need 1 <= step <= start <= hard_upper and hint >= 0, got step " +
                                std::to_string(o.step) + ", start " + std::to_string(o.start) + ", hard_upper " +
                                std::to_string(o.hard_upper) + ", hint " + std::to_string(o.hint));
  SearchResult r;
  std::map<int64_t, bool> seen;
  auto on_grid = [&](int64_t v) { return std::max(o.step, (v / o.step) * o.step); };
  auto fits = [&](int64_t v) {
    auto it = seen.find(v);
    if (it != seen.end()) return it->second;
    ProbeOutcome out = probe(v);
    r.order.push_back(v);
    r.outcomes.push_back(out);
    seen[v] = out.fits;
    return out.fits;
  };
  const int64_t upper = on_grid(o.hard_upper);
  // Bracket: lo fits, hi fails, lo < hi (or return at an end of the grid). From a hint the
  // distance grows by step, 2 step, 4 step, ...; from start by doubling or halving the value.
  const bool from_hint = o.hint > 0;
  int64_t v = std::min(upper, on_grid(from_hint ? o.hint : o.start));
  int64_t lo = -1, hi = -1;
  if (!fits(v)) {
    hi = v;
    for (int64_t gap = o.step; v > o.step; gap *= 2) {
      v = from_hint ? std::max(o.step, hi - gap) : on_grid(v / 2);
      if (fits(v)) {
        lo = v;
        break;
      }
      hi = v;
    }
    if (lo < 0) {  // even one step fails
      r.smallest_failing = hi;
      return r;
    }
  } else {
    lo = v;
    for (int64_t gap = o.step;; gap *= 2) {
      if (lo >= upper) {
        r.ended_at_upper_end = true;
        r.largest_fitting = lo;
        return r;
      }
      const int64_t next = std::min(upper, from_hint ? lo + gap : lo * 2);
      if (fits(next)) {
        lo = next;
      } else {
        hi = next;
        break;
      }
    }
  }
  while (hi - lo > o.step) {
    const int64_t mid = lo + ((hi - lo) / o.step / 2) * o.step;
    if (fits(mid))
      lo = mid;
    else
      hi = mid;
  }
  r.largest_fitting = lo;
  r.smallest_failing = hi;
  return r;
}

int64_t exhaustive_largest_fitting(int64_t step, int64_t limit, uint64_t seed, const std::function<bool(int64_t)>& fits) {
  std::vector<int64_t> grid;
  for (int64_t v = step; v <= limit; v += step) grid.push_back(v);
  std::vector<size_t> idx(grid.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(idx.begin(), idx.end(), rng);
  std::vector<char> ok(grid.size(), 0);
  for (size_t i : idx) ok[i] = fits(grid[i]) ? 1 : 0;
  int64_t best = -1;
  for (size_t i = 0; i < grid.size() && ok[i]; ++i) best = grid[i];
  return best;
}

int64_t layers_for_width(int64_t d) { return d <= 512 ? 12 : (d <= 1024 ? 8 : 6); }

MemoryArch parse_memory_arch(const std::string& name) {
  if (name == "transformer") return MemoryArch::Transformer;
  if (name == "resnet_bk") return MemoryArch::ResNetBk;
  if (name == "phase1") return MemoryArch::Phase1;
  if (name == "phase2_compat") return MemoryArch::Phase2Compat;
  throw std::invalid_argument("memory arch '" + name + "': expected transformer | resnet_bk | phase1 | phase2_compat");
}

std::string memory_arch_name(MemoryArch a) {
  switch (a) {
    case MemoryArch::Transformer: return "transformer";
    case MemoryArch::ResNetBk: return "resnet_bk";
    case MemoryArch::Phase1: return "phase1";
    case MemoryArch::Phase2Compat: return "phase2_compat";
  }
  return "?";
}

nlohmann::json MemoryEstimate::to_json() const {
  return {{"weights", weights},         {"gradients", gradients}, {"optimizer", optimizer}, {"activations", activations},
          {"head_loss", head_loss},     {"transient", transient}, {"total", total()}};
}

double activation_elements_per_token_per_block(const MemoryProbeShape& s) {
  const double D = static_cast<double>(s.d_model);
  switch (s.arch) {
    case MemoryArch::Transformer:
      // LN1 input, LN1 output (qkv input), q k v, the attention output made contiguous for the
      // projection, the residual sum, LN2 input and output, fc1 output (GELU input) and GELU output
      // (fc2 input): 16 D; plus the softmax probabilities, H N per token, unless SDPA is fused.
      return 16.0 * D + (s.fused_attention ? 0.0 : static_cast<double>(s.n_heads * s.seq_len));
    case MemoryArch::ResNetBk:
      // LN input and output, the gathered expert input, the expert's hidden layer before and
      // after its activation (2 x 2D), the expert output and the weighted combination, the block
      // output: about 10 D; the BK-Core's per-token complex recursions and features, ~32 floats.
      return 10.0 * D + 32.0;
    case MemoryArch::Phase1: {
      const double h = std::max(D / 4.0, 4.0), R = static_cast<double>(s.ar_rank);
      const double r = static_cast<double>(s.ffn_rank > 0 ? s.ffn_rank : std::max<int64_t>(1, s.d_model / 16));
      // AR-SSM: LN1 input/output, the padded conv input, conv output, gate hidden (2 h), gate and
      // the two gated projections with their products (8 R); FFN: LN2 input/output, 4D hidden
      // (ReLU output, the down-projection's input), the r-wide ReLU outputs (4 r); residual sums.
      return 11.0 * D + 2.0 * h + 8.0 * R + 4.0 * r;
    }
    case MemoryArch::Phase2Compat:
      // LN1 input/output, the two shifted copies, the filtered sum, the residual, LN2 input/output,
      // the D/4 FFN hidden before and after GELU, the rank-r product.
      return 8.0 * D + 0.5 * D + static_cast<double>(s.d_model >= 16 ? 12 : 4);
  }
  return 0.0;
}

MemoryEstimate estimate_probe_memory(const MemoryProbeShape& s) {
  MemoryEstimate e;
  const double P = static_cast<double>(s.parameters), T = static_cast<double>(s.batch * s.seq_len);
  const double D = static_cast<double>(s.d_model), V = static_cast<double>(s.vocab_size);
  const double F = static_cast<double>(s.feature_dim > 0 ? s.feature_dim : s.d_model), L = static_cast<double>(s.n_layers);
  const double ab = static_cast<double>(s.activation_bytes);
  const double chunk = static_cast<double>(s.loss_chunk_tokens > 0 ? std::min<int64_t>(s.loss_chunk_tokens, s.batch * s.seq_len)
                                                                    : s.batch * s.seq_len);
  const double attention_block =
      (s.arch == MemoryArch::Transformer && !s.fused_attention) ? T * static_cast<double>(s.n_heads * s.seq_len) : 0.0;
  e.weights = P * static_cast<double>(s.weight_bytes);
  const double per_block = activation_elements_per_token_per_block(s);
  if (s.training) {
    e.gradients = P * static_cast<double>(s.grad_bytes);
    e.optimizer = P * static_cast<double>(s.optimizer_bytes);
    // Embedding output and final norm input/output (+ the low-rank head's input when F != D).
    const double outside_blocks = T * (3.0 * D + (F != D ? F : 0.0));
    e.activations = ab * (s.checkpoint_blocks ? T * (L * D + per_block) + T * 3.0 * D : L * T * per_block + outside_blocks);
    // The chunked loss keeps features, dF (T x F) and dW, db (V x F + V) for backward.
    e.head_loss = ab * (2.0 * T * F + V * F + V);
    // Largest single transient: AdamW's per-tensor temporaries (sqrt of the second moment and its
    // quotient), attention's N x N gradient blocks, a logits chunk and its softmax.
    e.transient = std::max({2.0 * static_cast<double>(s.largest_parameter) * static_cast<double>(s.weight_bytes),
                            ab * 2.0 * attention_block, ab * 2.0 * chunk * V, ab * 2.0 * T * 4.0 * D});
  } else {
    // No graph: one block's live tensors at a time, or the loss (features + one logits chunk).
    double block_live = 0.0;
    switch (s.arch) {
      case MemoryArch::Transformer: block_live = T * 10.0 * D + 2.0 * attention_block; break;
      case MemoryArch::ResNetBk: block_live = T * 8.0 * D; break;
      case MemoryArch::Phase1: block_live = T * 10.0 * D; break;
      case MemoryArch::Phase2Compat: block_live = T * 5.0 * D; break;
    }
    e.activations = ab * block_live;
    e.head_loss = ab * (T * F + 2.0 * chunk * V);
  }
  return e;
}

}  // namespace rbk
