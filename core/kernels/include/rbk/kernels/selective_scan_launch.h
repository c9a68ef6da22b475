// Raw-pointer launchers of the Mamba-1 selective-scan CUDA kernels (core/kernels/selective_scan.cu;
// issue 7, Mamba baseline). No LibTorch here: the kernels compile with nvcc on machines whose Torch
// has no CUDA; the torch glue (rbk/cuda_glue/selective_scan_cuda.h) and the benchmark call these.
// Maths and shapes: rbk/selective_scan.h. Everything is float32, contiguous, row-major:
//   u, delta, z, out, dout, du, ddelta, dz : (Bt, Dm, L)      A : (Dm, N)
//   B, C, dB, dC : (Bt, N, L)      D, delta_bias : (Dm,)
//
// Two variants (SelectiveScanParams::variant); both write the same outputs in the same layouts, so
// a forward of one may be paired with a backward of the other:
//   SsVariant::Sequential (selective_scan.cu): one thread block per (batch, 32 channels); a channel
//     is handled by 4 adjacent lanes, each holding N/4 state floats in registers, sequential over L
//     in tiles of kSsTile steps whose (channel x time) slices are loaded through shared memory
//     (coalesced along L); IEEE expf. The forward keeps h only in registers and stores it at every
//     chunk start (kSsChunk steps): chunk_states (Bt, Dm, n_chunks, N). The backward walks the
//     chunks in reverse: it recomputes the tile-start states of the chunk from the stored chunk
//     state, then each tile's states in registers, and runs the adjoint recurrence backwards. dB
//     and dC (shared by all channels) are reduced across the block's 32 channels (warp-shuffle
//     reduce-scatter, then shared memory) into a per-block partial (Bt, n_blocks, 2, N, L) and
//     summed over blocks by a second kernel: no atomics, so the gradients are deterministic. dA,
//     dD, ddelta_bias are written per batch row (Bt, Dm, N), (Bt, Dm), (Bt, Dm) and summed over Bt
//     by the caller.
//   SsVariant::Runs (selective_scan_runs_{fwd,bwd}.cu). Forward: one pass over L, one channel per lane and
//     4 warps of 4 states each. Backward: a block is one chunk of 32 channels, one channel per
//     lane, 8 warps each owning a run of 8 steps; each thread loops over the states, so sums over
//     states stay in registers and only dB/dC need a cross-lane sum (through shared memory). Chunks
//     are chained by a look-back (the block of a chunk waits for the adjoint carry the block of the
//     chunk to its right publishes); blocks take chunks in start order, so the wait cannot
//     deadlock. dA, dD, ddelta_bias go per chunk to the workspace and are summed over chunks in a
//     fixed order (still no atomics).
//   SsVariant::Auto (the default): runs (measured fastest at every length of the H100 sweep,
//     notes/baseline_kernels.md), sequential where the runs grid would not fit.
// The chunk-parallel variants chunked, hybrid and lean were removed on 2026-12-05 (issue 18; their
// design and timings: notes/baseline_kernels.md).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace rbk::cuda {

constexpr int64_t kSsTile = 16;          // time steps per shared-memory tile
// Time steps between stored states (4 tiles): one block of the runs backward (8 warps x 8-step
// runs), which at 64 fits 2 blocks per SM: a few % faster than 128 (notes/baseline_kernels.md,
// v4 table).
constexpr int64_t kSsChunk = 64;
constexpr int64_t kSsChannelsPerBlock = 32;
constexpr int64_t kSsMaxState = 16;      // N <= 16 (4 lanes x 4 states); larger N: use the reference

// Which kernels run (both variants write the same outputs in the same layouts, up to rounding).
// Invalid is only ever returned by selective_scan_resolve_variant. The values are those the
// variants had when there were five (notes/baseline_kernels.md).
enum class SsVariant : int {
  Invalid = -1,
  Auto = 0,        // runs, or sequential where the runs grid does not fit
  Sequential = 1,  // one block per (batch, 32 channels) walks all of L
  Runs = 5,        // one channel per lane: single-pass forward, backward with a look-back
};
constexpr const char* selective_scan_variant_name(SsVariant v) {
  switch (v) {
    case SsVariant::Auto: return "auto";
    case SsVariant::Sequential: return "sequential";
    case SsVariant::Runs: return "runs";
    default: return "invalid";
  }
}

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
  SsVariant variant = SsVariant::Auto;  // which kernels run (same results up to rounding)
};

constexpr int64_t selective_scan_num_chunks(int64_t len) { return (len + kSsChunk - 1) / kSsChunk; }
constexpr int64_t selective_scan_num_channel_blocks(int64_t dim) {
  return (dim + kSsChannelsPerBlock - 1) / kSsChannelsPerBlock;
}
// Floats of the per-block dB/dC partials: Bt * n_blocks * 2 * N * L (both variants).
constexpr int64_t selective_scan_bwd_partials_floats(int64_t batch, int64_t dim, int64_t len, int64_t dstate) {
  return batch * selective_scan_num_channel_blocks(dim) * 2 * dstate * len;
}
// Backward workspace of both variants: the dB/dC partials, then (runs) per (batch, channel, chunk):
// the adjoint carry (N), a slot of one float (the chunk's sum of step sizes in the removed
// chunk-parallel variants; kept so the layout did not change), the dA (N), dD (1) and ddelta_bias (1)
// partials, then a block counter in one float slot. One size for both variants, so callers need
// not know the variant. (Constexpr so the kernels' device code
// uses the same formulas; the kernels are built with --expt-relaxed-constexpr.)
constexpr int64_t selective_scan_bwd_workspace_floats(int64_t batch, int64_t dim, int64_t len, int64_t dstate) {
  return selective_scan_bwd_partials_floats(batch, dim, len, dstate) +
         batch * dim * selective_scan_num_chunks(len) * (2 * dstate + 3) + 1;
}

// Return the launch error (cudaSuccess when every launch was accepted; cudaErrorInvalidValue for an
// unknown variant, or runs where its grid would not fit); they do not
// synchronise. The forward writes out and chunk_states; the backward needs the same inputs,
// chunk_states and dout, and writes du, ddelta, dz, dA_part, dD_part, ddelta_bias_part, dB, dC.
cudaError_t launch_selective_scan_forward(const SelectiveScanParams& p, cudaStream_t stream);
// The variant the launchers run for p (p.variant resolved on the current device; Auto is never
// returned), or SsVariant::Invalid where p.variant is unknown or cannot run at p's length.
SsVariant selective_scan_resolve_variant(const SelectiveScanParams& p);
cudaError_t launch_selective_scan_backward(const SelectiveScanParams& p, cudaStream_t stream);

}  // namespace rbk::cuda
