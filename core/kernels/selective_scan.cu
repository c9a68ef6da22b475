// Mamba-1 selective scan on CUDA: forward and backward (issue 7, Mamba baseline; maths and shapes
// in rbk/selective_scan.h, design in rbk/kernels/selective_scan_launch.h). fp32 throughout, IEEE
// expf / log1pf (no fast math: these numbers reach the baseline tables).
//
// Thread layout: a block owns 32 channels of one batch row; lane (c, g) of the block holds states
// n = g S .. g S + S - 1 of channel c (S = 1, 2, 4 for N <= 4, 8, 16). States n >= N are padding
// with A = B = C = 0, so they stay 0 and contribute nothing. Sums over n (y, du, ddelta) are
// reduced over the 4 lanes of a channel with two xor shuffles.
//
// Tiles: kSsTile = 16 steps of (32 channels x 16 steps) for u, delta, z, dout and (N x 16) for B,
// C go through shared memory: each global load is a run of 16 consecutive floats along L.
//
// Backward (per channel, reverse time), with a_t = exp(dt_t A), carry_t = a_{t+1} g_{t+1}:
//   g_t      = carry_t + C_t gy_t                      (adjoint of h_t), gy = dout * silu(z)
//   dC_t    += gy_t h_t,    dB_t += g_t dt_t u_t       (summed over channels: reduce-scatter)
//   du_t     = gy_t D + sum_n g_t dt_t B_t
//   ddt_t    = sum_n g_t (B_t u_t + A a_t h_{t-1}),     ddelta = ddt * sigmoid(raw) if softplus
//   dA      += g_t dt_t a_t h_{t-1},  dD += gy_t u_t,  dz_t = dout y_t sigmoid(z)(1 + z(1 - sigmoid(z)))
// h_{t-1} and a_t come from a register replay of the tile from its start state; tile-start states
// come from a forward replay of the chunk from the state the forward stored.
//
// Variants (rbk/kernels/selective_scan_launch.h): the sequential one walks all of L per block; the
// chunked one runs a block per chunk of kSsChunk steps (local scan from 0, a short pass chaining the
// chunk boundaries, then a replay from the true start state), forward and backward; the hybrid one
// runs the sequential forward with the chunked variant's helpers and the chunked backward; the lean one
// is the hybrid one with a sub-tiled per-chunk backward (bwd_chunk_lean, fewer registers). All share the
// tile helpers, the forward tile loop (fwd_tiles) and the per-chunk backward (bwd_chunk) below. The
// runs variant (the default) is in selective_scan_runs.cu (one channel per lane: a single-pass
// forward, and a backward whose chunks are chained by a look-back); this file's launchers dispatch
// to it and run the reductions after its backward.
// The chunked variant computes a_t = exp(dt A) as exp2f((dt log2 e) A): the CUDA math library's
// exp2f (not the __exp2f intrinsic; no fast math) has a maximum error of 2 ulp over its whole range
// (CUDA C Programming Guide, appendix "Mathematical Functions"), the same bound as expf, but compiles
// to the MUFU.EX2 unit plus a denormal fix-up (~4 instructions) instead of expf's ~9 (expf itself
// computes a scaled exp2). The extra rounding of dt log2 e perturbs the exponent by one ulp relative,
// i.e. a_t by ~|dt A| 6e-8 relative, as the rounding of dt A already does. The test holds every
// variant to the same fp64 tolerance rule.
#include "rbk/kernels/selective_scan_launch.h"

#include <cuda_runtime.h>

