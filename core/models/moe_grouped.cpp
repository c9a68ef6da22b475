// Sparse MoE dispatch over expert-aligned tiles, static shapes, no host synchronisation (see
// moe_grouped.h; issue 25).
#include "rbk/moe_grouped.h"

#include "rbk/moe.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace rbk {

StackedExperts stack_experts(const MoeImpl& moe) {
  const auto params = moe.named_parameters();
  std::vector<torch::Tensor> uw, ub, dw, db;
  for (int64_t e = 0; e < moe.options().num_experts; ++e) {
    const std::string up = "up." + std::to_string(e), down = "down." + std::to_string(e);
    uw.push_back(params[up + ".weight"]);
    ub.push_back(params[up + ".bias"]);
    dw.push_back(params[down + ".weight"]);
    db.push_back(params[down + ".bias"]);
  }
  return {torch::stack(uw), torch::stack(ub), torch::stack(dw), torch::stack(db)};
}

int64_t default_grouped_tile_rows(int64_t slots, int64_t num_experts) {
  const double target = static_cast<double>(slots) / (8.0 * static_cast<double>(std::max<int64_t>(num_experts, 1)));
  const double p = std::round(std::log2(std::max(target, 1.0)));
  return std::min<int64_t>(1024, std::max<int64_t>(16, static_cast<int64_t>(std::ldexp(1.0, static_cast<int>(p)))));
}

namespace {

void check_grouped_arguments(const torch::Tensor& x, const torch::Tensor& idx, const torch::Tensor& w,
                             const StackedExperts& s, int64_t tile_rows) {
  TORCH_CHECK(x.dim() == 2, "grouped_expert_mlp: x must be (T, D), got ", x.sizes());
  TORCH_CHECK(idx.dim() == 2 && idx.size(0) == x.size(0) && idx.scalar_type() == torch::kInt64,
              "grouped_expert_mlp: idx must be (T, k) int64 with T = ", x.size(0), ", got ", idx.sizes(), " ", idx.scalar_type());
  TORCH_CHECK(w.sizes() == idx.sizes(), "grouped_expert_mlp: w must have idx's shape ", idx.sizes(), ", got ", w.sizes());
  const int64_t D = x.size(1);
  TORCH_CHECK(s.up_weight.dim() == 3 && s.up_weight.size(2) == D, "grouped_expert_mlp: up_weight must be (E, hD, ", D, "), got ",
              s.up_weight.sizes());
  const int64_t E = s.up_weight.size(0), H = s.up_weight.size(1);
  TORCH_CHECK(s.up_bias.sizes() == torch::IntArrayRef({E, H}), "grouped_expert_mlp: up_bias must be (", E, ", ", H, "), got ",
              s.up_bias.sizes());
  TORCH_CHECK(s.down_weight.sizes() == torch::IntArrayRef({E, D, H}), "grouped_expert_mlp: down_weight must be (", E, ", ", D,
              ", ", H, "), got ", s.down_weight.sizes());
  TORCH_CHECK(s.down_bias.sizes() == torch::IntArrayRef({E, D}), "grouped_expert_mlp: down_bias must be (", E, ", ", D,
              "), got ", s.down_bias.sizes());
  TORCH_CHECK(tile_rows >= 0, "grouped_expert_mlp: tile_rows must be >= 0 (0 = default), got ", tile_rows);
}

}  // namespace

