// The fused AdamW kernel of LibTorch (at::_fused_adamw_) for rbk::DeviceStepAdamW. Part of the
// torch_compat family: only these headers know which LibTorch the build uses. A header of its own,
// apart from torch_compat_optim.h, because that one is a declared source of most ledger experiments
// and this one of none: only lm_throughput's captured step uses the fused kernel.
#pragma once
#include <torch/torch.h>
#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

#include <vector>

namespace rbk {

// LibTorch's fused AdamW kernel with the learning rate in a device tensor (at::_fused_adamw_, the
// Tensor-lr overload of 2.2 and later; used here from 2.4, on CUDA only): one pass that reads every
// parameter, gradient and both moments once and writes parameter and moments, where the
// multi-tensor form takes ~10 passes. Its step counts are float32 device tensors that it reads and
// does not increment, and lr is a float32 device tensor. Only these lines know it exists.
#if defined(TORCH_VERSION_MAJOR) && defined(TORCH_VERSION_MINOR) && \
    (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))
#define RBK_TORCH_HAS_FUSED_ADAMW 1
#else
#define RBK_TORCH_HAS_FUSED_ADAMW 0
#endif
inline constexpr bool kFusedAdamWAvailable = RBK_TORCH_HAS_FUSED_ADAMW;

// Whether fused_adamw_update() can run on tensors of `device`.
inline bool fused_adamw_runs_on(const torch::Device& device) { return kFusedAdamWAvailable && device.is_cuda(); }

// One decoupled-weight-decay AdamW update of every parameter by the fused kernel (see above); throws
// where fused_adamw_runs_on() is false. `steps` holds one float32 step count per parameter (they
// may all be the same tensor), already incremented for this update.
inline void fused_adamw_update(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                               const std::vector<torch::Tensor>& exp_avgs, const std::vector<torch::Tensor>& exp_avg_sqs,
                               const std::vector<torch::Tensor>& steps, const torch::Tensor& lr, double beta1, double beta2,
                               double weight_decay, double eps) {
  TORCH_CHECK(!params.empty() && fused_adamw_runs_on(params[0].device()),
              "rbk::fused_adamw_update: LibTorch's fused AdamW needs LibTorch >= 2.4 and CUDA tensors");
#if RBK_TORCH_HAS_FUSED_ADAMW
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, lr, beta1, beta2, weight_decay,
                    eps, /*amsgrad=*/false, /*maximize=*/false);
#else
  (void)grads, (void)exp_avgs, (void)exp_avg_sqs, (void)steps, (void)lr, (void)beta1, (void)beta2, (void)weight_decay,
      (void)eps;
#endif
}

}  // namespace rbk