#include "selective_scan_common.cuh"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace rbk::cuda {
namespace {

using ss_detail::chunk_workspace;
using ss_detail::ChunkWorkspace;
using ss_detail::kLog2e;
using ss_detail::sigmoid_f;
using ss_detail::softplus_f;

constexpr int kT = static_cast<int>(kSsTile);
constexpr int kCh = static_cast<int>(kSsChannelsPerBlock);
constexpr int kG = 4;                 // lanes per channel
constexpr int kThreads = kCh * kG;    // 128
constexpr int kWarps = kThreads / 32;
constexpr int kTilesPerChunk = static_cast<int>(kSsChunk / kSsTile);
constexpr int kTP = kT + 1;           // padded rows: lanes of 8 channels reading one step hit 8 banks
constexpr int kNMax = static_cast<int>(kSsMaxState);
static_assert(kSsChunk % kSsTile == 0, "a chunk is a whole number of tiles");
static_assert(kNMax == kG * 4, "4 lanes x at most 4 states");
constexpr int kElemPerThread = kCh * kT / kThreads;    // 4 floats of each (channel x time) array
constexpr int kBcPerThread = kNMax * kT / kThreads;    // 2 floats of B and of C
constexpr int kBcStride = kNMax + 4;                   // chunked variant's B/C rows (see bc_index)

// The step size, the gate and the sigmoids are computed once per element when the tile is stored
// (not once per lane and step): a channel's 4 lanes then only read them.
struct TileSmem {
  float u[kCh][kTP];
  float dt[kCh][kTP];  // softplus(delta + bias) (or delta + bias); 0 past the end of the sequence
  float sg[kCh][kTP];  // backward: d dt / d delta = sigmoid(delta + bias) (1 without softplus)
  float z[kCh][kTP];   // forward: silu(z); backward: z
  float zs[kCh][kTP];  // backward: sigmoid(z)
  float g[kCh][kTP];   // forward: y; backward: dout
  // B and C of the tile, flat; layout bc_index<TBC>: the sequential variant's rows per state
  // (n kT + tt), the chunked variant's rows per step (tt kBcStride + n).
  alignas(16) float Bs[kT * kBcStride];
  alignas(16) float Cs[kT * kBcStride];
  float bias[kCh];
};

// Index of (state n, step tt) in TileSmem::Bs / Cs. A lane reads its S states n = g S + j at one
// step. Rows per state (TBC = false, the sequential variant as first written): the 4 lane groups g
// hit one bank (row stride 16 floats), a 4-way conflict on every read. Rows per step (TBC = true,
// the chunked variant): a lane's S states are adjacent (one 16-byte load for S = 4) and the 4
// groups hit different banks, so a warp's read is one shared-memory wavefront; the row stride of 20
// keeps rows 16-byte aligned and makes the tile stores at most 2-way conflicted.
template <bool TBC>
__device__ __forceinline__ int bc_index(int n, int tt) { return TBC ? tt * kBcStride + n : n * kT + tt; }

// The S values of states g S .. g S + S - 1 at step tt.
template <int S, bool TBC>
__device__ __forceinline__ void load_states(const float* arr, int g, int tt, float (&out)[S]) {
  if constexpr (TBC && S == 4) {
    const float4 v = *reinterpret_cast<const float4*>(arr + bc_index<true>(g * S, tt));
    out[0] = v.x;
    out[1] = v.y;
    out[2] = v.z;
    out[3] = v.w;
  } else if constexpr (TBC && S == 2) {
    const float2 v = *reinterpret_cast<const float2*>(arr + bc_index<true>(g * S, tt));
    out[0] = v.x;
    out[1] = v.y;
  } else {
#pragma unroll
    for (int j = 0; j < S; ++j) out[j] = arr[bc_index<TBC>(g * S + j, tt)];
  }
}

// One tile's global values held in registers (loaded early, stored to shared memory later).
struct TileRegs {
  float u[kElemPerThread], dl[kElemPerThread], z[kElemPerThread], g[kElemPerThread];
  float B[kBcPerThread], C[kBcPerThread];
};

// a_t = exp(dt A): the step size scaled once per step (shared by a lane's S states), then one
// exponential per (state, step). FAST (chunked variant): exp2f, see the file comment; otherwise the
// sequential variant's expf(dt A), bit for bit as before.
template <bool FAST>
__device__ __forceinline__ float decay_scale(float dt) { return FAST ? dt * kLog2e : dt; }
template <bool FAST>
__device__ __forceinline__ float decay(float dt_scaled, float A) { return FAST ? exp2f(dt_scaled * A) : expf(dt_scaled * A); }

// Loads the tile starting at t0 of batch row b, channels c0..c0+31: zeros outside [0, L) x [0, Dm)
// and for n >= N. LOAD_Z / LOAD_G / LOAD_C select the optional arrays.
template <bool LOAD_Z, bool LOAD_G, bool LOAD_C>
__device__ __forceinline__ void load_tile(TileRegs& r, const SelectiveScanParams& p, const float* gsrc, int64_t b,
                                          int64_t c0, int64_t t0) {
  const int tid = threadIdx.x;
#pragma unroll
  for (int k = 0; k < kElemPerThread; ++k) {
    const int i = k * kThreads + tid;
    const int cl = i / kT, tt = i % kT;
    const bool ok = c0 + cl < p.dim && t0 + tt < p.len;
    const int64_t off = ((b * p.dim) + c0 + cl) * p.len + t0 + tt;
    r.u[k] = ok ? p.u[off] : 0.f;
    r.dl[k] = ok ? p.delta[off] : 0.f;
    if (LOAD_Z) r.z[k] = ok ? p.z[off] : 0.f;
    if (LOAD_G) r.g[k] = ok ? gsrc[off] : 0.f;
  }
#pragma unroll
  for (int k = 0; k < kBcPerThread; ++k) {
    const int i = k * kThreads + tid;
    const int n = i / kT, tt = i % kT;
    const bool ok = n < p.dstate && t0 + tt < p.len;
    const int64_t off = (b * p.dstate + n) * p.len + t0 + tt;
    r.B[k] = ok ? p.B[off] : 0.f;
    if (LOAD_C) r.C[k] = ok ? p.C[off] : 0.f;
  }
}

// BWD: keep z and store sigmoid(z) and sigmoid(delta + bias); forward: store silu(z). TBC: B/C layout.
template <bool LOAD_Z, bool LOAD_G, bool LOAD_C, bool BWD, bool TBC>
__device__ __forceinline__ void store_tile(const TileRegs& r, TileSmem& s, int64_t t0, int64_t len, bool softplus) {
  const int tid = threadIdx.x;
#pragma unroll
  for (int k = 0; k < kElemPerThread; ++k) {
    const int i = k * kThreads + tid;
    const int cl = i / kT, tt = i % kT;
    s.u[cl][tt] = r.u[k];
    const float x = r.dl[k] + s.bias[cl];
    // Padding steps past the end get dt = 0: a = 1 and no input, i.e. the identity.
    s.dt[cl][tt] = t0 + tt < len ? (softplus ? softplus_f(x) : x) : 0.f;
    if (BWD) s.sg[cl][tt] = softplus ? sigmoid_f(x) : 1.f;
    if (LOAD_Z) {
      const float sz = sigmoid_f(r.z[k]);
      s.z[cl][tt] = BWD ? r.z[k] : r.z[k] * sz;
      if (BWD) s.zs[cl][tt] = sz;
    }
    if (LOAD_G) s.g[cl][tt] = r.g[k];
  }
#pragma unroll
  for (int k = 0; k < kBcPerThread; ++k) {
    const int i = k * kThreads + tid;
    s.Bs[bc_index<TBC>(i / kT, i % kT)] = r.B[k];
    if (LOAD_C) s.Cs[bc_index<TBC>(i / kT, i % kT)] = r.C[k];
  }
}

// Writes a (32 channels x 16 steps) shared-memory tile to a (Bt, Dm, L) array, coalesced along L.
__device__ __forceinline__ void write_tile(const float (*src)[kTP], float* dst, const SelectiveScanParams& p,
                                           int64_t b, int64_t c0, int64_t t0) {
  const int tid = threadIdx.x;
#pragma unroll
  for (int k = 0; k < kElemPerThread; ++k) {
    const int i = k * kThreads + tid;
    const int cl = i / kT, tt = i % kT;
    if (c0 + cl < p.dim && t0 + tt < p.len) dst[((b * p.dim) + c0 + cl) * p.len + t0 + tt] = src[cl][tt];
  }
}

// The block's delta_bias into shared memory (0 for channels past Dm); callers sync before use.
__device__ __forceinline__ void load_bias(TileSmem& s, const SelectiveScanParams& p, int64_t c0) {
  if (threadIdx.x < kCh) s.bias[threadIdx.x] = p.delta_bias && c0 + threadIdx.x < p.dim ? p.delta_bias[c0 + threadIdx.x] : 0.f;
}

// Forward modes. Sequential: the whole of L from h = 0, storing h at every chunk start (FAST: the
// hybrid variant, with exp2f and the conflict-free B/C layout). The chunked variant's passes:
// ChunkLocal scans chunk k = blockIdx.z from h = 0 without output and leaves its end state in
// chunk_states[k + 1] and its sum of step sizes in out[b, d, k kSsChunk] (scratch: the replay
// overwrites every element of out; it is launched for k < nck - 1 only, whose chunks are full);
// ChunkReplay starts chunk k from chunk_states[k] (made true by selective_scan_fwd_combine_kernel)
// and writes out.
enum class FwdMode { Sequential, ChunkLocal, ChunkReplay };

template <int S, bool HAS_Z, FwdMode MODE, bool FAST>
__global__ void __launch_bounds__(kThreads) selective_scan_fwd_kernel(SelectiveScanParams p) {
  static_assert(FAST || MODE == FwdMode::Sequential, "the chunked passes use the fast helpers");
  constexpr bool kFast = FAST;
  constexpr bool kY = MODE != FwdMode::ChunkLocal;  // compute and write out
  constexpr bool kZ = HAS_Z && kY;
  __shared__ TileSmem sm;
  const int tid = threadIdx.x, cl = tid / kG, g = tid % kG;
  const int64_t b = blockIdx.y, c0 = static_cast<int64_t>(blockIdx.x) * kCh, d = c0 + cl;
  const bool dvalid = d < p.dim;
  const int N = static_cast<int>(p.dstate);
  const int64_t nck = (p.len + kSsChunk - 1) / kSsChunk;
  const int64_t ntiles = (p.len + kT - 1) / kT;
  const int64_t ck = MODE == FwdMode::Sequential ? 0 : static_cast<int64_t>(blockIdx.z);
  const int64_t tile_begin = MODE == FwdMode::Sequential ? 0 : ck * kTilesPerChunk;
  const int64_t tile_end =
      MODE == FwdMode::Sequential ? ntiles : min(ntiles, (ck + 1) * static_cast<int64_t>(kTilesPerChunk));
  float A[S], h[S];
#pragma unroll
  for (int j = 0; j < S; ++j) {
    const int n = g * S + j;
    const bool ok = dvalid && n < N;
    A[j] = ok ? p.A[d * N + n] : 0.f;
    h[j] = MODE == FwdMode::ChunkReplay && ok ? p.chunk_states[((b * p.dim + d) * nck + ck) * N + n] : 0.f;
  }
  const float Dv = p.D && dvalid ? p.D[d] : 0.f;
  float dtsum = 0.f;  // ChunkLocal: sum of the chunk's step sizes (padding steps have dt = 0)
  load_bias(sm, p, c0);
  __syncthreads();
  TileRegs r;
  load_tile<kZ, false, kY>(r, p, nullptr, b, c0, tile_begin * kT);
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    const int64_t t0 = tile * kT;
    store_tile<kZ, false, kY, false, kFast>(r, sm, t0, p.len, p.delta_softplus);
    __syncthreads();
    // Prefetch the next tile while this one is computed.
    if (tile + 1 < tile_end) load_tile<kZ, false, kY>(r, p, nullptr, b, c0, t0 + kT);
    if (MODE == FwdMode::Sequential && t0 % kSsChunk == 0 && dvalid) {
      float* cs = p.chunk_states + ((b * p.dim + d) * nck + t0 / kSsChunk) * N;
#pragma unroll
      for (int j = 0; j < S; ++j)
        if (g * S + j < N) cs[g * S + j] = h[j];
    }
#pragma unroll
    for (int tt = 0; tt < kT; ++tt) {
      const float uu = sm.u[cl][tt];
      const float dt = sm.dt[cl][tt];
      const float dts = decay_scale<kFast>(dt);
      const float dtu = dt * uu;
      if (MODE == FwdMode::ChunkLocal) dtsum += dt;
      float yp = 0.f, Bn[S], Cn[S];
      load_states<S, kFast>(sm.Bs, g, tt, Bn);
      if (kY) load_states<S, kFast>(sm.Cs, g, tt, Cn);
#pragma unroll
      for (int j = 0; j < S; ++j) {
        h[j] = decay<kFast>(dts, A[j]) * h[j] + dtu * Bn[j];
        if (kY) yp += Cn[j] * h[j];
      }
      if (kY) {
        yp += __shfl_xor_sync(0xffffffffu, yp, 1);
        yp += __shfl_xor_sync(0xffffffffu, yp, 2);
        if (g == 0) {
          float y = yp + Dv * uu;
          if (HAS_Z) y *= sm.z[cl][tt];  // silu(z)
          sm.g[cl][tt] = y;
        }
      }
    }
    __syncthreads();
    if (kY) write_tile(sm.g, p.out, p, b, c0, t0);
  }
  // The last chunk's end state is never needed (and its chunk may be shorter than N + 1 steps).
  if (MODE == FwdMode::ChunkLocal && dvalid && ck + 1 < nck) {
    float* cs = p.chunk_states + ((b * p.dim + d) * nck + ck + 1) * N;
#pragma unroll
    for (int j = 0; j < S; ++j)
      if (g * S + j < N) cs[g * S + j] = h[j];
    if (g == 0) p.out[(b * p.dim + d) * p.len + ck * kSsChunk] = dtsum;
  }
}

