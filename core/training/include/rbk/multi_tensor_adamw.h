// AdamW whose step updates the parameters of a group with a few multi-tensor (_foreach_) operations
// instead of about ten operations per parameter tensor (issue 25). torch::optim::AdamW's per-tensor
// loop made the update phase of a ResNet-BK training step host-bound on the GPU: 3,314 operator
// calls and 16.8 ms per step for its 156 parameter tensors (NOTES.md, session 7).
//
// Same arithmetic, options and state as torch::optim::AdamW (it is one: the state is
// AdamWParamState, so checkpoints and serialisation are interchangeable). On the CPU every value
// equals torch::optim::AdamW's bit for bit, since the multi-tensor operations run the same
// per-tensor kernels there (tests/training/test_multi_tensor_adamw.cpp); on CUDA the multi-tensor
// kernels may round the last bit differently.
//
// Temporary memory: the denominator sqrt(v) / sqrt(1 - beta2^t) + eps is built for a chunk of
// parameters at a time, at most twice the largest parameter's elements, which is what the
// per-tensor loop holds at once (its sqrt and its quotient), so a step's peak memory is unchanged.
// amsgrad is not implemented (no rbk preset uses it): a group with it set is an error.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace rbk {

class MultiTensorAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace rbk
