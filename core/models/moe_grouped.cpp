// Sparse MoE dispatch over expert-aligned tiles, static shapes, no host synchronisation (see
// moe_grouped.h; issue 25).
#include "rbk/moe_grouped.h"

#include "rbk/bias_fold.h"

#include "rbk/moe.h"
#include "rbk/torch_compat.h"

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

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// (n, experts) in dtype: row i is the one-hot vector of expert index[i].
torch::Tensor one_hot(const torch::Tensor& index, int64_t experts, torch::ScalarType dtype) {
  return index.unsqueeze(1).eq(torch::arange(experts, index.options())).to(dtype);
}

torch::Tensor with_zero_row(const torch::Tensor& t) {
  return torch::cat({t, torch::zeros({1, t.size(1)}, t.options())});
}

// (R + 1, with_bias_column(D)): [src 1 0] (bias_fold.h) over a row of zeros, written in one pass
// over src (what with_zero_row's copy cost already).
torch::Tensor ones_column_and_zero_row(const torch::Tensor& src) {
  const int64_t R = src.size(0), D = src.size(1), Dp = with_bias_column(D);
  auto buf = torch::empty({R + 1, Dp}, src.options());
  buf.narrow(0, 0, R).narrow(1, 0, D).copy_(src);
  buf.narrow(1, D, 1).fill_(1);
  buf.narrow(1, D + 1, Dp - D - 1).zero_();
  buf.select(0, R).zero_();
  return buf;
}

