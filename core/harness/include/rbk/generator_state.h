// State of the default random generator of a device (the CPU's, or a CUDA device's) and its
// restore: activation checkpointing (block_checkpoint.h) replays a block's dropout and Gumbel
// draws, and the sweep's paired design (sweep.h) builds a reference model without moving the
// caller's random stream. Written against ATen's device-generic Context, which compiles on
// CPU-only LibTorch; there a CUDA device throws "not enabled", which is never reached (no tensor
// can live on CUDA in such a build).
#pragma once
#include <torch/torch.h>

#include <mutex>

namespace rbk {

inline torch::Tensor generator_state(const torch::Device& device) {
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

inline void set_generator_state(const torch::Device& device, const torch::Tensor& state) {
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

}  // namespace rbk