// Chunked forward, pass (b): one thread per (b, d, n) chains the chunks left to right:
// chunk_states[0] = 0, chunk_states[k + 1] = exp(A S_k) chunk_states[k] + local_k, where local_k
// (in chunk_states[k + 1]) and S_k (in out[b, d, k kSsChunk]) come from the ChunkLocal pass. The
// product of a chunk's decays exp(dt_t A) is exp(A sum_t dt_t) (A is constant along L).
__global__ void selective_scan_fwd_combine_kernel(SelectiveScanParams p) {
  const int64_t N = p.dstate, nck = (p.len + kSsChunk - 1) / kSsChunk, total = p.batch * p.dim * N;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i % N, bd = i / N, d = bd % p.dim;
    const float A = p.A[d * N + n];
    float* cs = p.chunk_states + bd * nck * N + n;
    const float* dtsum = p.out + bd * p.len;
    float h = 0.f;
    cs[0] = 0.f;
    for (int64_t k = 0; k + 1 < nck; ++k) {
      h = decay<true>(decay_scale<true>(dtsum[k * kSsChunk]), A) * h + cs[(k + 1) * N];
      cs[(k + 1) * N] = h;
    }
  }
}

// One level of a warp reduce-scatter: pairs of lanes (xor M) each keep the half of v selected by
// their lane bit and add the partner's copy of it. K values in, K/2 out (in v[0..K/2)).
template <int K, int M>
__device__ __forceinline__ void reduce_scatter_level(float* v, int lane) {
  const bool hi = (lane & M) != 0;
#pragma unroll
  for (int i = 0; i < K / 2; ++i) {
    const float send = hi ? v[i] : v[i + K / 2];
    const float keep = hi ? v[i + K / 2] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, M);
  }
}

// Shared memory of the backward kernels (S states per lane).
template <int S>
struct BwdSmem {
  TileSmem t;
  float o_du[kCh][kTP], o_dd[kCh][kTP], o_dz[kCh][kTP];
  float ts[kTilesPerChunk][S][kThreads];  // tile-start states of the current chunk
  float red[kWarps * kG * (2 * S * kT + 8)];  // per-warp dB/dC sums over the warp's 8 channels (red_index)
};

// Position of value idx (of K = 2 S kT) of lane group g in warp w's dB/dC sums. After the
// reduce-scatter, lane (q = lane / 4, g) holds idx = q K/8 + i, i < K/8. Packed (PAD = false, the
// sequential variant as first written): the 32 lanes' stores of one i fall into 2 banks, 16-way
// conflicted. Padded (chunked variant): q strides K/8 + 1 and g strides K + 8 = 8 (K/8 + 1), which
// maps the 32 lanes to 32 distinct banks for S = 1, 2, 4 (checked by hand: q (K/8 + 1) mod 32 takes
// 8 values, and adding 8 g mod 32 shifts them onto disjoint sets); the readers walk idx in order,
// so they stay conflict-free.
template <int K, bool PAD>
__device__ __forceinline__ int red_index(int w, int g, int idx) {
  return PAD ? (w * kG + g) * (K + 8) + (idx / (K / 8)) * (K / 8 + 1) + idx % (K / 8) : (w * kG + g) * K + idx;
}

