// Internal to the selective-scan kernels (selective_scan.cu, selective_scan_runs_{fwd,bwd}.cu): the
// element functions and the backward workspace layout they all use. Not a public header.
#pragma once
#include "rbk/kernels/selective_scan_launch.h"

#include <cuda_runtime.h>

namespace rbk::cuda::ss_detail {

// IEEE expf / log1pf (no fast math): these values reach the baseline tables.
__device__ __forceinline__ float softplus_f(float x) { return x <= 20.f ? log1pf(expf(x)) : x; }
__device__ __forceinline__ float sigmoid_f(float x) { return 1.f / (1.f + expf(-x)); }
// softplus_f(x) (bit for bit) and its derivative sigmoid(x) from one expf: sigmoid(x) = e / (1 + e)
// with e = exp(x), and exactly 1 for x > 20 (1 - e^-20 rounds to 1 in fp32, as sigmoid_f gives).
__device__ __forceinline__ void softplus_sigmoid_f(float x, float& sp, float& sg) {
  const float e = expf(x);
  sp = x <= 20.f ? log1pf(e) : x;
  sg = x <= 20.f ? e / (1.f + e) : 1.f;
}

constexpr float kLog2e = 1.4426950408889634f;

// The runs backward's per-(batch, channel, chunk) arrays behind the dB/dC partials in the workspace
// (layout: rbk/kernels/selective_scan_launch.h), each indexed ((b Dm + d) nck + k) [N + n], then
// the block ticket counter (its launcher resets it and the carries before each backward). dtsum is
// unused since the chunk-parallel variants were removed; kept so the layout did not change.
struct ChunkWorkspace {
  float *carry, *dtsum, *dA, *dD, *dbias;
  unsigned* ticket;
};
__host__ __device__ inline ChunkWorkspace chunk_workspace(const SelectiveScanParams& p) {
  const int64_t nck = selective_scan_num_chunks(p.len), bdk = p.batch * p.dim * nck, N = p.dstate;
  float* w = p.workspace + selective_scan_bwd_partials_floats(p.batch, p.dim, p.len, p.dstate);
  return {w, w + bdk * N, w + bdk * (N + 1), w + bdk * (2 * N + 1), w + bdk * (2 * N + 2),
          reinterpret_cast<unsigned*>(w + bdk * (2 * N + 3))};
}

// Backward pass (c) of the runs variant (SsVariant::Runs; selective_scan_runs_bwd.cu): du, ddelta, dz,
// the dB/dC partials and the per-chunk dA, dD, ddelta_bias partials; pass (d) and the dB/dC
// reduction follow in the caller.
cudaError_t launch_selective_scan_bwd_runs(const SelectiveScanParams& p, cudaStream_t stream);
// Forward of the runs variant (selective_scan_runs_fwd.cu): out and chunk_states.
cudaError_t launch_selective_scan_fwd_lanes(const SelectiveScanParams& p, cudaStream_t stream);

}  // namespace rbk::cuda::ss_detail
