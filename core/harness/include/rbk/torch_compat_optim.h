// Version-guarded LibTorch calls of the multi-tensor optimizer step (multi_tensor_adamw.h) and of
// gradient clipping without a host synchronisation (trainer.h). Part of the torch_compat family:
// only these headers know which LibTorch the build uses.
#pragma once
#include <torch/torch.h>
#if __has_include(<torch/version.h>)
#include <torch/version.h>
#endif

#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace rbk {

// The key of parameter p in torch::optim::Optimizer::state(): LibTorch 1.13 keys a parameter's
// state by its TensorImpl address printed to a string, 2.x by the address itself. Written against
// the map's key type, so one definition serves both.
template <class StateMap>
typename StateMap::key_type optimizer_state_key(const StateMap&, const torch::Tensor& p) {
  using Key = typename StateMap::key_type;
  const void* impl = p.unsafeGetTensorImpl();
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << impl;
    return s.str();
  } else {
    return const_cast<void*>(impl);
  }
}

// Multiplies every tensor of `tensors` in place by the one-element tensor `factor` without reading
// it on the host: one multi-tensor operation where LibTorch has the Tensor overload of
// _foreach_mul_ (2.1 and later), one multiplication per tensor on 1.13 (the same arithmetic).
inline void scale_in_place(const std::vector<torch::Tensor>& tensors, const torch::Tensor& factor) {
#if defined(TORCH_VERSION_MAJOR) && defined(TORCH_VERSION_MINOR) && \
    (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1))
  at::_foreach_mul_(tensors, factor);
#else
  for (const auto& t : tensors) t.mul_(factor);
#endif
}

// LibTorch's fused AdamW kernel with the learning rate in a device tensor (at::_fused_adamw_, the
// Tensor-lr overload of 2.2 and later; used here from 2.4, on CUDA only): one pass that reads every
// parameter, gradient and both moments once and writes parameter and moments, where the
// multi-tensor form takes ~10 passes. Its step counts are float32 device tensors that it reads and
// does not increment, and lr is a float32 device tensor. Only these lines know it exists.
#if defined(TORCH_VERSION_MAJOR) && defined(TORCH_VERSION_MINOR) && \
    (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))
inline constexpr bool kFusedAdamWAvailable = true;
#else
inline constexpr bool kFusedAdamWAvailable = false;
#endif

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
#if defined(TORCH_VERSION_MAJOR) && defined(TORCH_VERSION_MINOR) && \
    (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, lr, beta1, beta2, weight_decay,
                    eps, /*amsgrad=*/false, /*maximize=*/false);
#else
  (void)grads, (void)exp_avgs, (void)exp_avg_sqs, (void)steps, (void)lr, (void)beta1, (void)beta2, (void)weight_decay,
      (void)eps;
#endif
}

}  // namespace rbk
