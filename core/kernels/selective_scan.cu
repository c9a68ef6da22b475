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
// Variants (rbk/kernels/selective_scan_launch.h): this file's sequential variant walks all of L in
// one block per (batch row, 32 channels), storing h at every chunk start for its backward, which
// walks the chunks right to left. The runs variant (the default) is in selective_scan_runs_{fwd,bwd}.cu (one
// channel per lane: a single-pass forward, and a backward whose chunks are chained by a
// look-back); this file's launchers dispatch to it and run the reductions after its backward.
// Three chunk-parallel variants (chunked, hybrid, lean) lived here until 2026-12-05 (issue 18:
// the runs variant beat them at every length measured); notes/baseline_kernels.md has their design,
// timings and the last commit that had them.

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

// The step size, the gate and the sigmoids are computed once per element when the tile is stored
// (not once per lane and step): a channel's 4 lanes then only read them.
struct TileSmem {
  float u[kCh][kTP];
  float dt[kCh][kTP];  // softplus(delta + bias) (or delta + bias); 0 past the end of the sequence
  float sg[kCh][kTP];  // backward: d dt / d delta = sigmoid(delta + bias) (1 without softplus)
  float z[kCh][kTP];   // forward: silu(z); backward: z
  float zs[kCh][kTP];  // backward: sigmoid(z)
  float g[kCh][kTP];   // forward: y; backward: dout
  // B and C of the tile, flat, rows per state (bc_index).
  float Bs[kNMax * kT];
  float Cs[kNMax * kT];
  float bias[kCh];
};

// Index of (state n, step tt) in TileSmem::Bs / Cs: rows per state. A lane reads its S states
// n = g S + j at one step, so the 4 lane groups g hit one bank (row stride 16 floats), a 4-way
// conflict on every read; rows per step, as the removed chunk-parallel variants had, avoid it.
__device__ __forceinline__ int bc_index(int n, int tt) { return n * kT + tt; }

// The S values of states g S .. g S + S - 1 at step tt.
template <int S>
__device__ __forceinline__ void load_states(const float* arr, int g, int tt, float (&out)[S]) {
#pragma unroll
  for (int j = 0; j < S; ++j) out[j] = arr[bc_index(g * S + j, tt)];
}

// One tile's global values held in registers (loaded early, stored to shared memory later).
struct TileRegs {
  float u[kElemPerThread], dl[kElemPerThread], z[kElemPerThread], g[kElemPerThread];
  float B[kBcPerThread], C[kBcPerThread];
};

// a_t = exp(dt A), one IEEE expf per (state, step).
__device__ __forceinline__ float decay(float dt, float A) { return expf(dt * A); }

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

// BWD: keep z and store sigmoid(z) and sigmoid(delta + bias); forward: store silu(z).
template <bool LOAD_Z, bool LOAD_G, bool LOAD_C, bool BWD>
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
    s.Bs[bc_index(i / kT, i % kT)] = r.B[k];
    if (LOAD_C) s.Cs[bc_index(i / kT, i % kT)] = r.C[k];
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