// The backward of chunk k of batch row b for the block's 32 channels (every variant): replays the
// chunk forward from chunk_states[k] to get the tile-start states, then walks its tiles in reverse,
// writing du, ddelta, dz and the block's dB/dC partials for the chunk's steps. carry enters as the
// adjoint carry at the chunk's last step (a_{t+1} g_{t+1}) and leaves as the carry into step
// k kSsChunk - 1; dA, dD, dbias accumulate. A: the lane's unscaled A; FAST: see decay().
// Callers have loaded the block's bias with load_bias(s.t, ...); every shared store here comes after
// a __syncthreads.
template <int S, bool HAS_Z, bool FAST>
__device__ __forceinline__ void bwd_chunk(const SelectiveScanParams& p, BwdSmem<S>& s, int64_t b, int64_t blk,
                                          int64_t k, const float (&A)[S], float (&carry)[S], float (&dA)[S], float Dv,
                                          float& dD, float& dbias) {
  constexpr int K = 2 * S * kT;  // dC (which 0) and dB (which 1) values of one tile: v[(which S + j) kT + tt]
  TileSmem& sm = s.t;
  const int tid = threadIdx.x, cl = tid / kG, g = tid % kG, lane = tid % 32, warp = tid / 32;
  const int64_t c0 = blk * kCh, d = c0 + cl;
  const int64_t nblk = gridDim.x;
  const bool dvalid = d < p.dim;
  const int N = static_cast<int>(p.dstate);
  const int64_t L = p.len, nck = (L + kSsChunk - 1) / kSsChunk, ntiles = (L + kT - 1) / kT;
  TileRegs r;
  const int tcnt = static_cast<int>(min(static_cast<int64_t>(kTilesPerChunk), ntiles - k * kTilesPerChunk));
  // ---- replay the chunk forward to get every tile's start state ----
  float h[S];
  {
    const float* cs = p.chunk_states + ((b * p.dim + d) * nck + k) * N;
#pragma unroll
    for (int j = 0; j < S; ++j) h[j] = dvalid && g * S + j < N ? cs[g * S + j] : 0.f;
  }
  for (int tl = 0; tl < tcnt; ++tl) {
#pragma unroll
    for (int j = 0; j < S; ++j) s.ts[tl][j][tid] = h[j];  // read back by this thread only
    if (tl == tcnt - 1) break;
    const int64_t t0 = (k * kTilesPerChunk + tl) * kT;
    load_tile<false, false, false>(r, p, nullptr, b, c0, t0);
    __syncthreads();  // everyone is done with the previous contents of sm
    store_tile<false, false, false, false, FAST>(r, sm, t0, L, p.delta_softplus);
    __syncthreads();
#pragma unroll
    for (int tt = 0; tt < kT; ++tt) {
      const float dt = sm.dt[cl][tt];
      const float dts = decay_scale<FAST>(dt);
      const float dtu = dt * sm.u[cl][tt];
      float Bn[S];
      load_states<S, FAST>(sm.Bs, g, tt, Bn);
#pragma unroll
      for (int j = 0; j < S; ++j) h[j] = decay<FAST>(dts, A[j]) * h[j] + dtu * Bn[j];
    }
  }
  // ---- tiles of the chunk in reverse ----
  for (int tl = tcnt - 1; tl >= 0; --tl) {
    const int64_t t0 = (k * kTilesPerChunk + tl) * kT;
    load_tile<HAS_Z, true, true>(r, p, p.dout, b, c0, t0);
    __syncthreads();
    store_tile<HAS_Z, true, true, true, FAST>(r, sm, t0, L, p.delta_softplus);
    __syncthreads();
    float v[K];  // first: h_t (which 0) and a_t (which 1); after the reverse step: dC, dB terms
    float hin[S], ys[kT];
#pragma unroll
    for (int j = 0; j < S; ++j) hin[j] = s.ts[tl][j][tid];
#pragma unroll
    for (int tt = 0; tt < kT; ++tt) {
      const float uu = sm.u[cl][tt];
      const float dt = sm.dt[cl][tt];
      const float dts = decay_scale<FAST>(dt);
      float yp = 0.f, Bn[S], Cn[S];
      load_states<S, FAST>(sm.Bs, g, tt, Bn);
      load_states<S, FAST>(sm.Cs, g, tt, Cn);
#pragma unroll
      for (int j = 0; j < S; ++j) {
        const float a = decay<FAST>(dts, A[j]);
        const float hp = tt > 0 ? v[j * kT + tt - 1] : hin[j];
        const float hn = a * hp + dt * uu * Bn[j];
        v[j * kT + tt] = hn;
        v[(S + j) * kT + tt] = a;
        yp += Cn[j] * hn;
      }
      if (HAS_Z) {
        yp += __shfl_xor_sync(0xffffffffu, yp, 1);
        yp += __shfl_xor_sync(0xffffffffu, yp, 2);
        ys[tt] = yp + Dv * uu;
      }
    }
#pragma unroll
    for (int tt = kT - 1; tt >= 0; --tt) {
      const bool valid = t0 + tt < L;
      const float uu = sm.u[cl][tt], dout = sm.g[cl][tt], dt = sm.dt[cl][tt];
      float gy = dout, dzv = 0.f;
      if (HAS_Z) {
        const float zz = sm.z[cl][tt], sg = sm.zs[cl][tt];
        gy = dout * zz * sg;
        dzv = dout * ys[tt] * sg * (1.f + zz * (1.f - sg));
      }
      float su = 0.f, sdt = 0.f, Bs[S], Cs[S];
      load_states<S, FAST>(sm.Bs, g, tt, Bs);
      load_states<S, FAST>(sm.Cs, g, tt, Cs);
#pragma unroll
      for (int j = 0; j < S; ++j) {
        const float Bn = Bs[j], Cn = Cs[j];
        const float hp = tt > 0 ? v[j * kT + tt - 1] : hin[j];
        const float a = v[(S + j) * kT + tt];
        const float gh = carry[j] + Cn * gy;
        su += gh * dt * Bn;
        sdt += gh * (Bn * uu + A[j] * a * hp);
        dA[j] += gh * dt * a * hp;
        carry[j] = a * gh;
        v[j * kT + tt] *= gy;              // dC term gy h_t (h_t is not needed any more)
        v[(S + j) * kT + tt] = gh * dt * uu;  // dB term
      }
      su += __shfl_xor_sync(0xffffffffu, su, 1);
      su += __shfl_xor_sync(0xffffffffu, su, 2);
      sdt += __shfl_xor_sync(0xffffffffu, sdt, 1);
      sdt += __shfl_xor_sync(0xffffffffu, sdt, 2);
      if (g == 0) {
        const float dd = sdt * sm.sg[cl][tt];
        s.o_du[cl][tt] = gy * Dv + su;
        s.o_dd[cl][tt] = dd;
        if (HAS_Z) s.o_dz[cl][tt] = dzv;
        if (valid) {
          dD += gy * uu;
          dbias += dd;
        }
      }
    }
    // dB / dC: sum over the warp's 8 channels (lane bits 2..4), then over the block's 4 warps.
    reduce_scatter_level<K, 16>(v, lane);
    reduce_scatter_level<K / 2, 8>(v, lane);
    reduce_scatter_level<K / 4, 4>(v, lane);
#pragma unroll
    for (int i = 0; i < K / 8; ++i) s.red[red_index<K, FAST>(warp, g, (lane / kG) * (K / 8) + i)] = v[i];
    __syncthreads();
    for (int o = tid; o < kG * K; o += kThreads) {
      const int gg = o / K, idx = o % K;
      const int which = idx / (S * kT), j = (idx / kT) % S, tt = idx % kT;
      const int n = gg * S + j;
      float sum = 0.f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) sum += s.red[red_index<K, FAST>(w, gg, idx)];
      if (n < N && t0 + tt < L) p.workspace[(((b * nblk + blk) * 2 + which) * N + n) * L + t0 + tt] = sum;
    }
    write_tile(s.o_du, p.du, p, b, c0, t0);
    write_tile(s.o_dd, p.ddelta, p, b, c0, t0);
    if (HAS_Z) write_tile(s.o_dz, p.dz, p, b, c0, t0);
  }
}

// Sequential variant: every chunk of the block's channels, right to left, in one block.
template <int S, bool HAS_Z>
__global__ void __launch_bounds__(kThreads) selective_scan_bwd_kernel(SelectiveScanParams p) {
  __shared__ BwdSmem<S> sm;
  const int tid = threadIdx.x, cl = tid / kG, g = tid % kG;
  const int64_t b = blockIdx.y, blk = blockIdx.x, c0 = blk * kCh, d = c0 + cl;
  const bool dvalid = d < p.dim;
  const int N = static_cast<int>(p.dstate);
  const int64_t nck = (p.len + kSsChunk - 1) / kSsChunk;
  float A[S], carry[S], dA[S];
#pragma unroll
  for (int j = 0; j < S; ++j) {
    const int n = g * S + j;
    A[j] = dvalid && n < N ? p.A[d * N + n] : 0.f;
    carry[j] = 0.f;
    dA[j] = 0.f;
  }
  const float Dv = p.D && dvalid ? p.D[d] : 0.f;
  float dD = 0.f, dbias = 0.f;
  load_bias(sm.t, p, c0);  // the first store_tile comes after a __syncthreads
  for (int64_t k = nck - 1; k >= 0; --k) bwd_chunk<S, HAS_Z, false>(p, sm, b, blk, k, A, carry, dA, Dv, dD, dbias);
  if (dvalid) {
#pragma unroll
    for (int j = 0; j < S; ++j)
      if (g * S + j < N) p.dA_part[(b * p.dim + d) * N + g * S + j] = dA[j];
    if (g == 0) {
      if (p.dD_part) p.dD_part[b * p.dim + d] = dD;
      if (p.ddelta_bias_part) p.ddelta_bias_part[b * p.dim + d] = dbias;
    }
  }
}

