// Version-guarded INT8 matmul timing (torch_compat_lowbit.h).
#include "rbk/torch_compat_lowbit.h"

#include "rbk/quantization.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#if defined(TORCH_VERSION_MAJOR) && (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1))
#define RBK_HAS_INT_MM 1
#include <torch/cuda.h>
#else
#define RBK_HAS_INT_MM 0
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

std::string int4_matmul_status() {
  return "not wired: _convert_weight_to_int4pack / _weight_int4pack_mm changed signature between LibTorch 2.2 and 2.5 "
         "and cannot be compiled and checked against the fake-quantized output on this machine (LibTorch " +
         std::string(TORCH_VERSION) + ")";
}

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
  const auto median_ms = [&](const std::function<void()>& f) {
    std::vector<double> t;
    for (int r = 0; r < std::max(1, repeats); ++r) {
      torch::cuda::synchronize();
      const auto t0 = std::chrono::steady_clock::now();
      f();
      torch::cuda::synchronize();
      t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  };
  const bool tf32 = at::globalContext().allowTF32CuBLAS();
  at::globalContext().setAllowTF32CuBLAS(false);
  auto wf = w.t().contiguous();
  const double ms_int8 = median_ms([&] { (void)at::_int_mm(xi, wt); });
  const double ms_fp32 = median_ms([&] { (void)x.matmul(wf); });
  at::globalContext().setAllowTF32CuBLAS(tf32);
  out.update({{"status", "ok"}, {"int8_ms_median", ms_int8}, {"fp32_ms_median", ms_fp32}, {"repeats", repeats}});
  return out;
#else
  return out;
#endif
}

}  // namespace rbk
