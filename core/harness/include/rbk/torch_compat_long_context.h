// Version guard of the long-context experiment (issue 19, C19): forcing the Transformer's
// attention onto the math (unfused, N x N scores) path of scaled_dot_product_attention, so that
// "dense attention" memory at N = 4096 is measured as the papers compare it, next to the fused
// (flash / memory-efficient) kernels. LibTorch 1.13 has no fused attention: causal_attention
// (torch_compat.h) is already the explicit masked softmax there, and the guard does nothing.
#pragma once
#include <torch/torch.h>
#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

namespace rbk {

// While alive (math_only = true), scaled_dot_product_attention may use the math kernel only; the
// previous switches are restored on destruction. math_only = false changes nothing.
class MathAttentionOnly {
 public:
  explicit MathAttentionOnly(bool math_only) : active_(math_only) {
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
    if (!active_) return;
    auto& ctx = at::globalContext();
    flash_ = ctx.userEnabledFlashSDP();
    mem_efficient_ = ctx.userEnabledMemEfficientSDP();
    ctx.setSDPUseFlash(false);
    ctx.setSDPUseMemEfficient(false);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
    cudnn_ = ctx.userEnabledCuDNNSDP();
    ctx.setSDPUseCuDNN(false);
#endif
#endif
  }
  ~MathAttentionOnly() {
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
    if (!active_) return;
    auto& ctx = at::globalContext();
    ctx.setSDPUseFlash(flash_);
    ctx.setSDPUseMemEfficient(mem_efficient_);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
    ctx.setSDPUseCuDNN(cudnn_);
#endif
#endif
  }
  MathAttentionOnly(const MathAttentionOnly&) = delete;
  MathAttentionOnly& operator=(const MathAttentionOnly&) = delete;

  // Which attention kernels a Transformer can use in this build under the guard.
  static const char* backend(bool math_only) {
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
    return math_only ? "sdpa_math_only" : "sdpa_any (flash / memory-efficient where eligible)";
#else
    (void)math_only;
    return "explicit_masked_softmax (LibTorch 1.13: no fused attention)";
#endif
  }

 private:
  bool active_ = false;
  bool flash_ = true, mem_efficient_ = true, cudnn_ = true;
};

}  // namespace rbk
