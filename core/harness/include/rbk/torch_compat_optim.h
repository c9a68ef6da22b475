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

}  // namespace rbk