// Rows of `src` (R, D) picked by `index`; a value R picks a row of zeros (when `index_pads`). With
// `ones_column` (and `index_pads`) each picked source row is [src_r 1 0] of with_bias_column(D)
// values and the row of zeros has no one; the gradient is src's columns only. Its
// backward is a gather as well, not index_select's index_add: the gradient of source row i is the
// sum of the output rows inverse[i group + j], j < group (a value equal to the output's row count
// reads zeros, when `inverse_pads`). That is exact when `inverse` lists, for every source row, each
// output row that reads it (true of both uses below: every slot's token row is read by one padded
// row, every padded row by at most one slot). No atomics: the gradient is deterministic, and the
// index_adds it replaces took ~1.5 ms of the 24 ms grouped step at N 32k on an H100 (NOTES.md,
// session 28).
struct GatherRowsWithInverse : public torch::autograd::Function<GatherRowsWithInverse> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& src, const torch::Tensor& index, bool index_pads,
                               const torch::Tensor& inverse, bool inverse_pads, int64_t group, bool ones_column) {
    TORCH_CHECK(!ones_column || index_pads, "GatherRowsWithInverse: a ones column needs the padding row");
    ctx->save_for_backward({inverse});
    ctx->saved_data["inverse_pads"] = inverse_pads;
    ctx->saved_data["group"] = group;
    ctx->saved_data["rows"] = src.size(0);
    ctx->saved_data["cols"] = src.size(1);
    const auto padded = ones_column ? ones_column_and_zero_row(src) : index_pads ? with_zero_row(src) : src;
    return padded.index_select(0, index);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto inverse = ctx->get_saved_variables()[0];
    const int64_t group = ctx->saved_data["group"].toInt(), rows = ctx->saved_data["rows"].toInt();
    const auto& g = grad_outputs[0];
    auto grad = (ctx->saved_data["inverse_pads"].toBool() ? with_zero_row(g) : g).index_select(0, inverse);
    if (group > 1) grad = grad.view({rows, group, g.size(1)}).sum(1);
    grad = grad.narrow(1, 0, ctx->saved_data["cols"].toInt());  // the ones and zero columns are constants
    return {grad, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// An expert tensor (E, ...) repeated for each tile in `dtype`, stacked.to(dtype)[tile_expert]: cast
// once per expert, then gathered, rather than gathered in the parameters' dtype and cast per tile
// by autocast (n_tiles copies written twice; NOTES.md, session 32's kernel attribution at 32k).
// Backward sums each tile's gradient into its expert by one GEMM with the tiles' one-hot expert
// matrix (n_tiles, E), in the parameters' dtype as autocast's cast backward had it: the same values
// as gathering first. Deterministic, where index_select's backward is an index_add with atomics.
struct PerTileExpertTensor : public torch::autograd::Function<PerTileExpertTensor> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& stacked, const torch::Tensor& tile_expert,
                               torch::ScalarType dtype) {
    ctx->save_for_backward({tile_expert});
    ctx->saved_data["experts"] = stacked.size(0);
    ctx->saved_data["sizes"] = stacked.sizes().vec();
    ctx->saved_data["param_dtype"] = static_cast<int64_t>(stacked.scalar_type());
    return stacked.to(dtype).index_select(0, tile_expert);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto tile_expert = ctx->get_saved_variables()[0];
    const int64_t experts = ctx->saved_data["experts"].toInt();
    const auto sizes = ctx->saved_data["sizes"].toIntVector();
    const auto dtype = static_cast<torch::ScalarType>(ctx->saved_data["param_dtype"].toInt());
    // The weights' tile gradients arrive as transposed views of contiguous (tiles, cols, rows)
    // tensors (the GEMMs read the weights transposed). They are summed per expert in that layout,
    // read in order, and only the E sums are transposed back: making all tiles contiguous first was
    // a strided copy of every tile (2 x 0.20 ms of a 32k step on an H100, 1080b84).
    const auto& tile_grad = grad_outputs[0];
    const bool transposed = tile_grad.dim() == 3 && !tile_grad.is_contiguous() && tile_grad.transpose(1, 2).is_contiguous();
    const auto g = (transposed ? tile_grad.transpose(1, 2) : tile_grad.contiguous()).to(dtype);
    auto sums = one_hot(tile_expert, experts, dtype).t().mm(g.reshape({g.size(0), -1}));
    if (transposed) sums = sums.view({experts, g.size(1), g.size(2)}).transpose(1, 2).contiguous();
    return {sums.view(sizes), torch::Tensor(), torch::Tensor()};
  }
};

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
  torch::Tensor row_of_slot, src_of_row, slot_of_row, tile_expert;
  {
    torch::NoGradGuard ng;
    const auto expert_of_slot = idx.reshape({-1});
    // Each slot's rank among the slots of its expert, in slot order (what a stable sort by expert
    // gives), from a running count per expert instead of a radix sort of 64-bit keys (8 passes, ~11
    // launches a layer; 0.37 ms of the 32k step, NOTES.md session 29). The counts run as ONE 1-D
    // scan over the expert-major one-hot (E S,): LibTorch scans a 1-D tensor with CUB, while a scan
    // along dim 0 of the (S, E) one-hot ran E threads down S rows (tensor_kernel_scan_outer_dim:
    // 5.2 ms a layer at S = 32,768 on an H100, NOTES.md session 30). running[e][s] is then the
    // number of slots of experts < e plus those of expert e among slots 0..s.
    const auto running = one_hot(expert_of_slot, E, torch::kInt64).t().contiguous().view({-1}).cumsum(0).view({E, S});
    const auto ends = running.select(1, S - 1);                                  // (E,): slots of experts <= e
    const auto before = torch::cat({torch::zeros({1}, ints), ends.slice(0, 0, E - 1)});  // slots of experts < e
    const auto counts = ends - before;
    const auto own = running.view({-1}).index_select(0, expert_of_slot * S + torch::arange(S, ints));
    const auto rank = own - before.index_select(0, expert_of_slot) - 1;
    const auto padded = torch::div(counts + (R - 1), R, "floor") * R;
    const auto pad_end = padded.cumsum(0);
    const auto pad_start = pad_end - padded;
    // Slot s is row rank[s] of its expert's segment, which begins at pad_start[expert].
    row_of_slot = pad_start.index_select(0, expert_of_slot) + rank;
    const auto token_of_slot = torch::div(torch::arange(S, ints), k, "floor");
    // Padding rows read row T, the row of zeros that the token gather below appends.
    src_of_row = torch::full({P}, T, ints).index_copy_(0, row_of_slot, token_of_slot);
    slot_of_row = torch::full({P}, S, ints).index_copy_(0, row_of_slot, torch::arange(S, ints));
    // A tile's expert: how many padded segments end at or before its first row (trailing tiles past
    // every segment hold only padding; any expert serves them).
    const auto tile_start = torch::arange(n_tiles, ints) * R;
    tile_expert = tile_start.unsqueeze(1).ge(pad_end.unsqueeze(0)).sum(1).clamp_max(E - 1);
  }

  // The biases ride inside the GEMMs: the token rows carry a ones column (Dp wide) and the up
  // projection's weight [W_up b_up 0] has one more output row that copies it, so the hidden rows
  // carry it too (Hp wide) for [W_down b_down 0]. baddbmm instead wrote each bias over its whole
  // output before the GEMM, and its backward summed the output gradient over the rows for the bias:
  // two passes over the (tiles, R, hD) and (tiles, R, D) buffers per layer (0.245 ms of bias copies
  // in the 32k step's attribution at 3fa197e, NOTES.md session 35). Padding rows have a zero in the
  // ones column; their outputs are never read, so what the bias does there does not matter.
  const int64_t H = experts.up_weight.size(1), Dp = with_bias_column(D), Hp = with_bias_column(H);
  // Token rows into the padded buffer (padding rows read zeros); backward: each token's k slots.
  const auto xs = GatherRowsWithInverse::apply(x, src_of_row, true, row_of_slot, false, k, true).view({n_tiles, R, Dp});
  auto copy_one = torch::zeros({E, Hp - H, Dp}, experts.up_weight.options());
  copy_one.select(1, 0).select(1, D).fill_(1);
  const auto up = torch::cat({append_bias_column(experts.up_weight, experts.up_bias, Dp), copy_one}, 1);  // (E, Hp, Dp)
  const auto down = append_bias_column(experts.down_weight, experts.down_bias, Hp);                      // (E, D, Hp)
  // The weights are gathered in the dtype the batched GEMMs run in (autocast's on CUDA), and their
  // per-tile gradients are summed per expert in the parameters' own dtype, so a parameter's gradient
  // is not accumulated in bf16.
  const auto gemm_dtype = x.is_cuda() && cuda_autocast_enabled() ? cuda_autocast_dtype() : experts.up_weight.scalar_type();
  const auto per_tile = [&](const torch::Tensor& t) { return PerTileExpertTensor::apply(t, tile_expert, gemm_dtype); };
  auto h = torch::relu(torch::bmm(xs, per_tile(up).transpose(1, 2)));
  if (training && dropout > 0.0) {
    h = torch::dropout(h, dropout, training);
    h.select(2, H).fill_(1);  // the ones column is not a hidden unit: dropout must not scale it
  }
  const auto y = torch::bmm(h, per_tile(down).transpose(1, 2));
  // (S, D) in slot order; backward: each padded row's slot, zeros for padding rows.
  const auto y_slots = GatherRowsWithInverse::apply(y.reshape({P, D}), row_of_slot, false, slot_of_row, true, 1, false);
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