torch::Tensor grouped_expert_mlp(const torch::Tensor& x, const torch::Tensor& idx, const torch::Tensor& w,
                                 const StackedExperts& experts, double dropout, bool training, int64_t tile_rows) {
  check_grouped_arguments(x, idx, w, experts, tile_rows);
  const int64_t T = x.size(0), D = x.size(1), k = idx.size(1), S = T * k;
  const int64_t E = experts.up_weight.size(0);
  if (S == 0) return torch::zeros_like(x);
  const int64_t R = tile_rows > 0 ? tile_rows : default_grouped_tile_rows(S, E);
  const int64_t n_tiles = (S + R - 1) / R + E;  // sum_e ceil(count_e / R) never exceeds it
  const int64_t P = n_tiles * R;
  const auto ints = idx.options();

  // The layout, all on the device and without gradients: slot s = t k + j of token t.
  torch::Tensor row_of_slot, src_of_row, tile_expert;
  {
    torch::NoGradGuard ng;
    const auto expert_of_slot = idx.reshape({-1});
    const auto order = std::get<1>(expert_of_slot.sort(/*stable=*/true, 0, false));  // slots by expert
    const auto expert_sorted = expert_of_slot.index_select(0, order);
    const auto counts = expert_of_slot.unsqueeze(1).eq(torch::arange(E, ints)).sum(0);  // (E,) int64
    const auto padded = torch::div(counts + (R - 1), R, "floor") * R;
    const auto pad_end = padded.cumsum(0);
    const auto pad_start = pad_end - padded;
    const auto start = counts.cumsum(0) - counts;
    // Sorted slot i is row (i - start[e]) of expert e's segment, which begins at pad_start[e].
    const auto dest = torch::arange(S, ints) - start.index_select(0, expert_sorted) + pad_start.index_select(0, expert_sorted);
    row_of_slot = torch::empty_like(dest).index_copy_(0, order, dest);
    const auto token_of_slot = torch::div(torch::arange(S, ints), k, "floor");
    // Padding rows read row T of x_ext below, a row of zeros.
    src_of_row = torch::full({P}, T, ints).index_copy_(0, row_of_slot, token_of_slot);
    // A tile's expert: how many padded segments end at or before its first row (trailing tiles past
    // every segment hold only padding; any expert serves them).
    const auto tile_start = torch::arange(n_tiles, ints) * R;
    tile_expert = tile_start.unsqueeze(1).ge(pad_end.unsqueeze(0)).sum(1).clamp_max(E - 1);
  }

  const auto x_ext = torch::cat({x, torch::zeros({1, D}, x.options())});
  const auto xs = x_ext.index_select(0, src_of_row).view({n_tiles, R, D});
  // The weights are gathered in their own dtype: under autocast the batched GEMM casts the tiles'
  // copies, and the cast's backward hands their gradients back in fp32 before they are summed per
  // expert, so a parameter's gradient is not accumulated in bf16.
  auto h = torch::baddbmm(experts.up_bias.index_select(0, tile_expert).unsqueeze(1), xs,
                          experts.up_weight.index_select(0, tile_expert).transpose(1, 2));
  h = torch::dropout(torch::relu(h), dropout, training);
  const auto y = torch::baddbmm(experts.down_bias.index_select(0, tile_expert).unsqueeze(1), h,
                                experts.down_weight.index_select(0, tile_expert).transpose(1, 2));
  const auto y_slots = y.reshape({P, D}).index_select(0, row_of_slot);  // (S, D) in slot order
  auto out = y_slots * w.reshape({S, 1}).to(y_slots.scalar_type());
  if (k > 1) out = out.view({T, k, D}).sum(1);
  return out.to(x.scalar_type());
}

torch::Tensor expert_mlp_reference(const torch::Tensor& x, const torch::Tensor& idx, const torch::Tensor& w,
                                   const StackedExperts& experts) {
  check_grouped_arguments(x, idx, w, experts, 0);
  auto out = torch::zeros_like(x);
  for (int64_t e = 0; e < experts.up_weight.size(0); ++e) {
    const auto h = torch::relu(x.matmul(experts.up_weight[e].t()) + experts.up_bias[e]);
    const auto y = h.matmul(experts.down_weight[e].t()) + experts.down_bias[e];
    out = out + (w * idx.eq(e).to(w.scalar_type())).sum(1, true) * y;
  }
  return out;
}

}  // namespace rbk
