// Semiseparable H = T + U V^T (claim C10; seeds 000/001 §3.4, upstream-audit §6.1, §6.2): a
// tridiagonal T plus a rank-r correction with r = max(1, ceil(log2 N)). The matvec costs O(N r):
//   y = T x + (x V) U^T        for x (B, N)
// against O(N^2) for the dense N x N matrix. Also the counts behind the seeds' "610x fewer
// parameters than attention" and "70% memory reduction", each labelled with what it compares.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <cstdint>

namespace rbk {

int64_t semiseparable_rank(int64_t n);  // max(1, ceil(log2 n))

struct Semiseparable {
  torch::Tensor diag;   // (N)
  torch::Tensor sub;    // (N-1): H[i+1, i]
  torch::Tensor super;  // (N-1): H[i, i+1]
  torch::Tensor U, V;   // (N, r)
  int64_t size() const { return diag.size(0); }
};

// Random operator (entries N(0, 1) / scale where scale keeps the two parts comparable).
Semiseparable random_semiseparable(int64_t n, int64_t rank, torch::ScalarType dtype = torch::kFloat);
// x: (B, N) -> (B, N), O(B N r).
torch::Tensor semiseparable_matvec(const Semiseparable& h, const torch::Tensor& x);
// The dense (N, N) matrix T + U V^T (the oracle and the O(N^2) comparison).
torch::Tensor semiseparable_dense(const Semiseparable& h);

// Elements stored: band 3N - 2 plus 2 N r.
int64_t semiseparable_stored_elements(int64_t n, int64_t rank);

// Parameter counts behind "610x" (upstream-audit §6.2), width d:
//  upstream's formula: attention projections 4 d^2 over the per-channel 3-tap filter plus
//    low-rank map 3 d + 2 d floor(log2 d)  ("N" in its O(N log N) is d_model);
//  like for like: one Transformer layer (4 d^2 + 4 d attention, 8 d^2 + 5 d FFN, 4 d LayerNorms)
//    over one layer of upstream's Phase-2 model that replaced it (its filter, low-rank map,
//    LayerNorms and D/4 FFN, phase2_compat_parameter_breakdown).
double param_ratio_upstream_formula(int64_t d);
double param_ratio_like_for_like(int64_t d);

// Memory of one sequence-mixing layer at sequence length N, width D, batch B, counted from the
// tensors it holds for forward + backward (elements):
//  attention (one head, unfused): Q, K, V, the N x N scores and probabilities, the output;
//  semiseparable: the operator (band + 2 N r) applied to the D channels, its x V (r x D) and
//  the output.
double attention_layer_elements(int64_t n, int64_t d, int64_t batch);
double semiseparable_layer_elements(int64_t n, int64_t d, int64_t batch);
// Upstream's own estimate (BirmanSchwingerCore.estimate_memory_usage, audit §6.1): 1 - total/dense.
double upstream_estimated_memory_savings(int64_t n, int64_t batch, bool checkpointing);

}  // namespace rbk