// Chunked backward, pass (a): the adjoint of chunk k = blockIdx.z from carry 0 at its end, in
// reverse time: carry <- a_t (carry + C_t gy_t). Writes the local carry out of the chunk (into the
// workspace's carry slot) and the chunk's sum of step sizes.
template <int S, bool HAS_Z>
__global__ void __launch_bounds__(kThreads) selective_scan_bwd_carry_local_kernel(SelectiveScanParams p) {
  __shared__ TileSmem sm;
  const int tid = threadIdx.x, cl = tid / kG, g = tid % kG;
  const int64_t b = blockIdx.y, c0 = static_cast<int64_t>(blockIdx.x) * kCh, d = c0 + cl, k = blockIdx.z;
  const bool dvalid = d < p.dim;
  const int N = static_cast<int>(p.dstate);
  const int64_t L = p.len, nck = (L + kSsChunk - 1) / kSsChunk, ntiles = (L + kT - 1) / kT;
  const int tcnt = static_cast<int>(min(static_cast<int64_t>(kTilesPerChunk), ntiles - k * kTilesPerChunk));
  float A[S], carry[S];
#pragma unroll
  for (int j = 0; j < S; ++j) {
    const int n = g * S + j;
    A[j] = dvalid && n < N ? p.A[d * N + n] : 0.f;
    carry[j] = 0.f;
  }
  float dtsum = 0.f;
  load_bias(sm, p, c0);  // the first store_tile comes after a __syncthreads
  TileRegs r;
  for (int tl = tcnt - 1; tl >= 0; --tl) {
    const int64_t t0 = (k * kTilesPerChunk + tl) * kT;
    load_tile<HAS_Z, true, true>(r, p, p.dout, b, c0, t0);
    __syncthreads();  // everyone is done with the previous contents of sm
    store_tile<HAS_Z, true, true, true, true>(r, sm, t0, L, p.delta_softplus);
    __syncthreads();
#pragma unroll
    for (int tt = kT - 1; tt >= 0; --tt) {
      const float dt = sm.dt[cl][tt];
      const float dts = decay_scale<true>(dt);
      const float gy = HAS_Z ? sm.g[cl][tt] * sm.z[cl][tt] * sm.zs[cl][tt] : sm.g[cl][tt];
      dtsum += dt;
      float Cn[S];
      load_states<S, true>(sm.Cs, g, tt, Cn);
#pragma unroll
      for (int j = 0; j < S; ++j) carry[j] = decay<true>(dts, A[j]) * (carry[j] + Cn[j] * gy);
    }
  }
  if (dvalid) {
    const ChunkWorkspace w = chunk_workspace(p);
    const int64_t bdk = (b * p.dim + d) * nck + k;
#pragma unroll
    for (int j = 0; j < S; ++j)
      if (g * S + j < N) w.carry[bdk * N + g * S + j] = carry[j];
    if (g == 0) w.dtsum[bdk] = dtsum;
  }
}

// Chunked backward, pass (b): one thread per (b, d, n) chains the chunks right to left; the carry
// slot of chunk k changes from the chunk's local carry out to the true carry into its last step:
// in_{nck-1} = 0, in_{k-1} = local_k + exp(A S_k) in_k.
__global__ void selective_scan_bwd_combine_kernel(SelectiveScanParams p) {
  const int64_t N = p.dstate, nck = (p.len + kSsChunk - 1) / kSsChunk, total = p.batch * p.dim * N;
  const ChunkWorkspace w = chunk_workspace(p);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i % N, bd = i / N, d = bd % p.dim;
    const float A = p.A[d * N + n];
    float c = 0.f;
    for (int64_t k = nck - 1; k >= 0; --k) {
      const int64_t slot = (bd * nck + k) * N + n;
      const float local = w.carry[slot];
      w.carry[slot] = c;
      c = local + decay<true>(decay_scale<true>(w.dtsum[bd * nck + k]), A) * c;
    }
  }
}

// Chunked backward, pass (c), the frame both per-chunk kernels share: chunk k = blockIdx.z of 32
// channels x 4 lanes; loads this lane's A and the carried adjoint state, D and the bias tile, runs
// `chunk(b, blk, k, A, carry, dA, Dv, dD, dbias)` (bwd_chunk or bwd_chunk_lean), then stores the
// chunk's dA, dD and ddelta_bias partials. Everything inlines, so the kernels keep their registers.
template <int S, class TileSmem, class ChunkBody>
__device__ __forceinline__ void bwd_chunk_frame(const SelectiveScanParams& p, TileSmem& tiles, ChunkBody&& chunk) {
  const int tid = threadIdx.x, cl = tid / kG, g = tid % kG;
  const int64_t b = blockIdx.y, blk = blockIdx.x, c0 = blk * kCh, d = c0 + cl, k = blockIdx.z;
  const bool dvalid = d < p.dim;
  const int N = static_cast<int>(p.dstate);
  const int64_t nck = (p.len + kSsChunk - 1) / kSsChunk, bdk = (b * p.dim + d) * nck + k;
  const ChunkWorkspace w = chunk_workspace(p);
  float A[S], carry[S], dA[S];
#pragma unroll
  for (int j = 0; j < S; ++j) {
    const int n = g * S + j;
    const bool ok = dvalid && n < N;
    A[j] = ok ? p.A[d * N + n] : 0.f;
    carry[j] = ok ? w.carry[bdk * N + n] : 0.f;
    dA[j] = 0.f;
  }
  const float Dv = p.D && dvalid ? p.D[d] : 0.f;
  float dD = 0.f, dbias = 0.f;
  load_bias(tiles, p, c0);  // the first store_tile comes after a __syncthreads
  chunk(b, blk, k, A, carry, dA, Dv, dD, dbias);
  if (dvalid) {
#pragma unroll
    for (int j = 0; j < S; ++j)
      if (g * S + j < N) w.dA[bdk * N + g * S + j] = dA[j];
    if (g == 0) {
      w.dD[bdk] = dD;
      w.dbias[bdk] = dbias;
    }
  }
}

// Chunked backward, pass (c): chunk k from its true carry with bwd_chunk; dA, dD, dbias per chunk.
template <int S, bool HAS_Z>
__global__ void __launch_bounds__(kThreads) selective_scan_bwd_chunk_kernel(SelectiveScanParams p) {
  __shared__ BwdSmem<S> sm;
  bwd_chunk_frame<S>(p, sm.t, [&](int64_t b, int64_t blk, int64_t k, const float (&A)[S], float (&carry)[S],
                                  float (&dA)[S], float Dv, float& dD, float& dbias) {
    bwd_chunk<S, HAS_Z, true>(p, sm, b, blk, k, A, carry, dA, Dv, dD, dbias);
  });
}

// ---- Lean variant (kSsVariantLean): the per-chunk backward with a small register footprint ----
// bwd_chunk keeps a whole tile's h_t and a_t (then its dB/dC terms) in v[2 S kT] = 128 floats for
// S = 4: 255 registers and a spill, so 2 blocks (8 warps) per SM and a latency-bound adjoint. Here a
// tile is (1) replayed forward once, keeping only the states at its kNSub sub-tile starts (and, with
// z, writing dz, which needs y_t, so no y array is kept either), then (2) walked backwards in
// sub-tiles of kSub steps: each sub-tile is replayed from its start state into v[2 S kSub] (h_t,
// a_t), run through the adjoint (v becomes its dC, dB terms) and reduce-scattered over the warp's
// 8 channels into shared memory right away. Cost: one more exp2f per (state, step) than bwd_chunk
// (the sub-tile replay repeats the tile replay's decays); gain: 128 registers instead of 255, i.e.
// 4 blocks (16 warps) per SM under __launch_bounds__(kThreads, 4). ptxas -v (nvcc 13, sm_90), S = 4:
// 128 registers + 4 B spill with z (20 B without), 48960 B shared memory (4 blocks = 191 KB/SM fit).
// A 3-block build (cap 168 registers, no spill) was measured slower on the H100 (fwd + bwd 5219 vs
// 4823 us at B 8, D 1536, L 4096, N 16; run a0baf7d) and removed.
constexpr int kSub = 4;                // steps per sub-tile
constexpr int kNSub = kT / kSub;       // sub-tiles per tile
static_assert(kT % kSub == 0, "a tile is a whole number of sub-tiles");
// Blocks per SM asked of ptxas for the lean backward (cap 128 registers; a few bytes of spill for S = 4).
constexpr int kLeanMinBlocks = 4;

