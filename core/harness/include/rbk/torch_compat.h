// The only place that knows which LibTorch it is built against (1.13 on the CPU machine, 2.11
// on the GPU machine). Everything else uses the API common to both through these helpers.
#pragma once
#include <torch/torch.h>
#include <cmath>
#include <limits>
#include <string>

#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

namespace rbk {

// "1.13.0", "2.11.0+cu130", ...
std::string torch_version_string();

// True where LibTorch divides complex numbers by the textbook formula (torch <= 2.0); from 2.1 it
// scales (Smith's algorithm), which moves upstream's overflow thresholds (see complex_arith.h).
bool torch_uses_textbook_complex_division();

// Whether this build has the torch<->CUDA glue and a CUDA device is visible at run time.
bool cuda_available();

// Name of CUDA device 0, or "cpu" when there is none.
std::string device_name();

// CUDA runtime version of the torch build ("13.0"), or "none".
std::string cuda_version_string();

// Number of CPU threads LibTorch's parallel_for uses (set once from RBK_THREADS or the cores).
int configure_cpu_threads();

// bf16 (or fp16) autocast on CUDA for one scope: the trainer's and the evaluator's forward and
// loss, and the LM throughput benchmark (issues 4 and 7). On entry it enables CUDA autocast with
// `dtype`; on exit it restores the previous enabled flag and dtype and, when the outermost guard
// closes, clears autocast's cache of casted weights (PyTorch's torch.autocast does the same).
// CPU autocast is never touched: a CPU forward under the guard is the plain fp32 forward.
// enabled = false makes a no-op guard, so callers keep one code path for fp32 and bf16.
// Custom autograd Functions get no automatic casts: BK-Core (bk_core_autograd.cpp) takes bf16 v
// on CUDA and returns its gradient in v's dtype; the MoE (moe.cpp) casts expert outputs to the
// accumulator's dtype.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool enabled, torch::ScalarType dtype = torch::kBFloat16);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  bool prev_enabled_ = false;
  torch::ScalarType prev_dtype_ = torch::kHalf;
};
bool cuda_autocast_enabled();
torch::ScalarType cuda_autocast_dtype();

// Waits for all work queued on a CUDA device (no-op for the CPU). For wall-clock timing.
void synchronize_device(const torch::Device& device);

// Peak bytes allocated by LibTorch's CUDA caching allocator on `device` since the last reset
// (the allocator's "allocated_bytes" aggregate peak: tensors, not the allocator's reserve). -1
// where this build has no CUDA glue or the device is not CUDA (results record null there).
int64_t cuda_peak_allocated_bytes(const torch::Device& device);
void cuda_reset_peak_memory(const torch::Device& device);

// Whether causal_attention below runs LibTorch's fused scaled_dot_product_attention (LibTorch >= 2)
// rather than the explicit masked softmax (1.13); benchmarks record it (exp_cpu_scaling, C03).
inline bool fused_attention_available() {
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
  return true;
#else
  return false;
#endif
}

// Causal self-attention, q, k, v: (B, H, N, Dh) -> (B, H, N, Dh). scaled_dot_product_attention
// (flash / memory-efficient kernels on the GPU) where LibTorch has it (>= 2.0), an explicit
// masked softmax on 1.13. Added for the Transformer LM baseline (transformer_lm.h).
inline torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      double dropout_p, bool training) {
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, {}, training ? dropout_p : 0.0, /*is_causal=*/true);
#else
  const int64_t n = q.size(-2);
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1)));
  auto mask = torch::ones({n, n}, torch::TensorOptions().dtype(torch::kBool).device(q.device())).triu(1);
  auto p = torch::softmax(scores.masked_fill(mask, -std::numeric_limits<double>::infinity()), -1);
  if (training && dropout_p > 0) p = torch::dropout(p, dropout_p, true);
  return torch::matmul(p, v);
#endif
}

// Which implementation causal_attention uses in this build (recorded by benchmarks).
inline const char* causal_attention_backend() {
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
  return "scaled_dot_product_attention";
#else
  return "explicit_masked_softmax";
#endif
}

}  // namespace rbk
