// Raw-pointer launchers of the Mamba-1 selective-scan CUDA kernels (core/kernels/selective_scan.cu;
// issue 7, Mamba baseline). No LibTorch here: the kernels compile with nvcc on machines whose Torch
// has no CUDA; the torch glue (rbk/kernels/selective_scan_cuda.h) and the benchmark call these.
// Maths and shapes: rbk/selective_scan.h. Everything is float32, contiguous, row-major:
//   u, delta, z, out, dout, du, ddelta, dz : (Bt, Dm, L)      A : (Dm, N)
//   B, C, dB, dC : (Bt, N, L)      D, delta_bias : (Dm,)
//
// Design: one thread block per (batch, 32 channels); a channel is handled by 4 adjacent lanes, each
// holding N/4 state floats in registers, sequential over L in tiles of kSsTile steps whose
// (channel x time) slices are loaded through shared memory (coalesced along L). The forward keeps
// h only in registers and stores it at every chunk start (kSsChunk steps): chunk_states
// (Bt, Dm, n_chunks, N). The backward walks the chunks in reverse: it recomputes the tile-start
// states of the chunk from the stored chunk state, then each tile's states in registers, and runs
// the adjoint recurrence backwards. dB and dC (shared by all channels) are reduced across the
// block's 32 channels (warp-shuffle reduce-scatter, then shared memory) into a per-block partial
// (Bt, n_blocks, 2, N, L) and summed over blocks by a second kernel: no atomics, so the gradients
// are deterministic. dA, dD, ddelta_bias are written per batch row (Bt, Dm, N), (Bt, Dm), (Bt, Dm)
// and summed over Bt by the caller.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace rbk::cuda {

constexpr int64_t kSsTile = 16;          // time steps per shared-memory tile
constexpr int64_t kSsChunk = 128;        // time steps between stored states (8 tiles)
constexpr int64_t kSsChannelsPerBlock = 32;
constexpr int64_t kSsMaxState = 16;      // N <= 16 (4 lanes x 4 states); larger N: use the reference

struct SelectiveScanParams {
  int64_t batch = 0;   // Bt
  int64_t dim = 0;     // Dm
  int64_t len = 0;     // L
  int64_t dstate = 0;  // N, 1 <= N <= kSsMaxState
  bool delta_softplus = false;
  // inputs
  const float* u = nullptr;
  const float* delta = nullptr;
  const float* A = nullptr;
  const float* B = nullptr;
  const float* C = nullptr;
  const float* D = nullptr;           // may be null (no skip term)
  const float* z = nullptr;           // may be null (no gate)
  const float* delta_bias = nullptr;  // may be null
  // forward outputs
  float* out = nullptr;           // (Bt, Dm, L)
  float* chunk_states = nullptr;  // (Bt, Dm, n_chunks, N): h before each chunk
  // backward
  const float* dout = nullptr;     // (Bt, Dm, L)
  float* du = nullptr;             // (Bt, Dm, L)
  float* ddelta = nullptr;         // (Bt, Dm, L)
  float* dz = nullptr;             // (Bt, Dm, L), only when z
  float* dA_part = nullptr;        // (Bt, Dm, N)
  float* dD_part = nullptr;        // (Bt, Dm), only when D
  float* ddelta_bias_part = nullptr;  // (Bt, Dm), only when delta_bias
  float* dB = nullptr;             // (Bt, N, L)
  float* dC = nullptr;             // (Bt, N, L)
  float* workspace = nullptr;      // selective_scan_bwd_workspace_floats() floats
};

inline int64_t selective_scan_num_chunks(int64_t len) { return (len + kSsChunk - 1) / kSsChunk; }
inline int64_t selective_scan_num_channel_blocks(int64_t dim) {
  return (dim + kSsChannelsPerBlock - 1) / kSsChannelsPerBlock;
}
// Floats of the per-block dB/dC partials: Bt * n_blocks * 2 * N * L.
inline int64_t selective_scan_bwd_workspace_floats(int64_t batch, int64_t dim, int64_t len, int64_t dstate) {
  return batch * selective_scan_num_channel_blocks(dim) * 2 * dstate * len;
}

// Return the launch error (cudaSuccess when every launch was accepted); they do not synchronise.
// The forward writes out and chunk_states; the backward needs the same inputs, chunk_states and
// dout, and writes du, ddelta, dz, dA_part, dD_part, ddelta_bias_part, dB, dC.
cudaError_t launch_selective_scan_forward(const SelectiveScanParams& p, cudaStream_t stream);
cudaError_t launch_selective_scan_backward(const SelectiveScanParams& p, cudaStream_t stream);

}  // namespace rbk::cuda
