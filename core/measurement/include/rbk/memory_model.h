// The largest model in a memory budget (seed 001 Table 12; claims C15, C22) and what a model
// needs (claims C16, C20): the search algorithm, the dimension rule, and an analytic memory model
// that predicts each probe (weights + gradients + optimizer states + activations per component).
//
// Search (search_largest_fitting): over a value v on a grid of multiples of `step` (d_model).
// Start at `start`; while it fails, halve (nothing fits when even `step` fails); while it fits,
// double (no cap: the first failing value is the upper end; `hard_upper` only guarantees that a
// search over a budget the machine cannot exhaust terminates, and a search that reaches it says so
// with ended_at_upper_end); then bisect between the largest fitting and the smallest failing value
// down to one step. Every value is probed at most once. The answer is the largest grid value that
// fits, provided fitting is monotone in v (a larger model never fits where a smaller one fails):
// then any order of probing (search_is_order_independent checks it against an exhaustive scan in
// another order) gives the same answer.
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rbk {

struct SearchOptions {
  int64_t start = 256;
  int64_t step = 64;
  int64_t hard_upper = int64_t{1} << 20;  // terminates an unbounded doubling; reaching it is reported
  // > 0: where a previous search ended (its largest fitting value). The search then brackets the
  // boundary by galloping from the hint (hint, hint +- step, +- 2 step, +- 4 step, ...) instead of
  // doubling from `start`, and bisects as usual: for a memory that grows with the value the answer
  // is the same, and an unchanged boundary costs two probes (hint fits, hint + step does not).
  int64_t hint = 0;
};

struct ProbeOutcome {
  bool fits = false;
  nlohmann::json record = nlohmann::json::object();  // what the probe measured (dims, bytes, status, time)
};

struct SearchResult {
  int64_t largest_fitting = -1;    // -1: nothing on the grid fits
  int64_t smallest_failing = -1;   // -1: none failed (the search ended at hard_upper)
  bool ended_at_upper_end = false;
  std::vector<int64_t> order;      // values in the order probed
  std::vector<ProbeOutcome> outcomes;
  nlohmann::json to_json() const;  // {largest_fitting, smallest_failing, ended_at_upper_end, probes: [...]}
};

// Throws std::invalid_argument for step < 1, start < step, hard_upper < start or hint < 0.
SearchResult search_largest_fitting(const SearchOptions& options, const std::function<ProbeOutcome(int64_t)>& probe);

// Probes every grid value in [step, limit] in a shuffled order (seeded) and returns the largest
// fitting value below the first failing one in grid order, as an exhaustive check of a search.
int64_t exhaustive_largest_fitting(int64_t step, int64_t limit, uint64_t seed, const std::function<bool(int64_t)>& fits);

// The dimension rule of the memory search (upstream-audit §9.2): n_layers = 12 for d <= 512,
// 8 for d <= 1024, else 6; heads = 8 (Transformer); FFN = 4 d; ResNet-BK E = 4 experts, top-1.
int64_t layers_for_width(int64_t d_model);

// The four model families of the search.
enum class MemoryArch { Transformer, ResNetBk, Phase1, Phase2Compat };
MemoryArch parse_memory_arch(const std::string& name);  // "transformer" | "resnet_bk" | "phase1" | "phase2_compat"
std::string memory_arch_name(MemoryArch a);

// Everything the analytic model needs about one probe.
struct MemoryProbeShape {
  MemoryArch arch = MemoryArch::Transformer;
  int64_t vocab_size = 0, d_model = 0, n_layers = 0, seq_len = 0, batch = 1;
  int64_t n_heads = 8;                  // Transformer
  int64_t feature_dim = 0;              // width the head's last Linear reads (D, or the low rank)
  int64_t parameters = 0;               // counted on the instantiated model
  int64_t largest_parameter = 0;        // elements of the largest parameter tensor
  int64_t loss_chunk_tokens = 128;      // chunked head + loss (lm_loss.h); 0 = one chunk (full logits)
  bool training = false;
  bool checkpoint_blocks = false;
  bool fused_attention = false;         // SDPA holds no N x N probabilities (LibTorch >= 2)
  int64_t weight_bytes = 4;             // bytes per weight element as stored
  int64_t grad_bytes = 4;
  int64_t optimizer_bytes = 8;          // AdamW: two fp32 moments
  int64_t activation_bytes = 4;
  // Phase-1 ranks (the AR-SSM and the low-rank FFN), ResNet-BK experts.
  int64_t ar_rank = 32, ffn_rank = 0, num_experts = 4;
};

struct MemoryEstimate {
  double weights = 0, gradients = 0, optimizer = 0, activations = 0, head_loss = 0, transient = 0;
  double total() const { return weights + gradients + optimizer + activations + head_loss + transient; }
  nlohmann::json to_json() const;
};

// Bytes the probe's own tensors need at its peak (the process runtime not included).
// Training (two AdamW steps, the peak in the second step's forward/backward, when gradients and
// both moments already exist): P (w + g + o) + saved activations of every block (one block's plus
// every block input when checkpointed) + what the chunked loss keeps for backward (features,
// their gradient, dW, db) + the largest transient (AdamW's per-tensor temporaries, attention's
// N x N blocks, one logits chunk). Inference (no grad): P w + the largest set of tensors alive at
// once in one block or in the loss.
MemoryEstimate estimate_probe_memory(const MemoryProbeShape& s);

// Saved-for-backward activation elements per token per block, from the tensors each block's
// forward keeps (counted from the code of transformer_lm.cpp, resnet_bk_lm.cpp/moe.cpp, ar_ssm.cpp,
// phase1_model.cpp); exposed for the report.
double activation_elements_per_token_per_block(const MemoryProbeShape& s);

}  // namespace rbk
