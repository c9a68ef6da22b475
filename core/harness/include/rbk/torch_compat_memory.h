// Version-guarded CUDA memory controls for the memory search (claims C15, C22): the caching
// allocator's per-process memory fraction, which makes allocations beyond fraction x total fail
// with an out-of-memory error, and the device's total memory. Without CUDA kernels in the build
// both report "unavailable" (false / -1); the CPU search enforces its budget with setrlimit.
#pragma once
#include <torch/torch.h>
#include <cstdint>

namespace rbk {

// Total memory of the CUDA device in bytes, or -1 (no CUDA in this build, or not a CUDA device).
int64_t cuda_total_memory_bytes(const torch::Device& device);
// Caps the caching allocator of `device` at fraction of its total memory (0 < fraction <= 1).
// Returns false where the build has no CUDA.
bool cuda_set_memory_fraction(double fraction, const torch::Device& device);

}  // namespace rbk