// Forward: the whole of L from h = 0, storing h at every chunk start (the backward's replays start
// there).
template <int S, bool HAS_Z>
__global__ void __launch_bounds__(kThreads) selective_scan_fwd_kernel(SelectiveScanParams p) {
  __shared__ TileSmem sm;
  const int tid = threadIdx.x, cl = tid / kG, g = tid % kG;
  const int64_t b = blockIdx.y, c0 = static_cast<int64_t>(blockIdx.x) * kCh, d = c0 + cl;
  const bool dvalid = d < p.dim;
  const int N = static_cast<int>(p.dstate);
  const int64_t nck = (p.len + kSsChunk - 1) / kSsChunk;
  const int64_t ntiles = (p.len + kT - 1) / kT;
  float A[S], h[S];
#pragma unroll
  for (int j = 0; j < S; ++j) {
    const int n = g * S + j;
    A[j] = dvalid && n < N ? p.A[d * N + n] : 0.f;
    h[j] = 0.f;
  }
  const float Dv = p.D && dvalid ? p.D[d] : 0.f;
  load_bias(sm, p, c0);
  __syncthreads();
  TileRegs r;
  load_tile<HAS_Z, false, true>(r, p, nullptr, b, c0, 0);
  for (int64_t tile = 0; tile < ntiles; ++tile) {
    const int64_t t0 = tile * kT;
    store_tile<HAS_Z, false, true, false>(r, sm, t0, p.len, p.delta_softplus);
    __syncthreads();
    // Prefetch the next tile while this one is computed.
    if (tile + 1 < ntiles) load_tile<HAS_Z, false, true>(r, p, nullptr, b, c0, t0 + kT);
    if (t0 % kSsChunk == 0 && dvalid) {
      float* cs = p.chunk_states + ((b * p.dim + d) * nck + t0 / kSsChunk) * N;
#pragma unroll
      for (int j = 0; j < S; ++j)
        if (g * S + j < N) cs[g * S + j] = h[j];
    }
#pragma unroll
    for (int tt = 0; tt < kT; ++tt) {
      const float uu = sm.u[cl][tt];
      const float dt = sm.dt[cl][tt];
      const float dtu = dt * uu;
      float yp = 0.f, Bn[S], Cn[S];
      load_states<S>(sm.Bs, g, tt, Bn);
      load_states<S>(sm.Cs, g, tt, Cn);
#pragma unroll
      for (int j = 0; j < S; ++j) {
        h[j] = decay(dt, A[j]) * h[j] + dtu * Bn[j];
        yp += Cn[j] * h[j];
      }
      yp += __shfl_xor_sync(0xffffffffu, yp, 1);
      yp += __shfl_xor_sync(0xffffffffu, yp, 2);
      if (g == 0) {
        float y = yp + Dv * uu;
        if (HAS_Z) y *= sm.z[cl][tt];  // silu(z)
        sm.g[cl][tt] = y;
      }
    }
    __syncthreads();
    write_tile(sm.g, p.out, p, b, c0, t0);
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
  float red[kWarps * kG * 2 * S * kT];  // per-warp dB/dC sums over the warp's 8 channels (red_index)
};

// Position of value idx (of K = 2 S kT) of lane group g in warp w's dB/dC sums. After the
// reduce-scatter, lane (q = lane / 4, g) holds idx = q K/8 + i, i < K/8. Packed: the 32 lanes'
// stores of one i fall into 2 banks, 16-way conflicted (the removed chunk-parallel variants padded
// the rows to spread them over 32 banks).
template <int K>
__device__ __forceinline__ int red_index(int w, int g, int idx) { return (w * kG + g) * K + idx; }

// The backward of chunk k of batch row b for the block's 32 channels: replays the
// chunk forward from chunk_states[k] to get the tile-start states, then walks its tiles in reverse,
// writing du, ddelta, dz and the block's dB/dC partials for the chunk's steps. carry enters as the
// adjoint carry at the chunk's last step (a_{t+1} g_{t+1}) and leaves as the carry into step
// k kSsChunk - 1; dA, dD, dbias accumulate. A: the lane's A.
// Callers have loaded the block's bias with load_bias(s.t, ...); every shared store here comes after
// a __syncthreads.
template <int S, bool HAS_Z>
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
    store_tile<false, false, false, false>(r, sm, t0, L, p.delta_softplus);
    __syncthreads();
#pragma unroll
    for (int tt = 0; tt < kT; ++tt) {
      const float dt = sm.dt[cl][tt];
      const float dtu = dt * sm.u[cl][tt];
      float Bn[S];
      load_states<S>(sm.Bs, g, tt, Bn);
#pragma unroll
      for (int j = 0; j < S; ++j) h[j] = decay(dt, A[j]) * h[j] + dtu * Bn[j];
    }
  }
  // ---- tiles of the chunk in reverse ----
  for (int tl = tcnt - 1; tl >= 0; --tl) {
    const int64_t t0 = (k * kTilesPerChunk + tl) * kT;
    load_tile<HAS_Z, true, true>(r, p, p.dout, b, c0, t0);
    __syncthreads();
    store_tile<HAS_Z, true, true, true>(r, sm, t0, L, p.delta_softplus);
    __syncthreads();
    float v[K];  // first: h_t (which 0) and a_t (which 1); after the reverse step: dC, dB terms
    float hin[S], ys[kT];
#pragma unroll
    for (int j = 0; j < S; ++j) hin[j] = s.ts[tl][j][tid];
#pragma unroll
    for (int tt = 0; tt < kT; ++tt) {
      const float uu = sm.u[cl][tt];
      const float dt = sm.dt[cl][tt];
      float yp = 0.f, Bn[S], Cn[S];
      load_states<S>(sm.Bs, g, tt, Bn);
      load_states<S>(sm.Cs, g, tt, Cn);
#pragma unroll
      for (int j = 0; j < S; ++j) {
        const float a = decay(dt, A[j]);
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
      load_states<S>(sm.Bs, g, tt, Bs);
      load_states<S>(sm.Cs, g, tt, Cs);
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
    for (int i = 0; i < K / 8; ++i) s.red[red_index<K>(warp, g, (lane / kG) * (K / 8) + i)] = v[i];
    __syncthreads();
    for (int o = tid; o < kG * K; o += kThreads) {
      const int gg = o / K, idx = o % K;
      const int which = idx / (S * kT), j = (idx / kT) % S, tt = idx % kT;
      const int n = gg * S + j;
      float sum = 0.f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) sum += s.red[red_index<K>(w, gg, idx)];
      if (n < N && t0 + tt < L) p.workspace[(((b * nblk + blk) * 2 + which) * N + n) * L + t0 + tt] = sum;
    }
    write_tile(s.o_du, p.du, p, b, c0, t0);
    write_tile(s.o_dd, p.ddelta, p, b, c0, t0);
    if (HAS_Z) write_tile(s.o_dz, p.dz, p, b, c0, t0);
  }
}