// The lean backward's dB/dC sums per (warp w, lane group g, sub-tile sb): KS = 2 S kSub values each,
// value li = (which S + j) kSub + ts (which 0: dC, 1: dB; state g S + j; step sb kSub + ts). Strides:
// sub-tile KS + 8, (w, g) kNSub (KS + 8) + 1. For S = 4 (KS = 32) this makes both sides conflict-free
// (checked by hand): a writer store (lanes q = lane / 4, g; fixed sb, i; li = q S + i) hits bank
// g + 4 q + i + const, 32 distinct banks since the (w, g) stride is 161 = 1 mod 32; a reader warp
// (fixed w, gg; 2 rows li / kSub = r, r + 1 x 16 steps) hits bank 8 sb + 4 r' + ts + const, r' in
// {0, 1}, also 32 distinct. For S = 1, 2 a few 2-4-way conflicts remain (not the target shape).
template <int S>
struct LeanRed {
  static constexpr int KS = 2 * S * kSub;
  static constexpr int kSubStride = KS + 8;
  static constexpr int kGroupStride = kNSub * kSubStride + 1;
  static constexpr int kFloats = kWarps * kG * kGroupStride;
  __device__ __forceinline__ static int index(int w, int g, int sb, int li) {
    return (w * kG + g) * kGroupStride + sb * kSubStride + li;
  }
};

template <int S>
struct BwdLeanSmem {
  TileSmem t;
  float o_du[kCh][kTP], o_dd[kCh][kTP], o_dz[kCh][kTP];
  float ts[kTilesPerChunk][S][kThreads];  // tile-start states of the current chunk
  float red[LeanRed<S>::kFloats];
};

// Same contract as bwd_chunk<S, HAS_Z, true> (the same outputs for chunk k, the same carry, dA, dD,
// dbias updates), with the fast helpers (exp2f, B/C rows per step).
template <int S, bool HAS_Z>
__device__ __forceinline__ void bwd_chunk_lean(const SelectiveScanParams& p, BwdLeanSmem<S>& s, int64_t b,
                                               int64_t blk, int64_t k, const float (&A)[S], float (&carry)[S],
                                               float (&dA)[S], float Dv, float& dD, float& dbias) {
  using Red = LeanRed<S>;
  constexpr int KS = Red::KS;
  constexpr int K = 2 * S * kT;  // dC and dB values of a tile per lane group, as the reader walks them
  TileSmem& sm = s.t;
  const int tid = threadIdx.x, cl = tid / kG, g = tid % kG, lane = tid % 32, warp = tid / 32;
  const int64_t c0 = blk * kCh, d = c0 + cl;
  const int64_t nblk = gridDim.x;
  const bool dvalid = d < p.dim;
  const int N = static_cast<int>(p.dstate);
  const int64_t L = p.len, nck = (L + kSsChunk - 1) / kSsChunk, ntiles = (L + kT - 1) / kT;
  TileRegs r;
  const int tcnt = static_cast<int>(min(static_cast<int64_t>(kTilesPerChunk), ntiles - k * kTilesPerChunk));
  // ---- replay the chunk forward to get every tile's start state (as bwd_chunk) ----
  {
    float h[S];
    const float* cs = p.chunk_states + ((b * p.dim + d) * nck + k) * N;
#pragma unroll
    for (int j = 0; j < S; ++j) h[j] = dvalid && g * S + j < N ? cs[g * S + j] : 0.f;
#pragma unroll 1
    for (int tl = 0; tl < tcnt; ++tl) {
#pragma unroll
      for (int j = 0; j < S; ++j) s.ts[tl][j][tid] = h[j];  // read back by this thread only
      if (tl == tcnt - 1) break;
      const int64_t t0 = (k * kTilesPerChunk + tl) * kT;
      load_tile<false, false, false>(r, p, nullptr, b, c0, t0);
      __syncthreads();  // everyone is done with the previous contents of sm
      store_tile<false, false, false, false, true>(r, sm, t0, L, p.delta_softplus);
      __syncthreads();
#pragma unroll
      for (int tt = 0; tt < kT; ++tt) {
        const float dt = sm.dt[cl][tt];
        const float dts = decay_scale<true>(dt);
        const float dtu = dt * sm.u[cl][tt];
        float Bn[S];
        load_states<S, true>(sm.Bs, g, tt, Bn);
#pragma unroll
        for (int j = 0; j < S; ++j) h[j] = decay<true>(dts, A[j]) * h[j] + dtu * Bn[j];
      }
    }
  }
  // ---- tiles of the chunk in reverse ----
#pragma unroll 1
  for (int tl = tcnt - 1; tl >= 0; --tl) {
    const int64_t t0 = (k * kTilesPerChunk + tl) * kT;
    load_tile<HAS_Z, true, true>(r, p, p.dout, b, c0, t0);
    __syncthreads();  // everyone is done with sm, red and o_* of the previous tile
    store_tile<HAS_Z, true, true, true, true>(r, sm, t0, L, p.delta_softplus);
    __syncthreads();
    // (1) Forward over the tile: the state before each sub-tile; with z, dz_t = dout y_t sigmoid(z)
    // (1 + z (1 - sigmoid(z))) now, while y_t is at hand.
    float hs[kNSub][S];
    {
      float h[S];
#pragma unroll
      for (int j = 0; j < S; ++j) h[j] = s.ts[tl][j][tid];
#pragma unroll
      for (int tt = 0; tt < kT; ++tt) {
        if (tt % kSub == 0) {
#pragma unroll
          for (int j = 0; j < S; ++j) hs[tt / kSub][j] = h[j];
        }
        const float uu = sm.u[cl][tt];
        const float dt = sm.dt[cl][tt];
        const float dts = decay_scale<true>(dt);
        const float dtu = dt * uu;
        float yp = 0.f, Bn[S], Cn[S];
        load_states<S, true>(sm.Bs, g, tt, Bn);
        if (HAS_Z) load_states<S, true>(sm.Cs, g, tt, Cn);
#pragma unroll
        for (int j = 0; j < S; ++j) {
          h[j] = decay<true>(dts, A[j]) * h[j] + dtu * Bn[j];
          if (HAS_Z) yp += Cn[j] * h[j];
        }
        if (HAS_Z) {
          yp += __shfl_xor_sync(0xffffffffu, yp, 1);
          yp += __shfl_xor_sync(0xffffffffu, yp, 2);
          if (g == 0) {
            const float zz = sm.z[cl][tt], sg = sm.zs[cl][tt];
            s.o_dz[cl][tt] = sm.g[cl][tt] * (yp + Dv * uu) * sg * (1.f + zz * (1.f - sg));
          }
        }
      }
    }
    // (2) Sub-tiles in reverse. Not unrolled (unrolled, ptxas spilled 28-32 B even under a 168-register
    // cap): hs[sb] is then a dynamically indexed local array (L1), 4 S floats written per tile and S
    // read per sub-tile, negligible next to the sub-tile's arithmetic.
#pragma unroll 1
    for (int sb = kNSub - 1; sb >= 0; --sb) {
      float v[KS];  // replay: h_t (which 0) and a_t (which 1) at (which S + j) kSub + ts; then dC, dB terms
#pragma unroll
      for (int ts = 0; ts < kSub; ++ts) {
        const int tt = sb * kSub + ts;
        const float dt = sm.dt[cl][tt];
        const float dts = decay_scale<true>(dt);
        const float dtu = dt * sm.u[cl][tt];
        float Bn[S];
        load_states<S, true>(sm.Bs, g, tt, Bn);
#pragma unroll
        for (int j = 0; j < S; ++j) {
          const float a = decay<true>(dts, A[j]);
          const float hp = ts > 0 ? v[j * kSub + ts - 1] : hs[sb][j];
          v[j * kSub + ts] = a * hp + dtu * Bn[j];
          v[(S + j) * kSub + ts] = a;
        }
      }
#pragma unroll
      for (int ts = kSub - 1; ts >= 0; --ts) {
        const int tt = sb * kSub + ts;
        const bool valid = t0 + tt < L;
        const float uu = sm.u[cl][tt], dout = sm.g[cl][tt], dt = sm.dt[cl][tt];
        const float gy = HAS_Z ? dout * sm.z[cl][tt] * sm.zs[cl][tt] : dout;
        float su = 0.f, sdt = 0.f, Bs[S], Cs[S];
        load_states<S, true>(sm.Bs, g, tt, Bs);
        load_states<S, true>(sm.Cs, g, tt, Cs);
#pragma unroll
        for (int j = 0; j < S; ++j) {
          const float hp = ts > 0 ? v[j * kSub + ts - 1] : hs[sb][j];  // h_{t-1}: not yet overwritten
          const float a = v[(S + j) * kSub + ts];
          const float gh = carry[j] + Cs[j] * gy;
          su += gh * dt * Bs[j];
          sdt += gh * (Bs[j] * uu + A[j] * a * hp);
          dA[j] += gh * dt * a * hp;
          carry[j] = a * gh;
          v[j * kSub + ts] *= gy;                // dC term gy h_t
          v[(S + j) * kSub + ts] = gh * dt * uu;  // dB term
        }
        su += __shfl_xor_sync(0xffffffffu, su, 1);
        su += __shfl_xor_sync(0xffffffffu, su, 2);
        sdt += __shfl_xor_sync(0xffffffffu, sdt, 1);
        sdt += __shfl_xor_sync(0xffffffffu, sdt, 2);
        if (g == 0) {
          const float dd = sdt * sm.sg[cl][tt];
          s.o_du[cl][tt] = gy * Dv + su;
          s.o_dd[cl][tt] = dd;
          if (valid) {
            dD += gy * uu;
            dbias += dd;
          }
        }
      }
      // dB / dC of the sub-tile: sum over the warp's 8 channels (lane bits 2..4); lane (q, g) then
      // holds values li = q KS/8 + i.
      reduce_scatter_level<KS, 16>(v, lane);
      reduce_scatter_level<KS / 2, 8>(v, lane);
      reduce_scatter_level<KS / 4, 4>(v, lane);
#pragma unroll
      for (int i = 0; i < KS / 8; ++i) s.red[Red::index(warp, g, sb, (lane / kG) * (KS / 8) + i)] = v[i];
    }
    __syncthreads();
    // Sum over the block's 4 warps; threads walk (gg, which, j, tt) with tt fastest, so the global
    // stores are runs of kT floats along L (as bwd_chunk's).
    for (int o = tid; o < kG * K; o += kThreads) {
      const int gg = o / K, idx = o % K;
      const int which = idx / (S * kT), j = (idx / kT) % S, tt = idx % kT;
      const int n = gg * S + j;
      const int sb = tt / kSub, li = (which * S + j) * kSub + tt % kSub;
      float sum = 0.f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) sum += s.red[Red::index(w, gg, sb, li)];
      if (n < N && t0 + tt < L) p.workspace[(((b * nblk + blk) * 2 + which) * N + n) * L + t0 + tt] = sum;
    }
    write_tile(s.o_du, p.du, p, b, c0, t0);
    write_tile(s.o_dd, p.ddelta, p, b, c0, t0);
    if (HAS_Z) write_tile(s.o_dz, p.dz, p, b, c0, t0);
  }
}

