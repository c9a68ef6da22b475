// FLOPs per token of the language models (claim C11, seed 002 Table 3; upstream-audit §9.5), two
// ways that check each other:
//  * analytic, per layer and component, forward pass, 2 FLOPs per multiply-add: the matrix
//    products (every Linear, the experts a token is routed to, attention's QK^T and AV) and an
//    estimate of the element-wise work (norms, BK-Core recursion, scan, activations), reported
//    apart because its constants are conventions (stated next to each);
//  * counted: MatmulFlopCounter adds 2 M N K of every matrix-product operator LibTorch executes
//    (aten::mm, addmm, bmm, baddbmm) while it is alive, so skipped work is really absent; a fused
//    attention operator (scaled_dot_product_attention), whose kernels run no such leaf, is counted
//    at the operator as its dense QK^T and AV products.
// The matrix-product part of the analytic count equals the counted one exactly (tests); the
// element-wise part is not counted by operators (many small ops with no agreed FLOP value).
#pragma once
#include "rbk/language_model.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace rbk {

// Forward FLOPs per token, by component. "matmul" parts are exact for the executed shapes;
// "elementwise" parts are estimates with the constants stated in flop_count.cpp.
struct TokenFlops {
  std::map<std::string, double> matmul;       // e.g. "block.experts", "head"
  std::map<std::string, double> elementwise;  // e.g. "block.bk_recursion", "block.norm"
  double matmul_total() const;
  double elementwise_total() const;
  double total() const { return matmul_total() + elementwise_total(); }
  nlohmann::json to_json() const;
};

// Per token, forward, for sequences of length n (attention's cost grows with n; the others not).
// ResNet-BK: every block on every token; block_fraction scales the per-token block work (the
// fraction of (token, block) pairs ACT executed; the BK-Core recursion always runs over every
// position, see act.h). The head is included (V x D).
TokenFlops analytic_token_flops(const LmConfig& c, int64_t n, double block_fraction = 1.0);

// Counts the FLOPs of matrix-product operators executed on any thread while alive. Like
// OperatorCallCounter (timing.h), create and destroy it between operator-free moments; one at a time.
class MatmulFlopCounter {
 public:
  MatmulFlopCounter();
  ~MatmulFlopCounter();
  MatmulFlopCounter(const MatmulFlopCounter&) = delete;
  MatmulFlopCounter& operator=(const MatmulFlopCounter&) = delete;
  double flops() const;  // 2 M N K summed since construction or reset()
  void reset();

 private:
  uint64_t handle_;
};

}  // namespace rbk
