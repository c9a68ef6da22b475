// AdamW for a training step captured once in a CUDA graph and replayed (issue 25; rbk::CudaGraph,
// torch_compat_cuda_graph.h). A captured step replays its kernels with the scalars they were
// launched with, so torch::optim::AdamW and rbk::MultiTensorAdamW, whose step count, bias
// corrections and learning rate are host numbers, would apply the capture step's corrections at
// every replay. Here all three live in one-element tensors on the parameters' device: each replay
// increments the step and computes its own corrections, and set_lr() between replays changes the
// rate the next replay reads.
//
// The arithmetic is torch::optim::AdamW's (decoupled weight decay, bias-corrected moments, eps
// added after the corrected square root). The bias corrections are computed in float64 by both
// kernels below (1 - 0.999^t in float32 would lose five digits at t = 1); the factors applied to
// float32 tensors are rounded to float32 once, as a host scalar passed to a float32 kernel is. So
// the result equals torch::optim::AdamW's within float32 rounding, not bit for bit
// (tests/lm/adamw_test_support.h bounds the difference, on the CPU and on CUDA).
//
// Two kernels for the same arithmetic (Kernel):
// * MultiTensor: multi-tensor operations over every parameter at once, the step count in float64:
//   ~10 passes over the parameters' size (weight decay, two per moment, the denominators in four,
//   the update). Temporary memory: one copy of all parameters (the denominators, which also carry
//   the step size, so that one addcdiv applies the update), which lm_throughput's ~32M-parameter
//   models afford.
// * Fused: LibTorch's fused AdamW kernel (torch_compat_fused_adamw.h; CUDA, LibTorch >= 2.4), one pass that
//   reads parameter, gradient and both moments and writes the three. Same formula; its step count is
//   a float32 device tensor (exact to 2^24 steps) from which the kernel computes the bias
//   corrections in double, and its learning rate a float32 device tensor. With MultiTensor, the
//   profile's optimizer kernels took 1.78 ms of the 23.3 ms ResNet-BK step at 32k (40M parameters;
//   NOTES.md, session 29), ~4x the time the fused pass's 28 bytes a parameter take at the H100's
//   bandwidth.
// Auto (the default) is Fused where it runs, else MultiTensor; tests pin each one.
//
// Every parameter's gradient must be defined at every step (a captured step needs a fixed set of
// tensors): step() throws naming the first parameter without one. All parameters share one dtype.
// amsgrad is not implemented.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace rbk {

class DeviceStepAdamW {
 public:
  enum class Kernel { Auto, MultiTensor, Fused };
  // Kernel::Fused where it cannot run (no CUDA parameters, or a LibTorch without it) is an error.
  DeviceStepAdamW(std::vector<torch::Tensor> params, const torch::optim::AdamWOptions& options,
                  Kernel kernel = Kernel::Auto);

  // Sets every gradient to none: the next backward allocates them (inside a capture, from the
  // graph's pool, where every replay writes them again).
  void zero_grad();
  // One AdamW update of every parameter from its gradient. No host synchronisation, no host
  // scalar that changes from step to step.
  void step();
  // The learning rate of the next step(), written into the device tensor step() reads.
  void set_lr(double lr);

  // Steps taken so far (reads the device counter: a synchronisation; for tests and checks).
  int64_t steps_taken() const;
  const std::vector<torch::Tensor>& exp_avgs() const { return exp_avgs_; }
  const std::vector<torch::Tensor>& exp_avg_sqs() const { return exp_avg_sqs_; }
  // Whether step() runs the fused kernel (Kernel::Fused, or Auto where it runs).
  bool fused() const { return fused_; }

 private:
  void multi_tensor_step(const std::vector<torch::Tensor>& grads);

  std::vector<torch::Tensor> params_, exp_avgs_, exp_avg_sqs_;
  // One element each, on the parameters' device: float64 for MultiTensor, float32 for Fused (what
  // its kernel reads).
  torch::Tensor step_, lr_;
  std::vector<torch::Tensor> steps_;  // Fused: step_ once per parameter, as the kernel takes them
  double beta1_, beta2_, eps_, weight_decay_;
  bool fused_ = false;
};

}  // namespace rbk