// Backward: every chunk of the block's channels, right to left, in one block.
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
  for (int64_t k = nck - 1; k >= 0; --k) bwd_chunk<S, HAS_Z>(p, sm, b, blk, k, A, carry, dA, Dv, dD, dbias);
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

// After the runs backward: dA_part (Bt, Dm, N), dD_part, ddelta_bias_part (Bt, Dm) = sums of its
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


// One block per (channel block, batch row); S = states per lane from N.
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

template <int S, bool HAS_Z>
struct FwdSequentialLaunch {
  static void run(const SelectiveScanParams& p, dim3 grid, cudaStream_t stream) {
    selective_scan_fwd_kernel<S, HAS_Z><<<grid, kThreads, 0, stream>>>(p);
  }
};
template <int S, bool HAS_Z>
struct BwdSequentialLaunch {
  static void run(const SelectiveScanParams& p, dim3 grid, cudaStream_t stream) {
    selective_scan_bwd_kernel<S, HAS_Z><<<grid, kThreads, 0, stream>>>(p);
  }
};

// Grid of the one-thread-per-element kernels (grid-stride loops cover the rest).
unsigned flat_blocks(int64_t total, int threads) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((total + threads - 1) / threads, 65536)));
}

}  // namespace

SsVariant selective_scan_resolve_variant(const SelectiveScanParams& p) {
  // The runs kernels' 1-D grid: one block per (batch row, channel block, chunk).
  const bool runs_grid_fits = p.batch * selective_scan_num_channel_blocks(p.dim) * selective_scan_num_chunks(p.len) <=
                              std::numeric_limits<int32_t>::max();
  switch (p.variant) {
    // The runs variant measured fastest forward and backward at every length of the H100 sweep (B 8,
    // D 1536, L 512-8192, N 16; notes/baseline_kernels.md), and its 1-D grid of
    // Bt ceil(Dm / 32) ceil(L / kSsChunk) blocks fills the GPU at any shape that has work.
    case SsVariant::Auto: return runs_grid_fits ? SsVariant::Runs : SsVariant::Sequential;
    case SsVariant::Sequential: return SsVariant::Sequential;
    case SsVariant::Runs: return runs_grid_fits ? SsVariant::Runs : SsVariant::Invalid;
    default: return SsVariant::Invalid;
  }
}

cudaError_t launch_selective_scan_forward(const SelectiveScanParams& p, cudaStream_t stream) {
  if (!valid_params(p) || !p.out || !p.chunk_states) return cudaErrorInvalidValue;
  const SsVariant variant = selective_scan_resolve_variant(p);
  if (variant == SsVariant::Invalid) return cudaErrorInvalidValue;
  if (variant == SsVariant::Runs) return ss_detail::launch_selective_scan_fwd_lanes(p, stream);
  const unsigned nblk = static_cast<unsigned>(selective_scan_num_channel_blocks(p.dim));
  dispatch_states<FwdSequentialLaunch>(p, dim3(nblk, static_cast<unsigned>(p.batch)), stream);
  return cudaGetLastError();
}

cudaError_t launch_selective_scan_backward(const SelectiveScanParams& p, cudaStream_t stream) {
  if (!valid_params(p) || !p.chunk_states || !p.dout || !p.du || !p.ddelta || !p.dA_part || !p.dB || !p.dC ||
      !p.workspace || (p.z && !p.dz))
    return cudaErrorInvalidValue;
  const SsVariant variant = selective_scan_resolve_variant(p);
  if (variant == SsVariant::Invalid) return cudaErrorInvalidValue;
  const int64_t nblk = selective_scan_num_channel_blocks(p.dim);
  cudaError_t e = cudaSuccess;
  if (variant == SsVariant::Sequential) {
    dispatch_states<BwdSequentialLaunch>(p, dim3(static_cast<unsigned>(nblk), static_cast<unsigned>(p.batch)), stream);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  } else {
    if ((e = ss_detail::launch_selective_scan_bwd_runs(p, stream)) != cudaSuccess) return e;
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
