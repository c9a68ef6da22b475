// Mamba-1 selective scan, the "runs" variant (SsVariant::Runs): its forward (out and the state
// entering each chunk, which the backward in selective_scan_runs_bwd.cu starts from).
//
// One channel per lane, as in the backward; warp w of a block holds states n = 4 w .. 4 w + 3 of
// the block's 32 channels in registers and walks all of L in tiles of kFwdTile steps (no split of
// L: the 4 state groups x Bt ceil(Dm / 32) channel blocks give the parallelism, 1536 warps at the
// target point, as the hybrid forward's 4-lanes-per-channel layout has). Why not the hybrid forward:
// Nsight Compute counted 480 M warp instructions for it at the target point, 76 per (warp, step)
// (exp2f's denormal fix-ups, two shuffles and a conditional store for y, scalar tile loads with
// their index arithmetic); here a warp-step is 4 x (FMUL, MUFU, FMUL, FFMA, FFMA) plus 5
// shared-memory accesses, each element's softplus and gate are computed once by the thread that
// loads it, with 16-byte loads and stores: 303 M instructions. With y kept in registers over a tile
// (below) the forward measured 580 against the hybrid's 772 us at the target point (notes v5); it
// is latency-bound with the 12 warps per SM this shape has. Decays are ex2.approx.ftz as in the
// backward, which replays them bit for bit.
#include <cuda_runtime.h>

#include "selective_scan_runs_lanes.cuh"