// Lean variants, backward pass (c): as selective_scan_bwd_chunk_kernel with bwd_chunk_lean; MIN_BLOCKS:
// the blocks per SM asked of ptxas (register cap 65536 / (MIN_BLOCKS x 128)).
template <int S, bool HAS_Z, int MIN_BLOCKS>
__global__ void __launch_bounds__(kThreads, MIN_BLOCKS) selective_scan_bwd_chunk_lean_kernel(SelectiveScanParams p) {
  __shared__ BwdLeanSmem<S> sm;
  bwd_chunk_frame<S>(p, sm.t, [&](int64_t b, int64_t blk, int64_t k, const float (&A)[S], float (&carry)[S],
                                  float (&dA)[S], float Dv, float& dD, float& dbias) {
    bwd_chunk_lean<S, HAS_Z>(p, sm, b, blk, k, A, carry, dA, Dv, dD, dbias);
  });
}

// Chunked backward, pass (d): dA_part (Bt, Dm, N), dD_part, ddelta_bias_part (Bt, Dm) = sums of the
// per-chunk partials over chunks, in chunk order (deterministic).
__global__ void selective_scan_reduce_chunk_params_kernel(SelectiveScanParams p) {
  const int64_t N = p.dstate, nck = (p.len + kSsChunk - 1) / kSsChunk, bd_total = p.batch * p.dim;
  const int64_t total = bd_total * (N + 2);
  const ChunkWorkspace w = chunk_workspace(p);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (i < bd_total * N) {
      const int64_t bd = i / N, n = i % N;
      float sum = 0.f;
      for (int64_t k = 0; k < nck; ++k) sum += w.dA[(bd * nck + k) * N + n];
      p.dA_part[i] = sum;  // i = bd N + n
    } else {
      const int64_t j = i - bd_total * N, which = j / bd_total, bd = j % bd_total;
      float* dst = which ? p.ddelta_bias_part : p.dD_part;
      if (!dst) continue;
      const float* src = which ? w.dbias : w.dD;
      float sum = 0.f;
      for (int64_t k = 0; k < nck; ++k) sum += src[bd * nck + k];
      dst[bd] = sum;
    }
  }
}

// dB, dC (Bt, N, L) = sum over channel blocks of the partials (Bt, nblk, 2, N, L) (index 0: dC,
// 1: dB, as the backward kernel writes them); fixed order, so the result is deterministic.
__global__ void selective_scan_reduce_dbc_kernel(const float* ws, float* dB, float* dC, int64_t batch, int64_t nblk,
                                                 int64_t NL) {
  const int64_t total = batch * 2 * NL;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / (2 * NL), rem = i % (2 * NL), which = rem / NL, nl = rem % NL;
    float s = 0.f;
    for (int64_t k = 0; k < nblk; ++k) s += ws[((b * nblk + k) * 2 + which) * NL + nl];
    (which ? dB : dC)[b * NL + nl] = s;  // which 0: dC terms, 1: dB terms
  }
}

bool valid_params(const SelectiveScanParams& p) {
  return p.batch >= 1 && p.batch <= 65535 && p.dim >= 1 && p.len >= 1 && p.dstate >= 1 && p.dstate <= kSsMaxState &&
         p.u && p.delta && p.A && p.B && p.C;
}


// One block per (channel block, batch row[, chunk]); S = states per lane from N.
template <template <int, bool> class Launch>
void dispatch_states(const SelectiveScanParams& p, dim3 grid, cudaStream_t stream) {
  const bool z = p.z != nullptr;
  if (p.dstate <= 4) {
    if (z) Launch<1, true>::run(p, grid, stream);
    else Launch<1, false>::run(p, grid, stream);
  } else if (p.dstate <= 8) {
    if (z) Launch<2, true>::run(p, grid, stream);
    else Launch<2, false>::run(p, grid, stream);
  } else {
    if (z) Launch<4, true>::run(p, grid, stream);
    else Launch<4, false>::run(p, grid, stream);
  }
}

