// A bias folded into a GEMM: rows [x 1 0 ... 0] against [W b 0 ... 0] give x W^T + b inside the
// GEMM, with no pass of its own over the output to add b and none over the output gradient to sum
// it (the bias gradient is the weight gradient's column D). The zero columns pad a row of D values
// plus the one to a multiple of 8 (16-byte rows for bf16 GEMMs). Used by the fused loss head
// (fused_cross_entropy.cpp) and the grouped MoE's experts (moe_grouped.cpp).
#pragma once
#include <torch/torch.h>

namespace rbk {

// Width of a row of `cols` values with a ones (or bias) column appended, padded to a multiple of 8.
inline int64_t with_bias_column(int64_t cols) { return (cols + 1 + 7) / 8 * 8; }

// [x 1 0]: x (..., D) -> (..., with_bias_column(D)), differentiable in x.
inline torch::Tensor append_ones_column(const torch::Tensor& x) {
  auto lead = x.sizes().vec();
  const int64_t D = lead.back();
  lead.back() = 1;
  const auto ones = torch::ones(lead, x.options());
  lead.back() = with_bias_column(D) - D - 1;
  return torch::cat({x, ones, torch::zeros(lead, x.options())}, -1);
}

// [W b 0]: weight (..., rows, cols), bias (..., rows) -> (..., rows, width) with width >=
// cols + 1 (with_bias_column(cols) unless a caller pads further); differentiable in both.
inline torch::Tensor append_bias_column(const torch::Tensor& weight, const torch::Tensor& bias, int64_t width) {
  auto lead = weight.sizes().vec();
  lead.back() = width - lead.back() - 1;
  TORCH_CHECK(lead.back() >= 0, "append_bias_column: width ", width, " is less than cols + 1 = ", weight.size(-1) + 1);
  return torch::cat({weight, bias.unsqueeze(-1), torch::zeros(lead, weight.options())}, -1);
}

}  // namespace rbk