namespace rbk::cuda::ss_detail {
namespace {

constexpr int kFwdTile = 32;                        // steps per tile
// 4 state groups: 8 (2 states per warp, 23 warps per SM instead of 12) measured slower (fwd 677 vs
// 648 us at the target point, one call).
constexpr int kFwdWarps = 4;                        // state groups
constexpr int kFwdThreads = 32 * kFwdWarps;         // 128
constexpr int kFwdStates = kNS / kFwdWarps;         // 4 states per thread
constexpr int kFwdElems = kLanes * kFwdTile / kFwdThreads;  // 8 consecutive steps of one channel per thread
constexpr int kFwdBc = kNS * kFwdTile / kFwdThreads;  // consecutive steps of one state's B and C per thread
constexpr int kFwdEPR = kFwdTile / kFwdElems;       // threads per channel row of a tile
constexpr int kFwdRow = kLanes + 1;                 // (step, channel) rows padded: conflict-free both ways
constexpr int kFwdBcRow = kNS + 4;                  // (step, state) rows: 16-byte aligned for float4 reads
static_assert(kSsChunk % kFwdTile == 0, "chunk starts fall on tile starts");
static_assert(kFwdElems % 4 == 0 && kFwdStates % 4 == 0 && kFwdBc % 4 == 0, "whole float4 loads (load_run4)");

struct FwdSmem {
  float dt[kFwdTile][kFwdRow];    // step size (0 past L and for channels past Dm)
  float dtu[kFwdTile][kFwdRow];   // dt u
  alignas(16) float B[kFwdTile][kFwdBcRow];
  alignas(16) float C[kFwdTile][kFwdBcRow];
  float y[kFwdWarps][kFwdTile][kFwdRow];  // each state group's part of y
};

// A tile's global values, loaded one tile ahead: thread i holds kFwdElems steps from
// kFwdElems (i % kFwdEPR) of channel i / kFwdEPR (u, delta, z), and kFwdBc steps from
// kFwdBc (i / kNS) of state i % kNS (B, C).
struct FwdTileRegs {
  float u[kFwdElems], dl[kFwdElems], z[kFwdElems];
  float B[kFwdBc], C[kFwdBc];
};

template <bool HAS_Z>
__device__ __forceinline__ void fwd_load_tile(FwdTileRegs& r, const SelectiveScanParams& p, int64_t row, bool cvalid,
                                              int64_t bn_row, bool nvalid, int64_t t0, bool vec) {
  const int te = kFwdElems * (threadIdx.x % kFwdEPR), tb = kFwdBc * (threadIdx.x / kNS);
  const int64_t L = p.len;
  if (cvalid) {
    load_run(p.u + row, t0 + te, L, vec, r.u);
    load_run(p.delta + row, t0 + te, L, vec, r.dl);
    if (HAS_Z) load_run(p.z + row, t0 + te, L, vec, r.z);
  } else {
#pragma unroll
    for (int e = 0; e < kFwdElems; ++e) r.u[e] = r.dl[e] = r.z[e] = 0.f;
  }
  if (vec && t0 + kFwdTile <= L && nvalid) {
    load_run4(p.B + bn_row + t0 + tb, r.B);
    load_run4(p.C + bn_row + t0 + tb, r.C);
  } else {
#pragma unroll
    for (int j = 0; j < kFwdBc; ++j) {
      const bool ok = nvalid && t0 + tb + j < L;
      r.B[j] = ok ? p.B[bn_row + t0 + tb + j] : 0.f;
      r.C[j] = ok ? p.C[bn_row + t0 + tb + j] : 0.f;
    }
  }
}

template <bool HAS_Z>
__global__ void __launch_bounds__(kFwdThreads) selective_scan_fwd_lanes_kernel(SelectiveScanParams p) {
  __shared__ FwdSmem s;
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const int N = static_cast<int>(p.dstate);
  const int64_t L = p.len, b = blockIdx.y, c0 = static_cast<int64_t>(blockIdx.x) * kLanes;
  const int64_t nck = selective_scan_num_chunks(L);
  // Recurrence: channel c0 + lane, states 4 w + j.
  const int64_t d = c0 + lane;
  const bool dvalid = d < p.dim;
  float Al[kFwdStates], h[kFwdStates];
#pragma unroll
  for (int j = 0; j < kFwdStates; ++j) {
    const int n = kFwdStates * w + j;
    Al[j] = dvalid && n < N ? p.A[d * N + n] * kLog2e : 0.f;
    h[j] = 0.f;
  }
  // Elements: channel c0 + ce, steps te .. te + 7 of each tile; B and C: state nb, steps tb .. tb + 3.
  const int ce = threadIdx.x / kFwdEPR, te = kFwdElems * (threadIdx.x % kFwdEPR);
  const int nb = threadIdx.x % kNS, tb = kFwdBc * (threadIdx.x / kNS);
  const bool cvalid = c0 + ce < p.dim, nvalid = nb < N;
  const int64_t row = (b * p.dim + (cvalid ? c0 + ce : 0)) * L, bn_row = (b * N + (nvalid ? nb : 0)) * L;
  const float bias = p.delta_bias && cvalid ? p.delta_bias[c0 + ce] : 0.f;
  const float Dv = p.D && cvalid ? p.D[c0 + ce] : 0.f;
  const bool vec = L % 4 == 0 && ((reinterpret_cast<uintptr_t>(p.u) | reinterpret_cast<uintptr_t>(p.delta) |
                                   reinterpret_cast<uintptr_t>(p.z) | reinterpret_cast<uintptr_t>(p.out) |
                                   reinterpret_cast<uintptr_t>(p.B) | reinterpret_cast<uintptr_t>(p.C)) % 16 == 0);
  FwdTileRegs r;
  fwd_load_tile<HAS_Z>(r, p, row, cvalid, bn_row, nvalid, 0, vec);
  for (int64_t t0 = 0; t0 < L; t0 += kFwdTile) {
    // ---- the loaded tile into shared memory: dt, dt u, B, C; u and the gate stay in registers ----
    float u_keep[kFwdElems], gate[kFwdElems];
#pragma unroll
    for (int e = 0; e < kFwdElems; ++e) {
      const float x = r.dl[e] + bias;
      // Padding steps past L and channels past Dm get dt = 0: a = 1 and no input, the identity.
      const float dt = cvalid && t0 + te + e < L ? (p.delta_softplus ? softplus_f(x) : x) : 0.f;
      s.dt[te + e][ce] = dt;
      s.dtu[te + e][ce] = dt * r.u[e];
      u_keep[e] = r.u[e];
      gate[e] = HAS_Z ? r.z[e] * sigmoid_f(r.z[e]) : 1.f;  // silu(z)
    }
#pragma unroll
    for (int j = 0; j < kFwdBc; ++j) {
      s.B[tb + j][nb] = r.B[j];
      s.C[tb + j][nb] = r.C[j];
    }
    __syncthreads();
    // Prefetch the next tile while this one is computed.
    if (t0 + kFwdTile < L) fwd_load_tile<HAS_Z>(r, p, row, cvalid, bn_row, nvalid, t0 + kFwdTile, vec);
    // The state entering each chunk, for the backward.
    if (t0 % kSsChunk == 0 && dvalid) {
      float* cs = p.chunk_states + ((b * p.dim + d) * nck + t0 / kSsChunk) * N;
#pragma unroll
      for (int j = 0; j < kFwdStates; ++j)
        if (kFwdStates * w + j < N) cs[kFwdStates * w + j] = h[j];
    }
    // ---- the recurrence over the tile ----
    // y's parts stay in registers until the tile is done: a shared-memory store inside the loop
    // kept the compiler from loading later steps' operands early (forward 649 -> 580 us, notes v5).
    float yv[kFwdTile];
#pragma unroll
    for (int tt = 0; tt < kFwdTile; ++tt) {
      const float dtv = s.dt[tt][lane], dtuv = s.dtu[tt][lane];
      float Bv[kFwdStates], Cv[kFwdStates], y = 0.f;
      load_run4(&s.B[tt][kFwdStates * w], Bv);
      load_run4(&s.C[tt][kFwdStates * w], Cv);
#pragma unroll
      for (int j = 0; j < kFwdStates; ++j) {
        h[j] = ex2_ftz(dtv * Al[j]) * h[j] + dtuv * Bv[j];
        y += Cv[j] * h[j];
      }
      yv[tt] = y;
    }
#pragma unroll
    for (int tt = 0; tt < kFwdTile; ++tt) s.y[w][tt][lane] = yv[tt];
    __syncthreads();
    // ---- outputs: out = (y + D u) silu(z) ----
    float o[kFwdElems];
#pragma unroll
    for (int e = 0; e < kFwdElems; ++e) {
      float y = Dv * u_keep[e];
#pragma unroll
      for (int g = 0; g < kFwdWarps; ++g) y += s.y[g][te + e][ce];
      o[e] = y * gate[e];
    }
    if (cvalid) store_run(p.out + row, t0 + te, L, vec, o);
    // The next iteration's stores to s.dt, s.dtu, s.B, s.C come after every thread's recurrence
    // (the barrier above); its stores to s.y after every thread's outputs (its first barrier).
  }
}

}  // namespace

cudaError_t launch_selective_scan_fwd_lanes(const SelectiveScanParams& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(selective_scan_num_channel_blocks(p.dim)), static_cast<unsigned>(p.batch));
  if (p.z)
    selective_scan_fwd_lanes_kernel<true><<<grid, kFwdThreads, 0, stream>>>(p);
  else
    selective_scan_fwd_lanes_kernel<false><<<grid, kFwdThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace rbk::cuda::ss_detail
