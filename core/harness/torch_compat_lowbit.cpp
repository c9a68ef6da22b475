// Version-guarded INT8 and INT4 matmul timing (torch_compat_lowbit.h).
#include "rbk/torch_compat_lowbit.h"

#include "rbk/quantization.h"
#include "rbk/timing.h"

#include <algorithm>
#include <functional>

#if defined(TORCH_VERSION_MAJOR) && (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1))
#define RBK_HAS_INT_MM 1
#include <torch/cuda.h>
#else
#define RBK_HAS_INT_MM 0
#endif
// The INT4 pair from LibTorch 2.5 (uint8 packing input), and only where this build still ships
// both operators' headers: a later LibTorch that dropped or renamed them compiles the "skipped"
// path instead of breaking the build.
#if defined(TORCH_VERSION_MAJOR) && (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)) && \
    __has_include(<ATen/ops/_weight_int4pack_mm.h>) && __has_include(<ATen/ops/_convert_weight_to_int4pack.h>)
#define RBK_HAS_INT4PACK_MM 1
#include <ATen/ops/_convert_weight_to_int4pack.h>
#include <ATen/ops/_weight_int4pack_mm.h>
#else
#define RBK_HAS_INT4PACK_MM 0
#endif

namespace rbk {

std::string int8_matmul_unavailable_reason(torch::Device device) {
#if RBK_HAS_INT_MM
  if (!device.is_cuda()) return "at::_int_mm runs on CUDA only; this run is on " + device.str();
  return "";
#else
  (void)device;
  return "at::_int_mm needs LibTorch >= 2.1; this build has " + std::string(TORCH_VERSION);
#endif
}

std::string int4_matmul_unavailable_reason(torch::Device device) {
#if RBK_HAS_INT4PACK_MM
  if (!device.is_cuda()) return "at::_weight_int4pack_mm is timed on CUDA only; this run is on " + device.str();
  return "";
#else
  (void)device;
  return "at::_weight_int4pack_mm with uint8 packing needs LibTorch >= 2.5 with its operator headers; this build has " +
         std::string(TORCH_VERSION);
#endif
}

namespace {

// Median wall milliseconds of f over `repeats` calls, each ending with a device synchronisation
// (timing.h's time_repeated times the host clock), after the work queued before it has finished.
[[maybe_unused]] double median_cuda_ms(const std::function<void()>& f, int repeats) {
#if RBK_HAS_INT_MM
  torch::cuda::synchronize();
#endif
  return 1e3 * time_repeated(
                   [&] {
                     f();
#if RBK_HAS_INT_MM
                     torch::cuda::synchronize();
#endif
                   },
                   0, std::max(1, repeats))
                   .median_s;
}

}  // namespace

nlohmann::json time_int8_matmul(const torch::Tensor& x, const torch::Tensor& w, int repeats) {
  nlohmann::json out{{"M", x.size(0)}, {"K", x.size(1)}, {"N", w.size(0)}};
  const std::string why = int8_matmul_unavailable_reason(x.device());
  if (!why.empty()) {
    out.update({{"status", "skipped"}, {"reason", why}});
    return out;
  }
  // _int_mm's shape rules (CUDA): M > 16, K and N multiples of 8.
  if (x.size(0) <= 16 || x.size(1) % 8 != 0 || w.size(0) % 8 != 0) {
    out.update({{"status", "skipped"}, {"reason", "_int_mm needs M > 16 and K, N multiples of 8"}});
    return out;
  }
#if RBK_HAS_INT_MM
  torch::NoGradGuard no_grad;
  auto sx = x.abs().amax(1, true).clamp_min(1e-30) / 127.0;          // (M, 1)
  auto sw = symmetric_scales(w, 8, 0).to(x.device());                // (N, 1)
  auto xi = torch::clamp(torch::round(x / sx), -127, 127).to(torch::kInt8).contiguous();
  auto wi = torch::clamp(torch::round(w / sw), -127, 127).to(torch::kInt8);
  auto wt = wi.t().contiguous();                                     // (K, N)
  auto acc = at::_int_mm(xi, wt);                                    // (M, N) int32
  auto exact = xi.to(torch::kDouble).matmul(wt.to(torch::kDouble));
  const double acc_err = (acc.to(torch::kDouble) - exact).abs().max().item<double>();
  auto y = acc.to(torch::kFloat) * sx * sw.t();
  auto y_fake = torch::linear(fake_quantize_per_token_int8(x), fake_quantize_symmetric(w, 8, 0));
  const double ref = y_fake.abs().max().item<double>();
  const double rel = (y - y_fake).abs().max().item<double>() / std::max(ref, 1e-30);
  constexpr double kRelTolerance = 1e-5;  // fp32 rounding of the dequantization and of the K-term sum
  out.update({{"int32_accumulator_max_abs_error", acc_err}, {"dequantized_rel_error", rel}});
  if (acc_err != 0.0 || rel > kRelTolerance) {
    out.update({{"status", "mismatch"}, {"reason", "the _int_mm output differs from the fake-quantized reference"}});
    return out;
  }
  const auto median_ms = [&](const std::function<void()>& f) { return median_cuda_ms(f, repeats); };
  const bool tf32 = at::globalContext().allowTF32CuBLAS();
  at::globalContext().setAllowTF32CuBLAS(false);
  auto wf = w.t().contiguous();
  const double ms_int8 = median_ms([&] { (void)at::_int_mm(xi, wt); });
  const double ms_fp32 = median_ms([&] { (void)x.matmul(wf); });
  at::globalContext().setAllowTF32CuBLAS(tf32);
  out.update({{"status", "ok"}, {"int8_ms_median", ms_int8}, {"fp32_ms_median", ms_fp32}, {"repeats", repeats}});
  return out;
#else
  (void)repeats;
  return out;
#endif
}

nlohmann::json time_int4_matmul(const torch::Tensor& x, const torch::Tensor& w, int64_t group_size, int repeats) {
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  nlohmann::json out{{"M", M}, {"K", K}, {"N", N}, {"group_size", group_size}};
  const std::string why = int4_matmul_unavailable_reason(x.device());
  if (!why.empty()) {
    out.update({{"status", "skipped"}, {"reason", why}});
    return out;
  }
  const bool group_ok = group_size == 32 || group_size == 64 || group_size == 128 || group_size == 256;
  if (!group_ok || K % group_size != 0 || K % 32 != 0 || N % 8 != 0) {
    out.update({{"status", "skipped"},
                {"reason", "_weight_int4pack_mm needs a group size in {32, 64, 128, 256} dividing K, K a multiple of 32 "
                           "and N a multiple of 8"}});
    return out;
  }
#if RBK_HAS_INT4PACK_MM
  torch::NoGradGuard no_grad;
  const int64_t inner_k_tiles = K % 128 == 0 ? 8 : (K % 64 == 0 ? 4 : 2);
  // The kernel's grid: per (row, group) min and step, q = round((w - min) / s) in [0, 15]; the kernel
  // computes (q - 8) s + z with z = min + 8 s, both read as bf16.
  const auto wg = w.to(torch::kFloat).reshape({N, K / group_size, group_size});
  const auto lo = std::get<0>(wg.min(-1, true));
  const auto hi = std::get<0>(wg.max(-1, true));
  const auto step = (hi - lo).clamp_min(1e-6) / 15.0;
  const auto q = torch::clamp(torch::round((wg - lo) / step), 0, 15).to(torch::kInt32).reshape({N, K});
  const auto step_bf = step.to(torch::kBFloat16), zero_bf = (lo + 8.0 * step).to(torch::kBFloat16);
  const auto w_deq = ((q.reshape({N, K / group_size, group_size}).to(torch::kFloat) - 8.0) * step_bf.to(torch::kFloat) +
                      zero_bf.to(torch::kFloat))
                         .reshape({N, K});
  using torch::indexing::None;
  using torch::indexing::Slice;
  const auto packed_bytes = (q.index({Slice(), Slice(0, None, 2)}).bitwise_left_shift(4) | q.index({Slice(), Slice(1, None, 2)}))
                                .to(torch::kUInt8)
                                .contiguous();
  const auto packed = at::_convert_weight_to_int4pack(packed_bytes, inner_k_tiles);
  const auto scales_and_zeros = torch::stack({step_bf.reshape({N, K / group_size}), zero_bf.reshape({N, K / group_size})}, 2)
                                    .transpose(0, 1)
                                    .contiguous();  // (K / group, N, 2)
  const auto xb = x.to(torch::kBFloat16).contiguous();
  const bool tf32 = at::globalContext().allowTF32CuBLAS();
  at::globalContext().setAllowTF32CuBLAS(false);
  const auto y = at::_weight_int4pack_mm(xb, packed, group_size, scales_and_zeros);
  const auto ref = xb.to(torch::kFloat).matmul(w_deq.t());
  // bf16 output (8 significant bits: <= 2^-9 of the max per element) and bf16 dequantized weights
  // inside the kernel (2^-9 per weight, of random sign over K terms); a packing or grid error is of
  // the order of the output itself.
  constexpr double kInt4RelTolerance = 1e-2;
  const double ref_max = ref.abs().max().item<double>();
  const double rel = (y.to(torch::kFloat) - ref).abs().max().item<double>() / std::max(ref_max, 1e-30);
  out.update({{"inner_k_tiles", inner_k_tiles}, {"dequantized_rel_error", rel}, {"tolerance", kInt4RelTolerance}});
  if (!(rel <= kInt4RelTolerance)) {
    at::globalContext().setAllowTF32CuBLAS(tf32);
    out.update({{"status", "mismatch"}, {"reason", "the _weight_int4pack_mm output differs from the dequantized reference"}});
    return out;
  }
  const auto wb = w.to(torch::kBFloat16).t().contiguous();
  const double ms_int4 = median_cuda_ms([&] { (void)at::_weight_int4pack_mm(xb, packed, group_size, scales_and_zeros); }, repeats);
  const double ms_bf16 = median_cuda_ms([&] { (void)xb.matmul(wb); }, repeats);
  at::globalContext().setAllowTF32CuBLAS(tf32);
  out.update({{"status", "ok"}, {"int4_ms_median", ms_int4}, {"bf16_ms_median", ms_bf16}, {"repeats", repeats}});
  return out;
#else
  (void)repeats;
  return out;
#endif
}

}  // namespace rbk