template <FwdMode MODE, bool FAST>
struct FwdLaunch {
  template <int S, bool HAS_Z>
  struct Of {
    static void run(const SelectiveScanParams& p, dim3 grid, cudaStream_t stream) {
      selective_scan_fwd_kernel<S, HAS_Z, MODE, FAST><<<grid, kThreads, 0, stream>>>(p);
    }
  };
};
template <int S, bool HAS_Z>
struct BwdSequentialLaunch {
  static void run(const SelectiveScanParams& p, dim3 grid, cudaStream_t stream) {
    selective_scan_bwd_kernel<S, HAS_Z><<<grid, kThreads, 0, stream>>>(p);
  }
};
template <int S, bool HAS_Z>
struct BwdCarryLocalLaunch {
  static void run(const SelectiveScanParams& p, dim3 grid, cudaStream_t stream) {
    selective_scan_bwd_carry_local_kernel<S, HAS_Z><<<grid, kThreads, 0, stream>>>(p);
  }
};
template <int S, bool HAS_Z>
struct BwdChunkLaunch {
  static void run(const SelectiveScanParams& p, dim3 grid, cudaStream_t stream) {
    selective_scan_bwd_chunk_kernel<S, HAS_Z><<<grid, kThreads, 0, stream>>>(p);
  }
};
template <int MIN_BLOCKS>
struct BwdChunkLeanLaunch {
  template <int S, bool HAS_Z>
  struct Of {
    static void run(const SelectiveScanParams& p, dim3 grid, cudaStream_t stream) {
      selective_scan_bwd_chunk_lean_kernel<S, HAS_Z, MIN_BLOCKS><<<grid, kThreads, 0, stream>>>(p);
    }
  };
};

// Grid of the one-thread-per-element kernels (grid-stride loops cover the rest).
unsigned flat_blocks(int64_t total, int threads) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((total + threads - 1) / threads, 65536)));
}

}  // namespace

int selective_scan_resolve_variant(const SelectiveScanParams& p) {
  const bool chunk_grid_fits = selective_scan_num_chunks(p.len) <= kSsMaxGridChunks;
  // The runs kernels' 1-D grid: one block per (batch row, channel block, chunk).
  const bool runs_grid_fits = p.batch * selective_scan_num_channel_blocks(p.dim) * selective_scan_num_chunks(p.len) <=
                              std::numeric_limits<int32_t>::max();
  switch (p.variant) {
    // The runs variant measured fastest forward and backward at every length of the H100 sweep (B 8,
    // D 1536, L 512-8192, N 16; notes/baseline_kernels.md), and its 1-D grid of
    // Bt ceil(Dm / 32) ceil(L / kSsChunk) blocks fills the GPU at any shape that has work.
    case kSsVariantAuto: return runs_grid_fits ? kSsVariantRuns : kSsVariantSequential;
    case kSsVariantSequential: return kSsVariantSequential;
    case kSsVariantChunked: return chunk_grid_fits ? kSsVariantChunked : -1;
    case kSsVariantHybrid: return chunk_grid_fits ? kSsVariantHybrid : -1;
    case kSsVariantLean: return chunk_grid_fits ? kSsVariantLean : -1;
    case kSsVariantRuns: return runs_grid_fits ? kSsVariantRuns : -1;
    default: return -1;
  }
}

cudaError_t launch_selective_scan_forward(const SelectiveScanParams& p, cudaStream_t stream) {
  if (!valid_params(p) || !p.out || !p.chunk_states) return cudaErrorInvalidValue;
  const int variant = selective_scan_resolve_variant(p);
  if (variant < 0) return cudaErrorInvalidValue;
  const unsigned nblk = static_cast<unsigned>(selective_scan_num_channel_blocks(p.dim));
  const unsigned bt = static_cast<unsigned>(p.batch);
  if (variant == kSsVariantSequential) {
    dispatch_states<FwdLaunch<FwdMode::Sequential, false>::Of>(p, dim3(nblk, bt), stream);
    return cudaGetLastError();
  }
  if (variant == kSsVariantRuns) return ss_detail::launch_selective_scan_fwd_lanes(p, stream);
  if (variant == kSsVariantHybrid || variant == kSsVariantLean) {  // one fast pass
    dispatch_states<FwdLaunch<FwdMode::Sequential, true>::Of>(p, dim3(nblk, bt), stream);
    return cudaGetLastError();
  }
  const int64_t nck = selective_scan_num_chunks(p.len);
  // (a) chunk-local end states of chunks 0 .. nck - 2 (the last chunk's is never needed).
  if (nck > 1) {
    dispatch_states<FwdLaunch<FwdMode::ChunkLocal, true>::Of>(p, dim3(nblk, bt, static_cast<unsigned>(nck - 1)), stream);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  // (b) chain the chunk boundaries (also writes chunk_states[.., 0] = 0).
  const int64_t total = p.batch * p.dim * p.dstate;
  selective_scan_fwd_combine_kernel<<<flat_blocks(total, 256), 256, 0, stream>>>(p);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  // (c) replay every chunk from its true start state.
  dispatch_states<FwdLaunch<FwdMode::ChunkReplay, true>::Of>(p, dim3(nblk, bt, static_cast<unsigned>(nck)), stream);
  return cudaGetLastError();
}

cudaError_t launch_selective_scan_backward(const SelectiveScanParams& p, cudaStream_t stream) {
  if (!valid_params(p) || !p.chunk_states || !p.dout || !p.du || !p.ddelta || !p.dA_part || !p.dB || !p.dC ||
      !p.workspace || (p.z && !p.dz))
    return cudaErrorInvalidValue;
  const int variant = selective_scan_resolve_variant(p);  // the chunk-parallel variants share passes (a), (b), (d)
  if (variant < 0) return cudaErrorInvalidValue;
  const int64_t nblk = selective_scan_num_channel_blocks(p.dim), nck = selective_scan_num_chunks(p.len);
  const unsigned bt = static_cast<unsigned>(p.batch);
  cudaError_t e = cudaSuccess;
  if (variant == kSsVariantSequential) {
    dispatch_states<BwdSequentialLaunch>(p, dim3(static_cast<unsigned>(nblk), bt), stream);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  } else {
    const dim3 grid(static_cast<unsigned>(nblk), bt, static_cast<unsigned>(nck));
    const int64_t total = p.batch * p.dim * p.dstate;
    if (variant != kSsVariantRuns) {  // the runs variant chains its chunks itself
      dispatch_states<BwdCarryLocalLaunch>(p, grid, stream);                                 // (a)
      if ((e = cudaGetLastError()) != cudaSuccess) return e;
      selective_scan_bwd_combine_kernel<<<flat_blocks(total, 256), 256, 0, stream>>>(p);     // (b)
      if ((e = cudaGetLastError()) != cudaSuccess) return e;
    }
    if (variant == kSsVariantLean) {                                                         // (c)
      dispatch_states<BwdChunkLeanLaunch<kLeanMinBlocks>::Of>(p, grid, stream);
      e = cudaGetLastError();
    } else if (variant == kSsVariantRuns) {
      e = ss_detail::launch_selective_scan_bwd_runs(p, stream);
    } else {
      dispatch_states<BwdChunkLaunch>(p, grid, stream);
      e = cudaGetLastError();
    }
    if (e != cudaSuccess) return e;
    selective_scan_reduce_chunk_params_kernel<<<flat_blocks(p.batch * p.dim * (p.dstate + 2), 256), 256, 0, stream>>>(p);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  }
  const int64_t NL = p.dstate * p.len, total = p.batch * 2 * NL;
  const int threads = 256;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + threads - 1) / threads, 65536));
  selective_scan_reduce_dbc_kernel<<<blocks, threads, 0, stream>>>(p.workspace, p.dB, p.dC, p.batch, nblk, NL);
  return cudaGetLastError();
}

}  // namespace rbk::cuda
