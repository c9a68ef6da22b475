// Stable BK-Core on CUDA: forward (bidirectional and causal) and the exact backward, parallel over
// N. Claims C01 (numerics) and C17 (kernel speed); upstream-audit §1.4, §1.11.
//
// Maths (bk_core.h): with d_i = a_i - z and k_i = b_i c_i,
//   left  u_i = 1/(d_i - k_{i-1} u_{i-1}), u_{-1} = 0      (u_i = 1/dl_i, dl the left pivots)
//   right w_i = 1/(d_i - k_i w_{i+1}),     w_N = 0         (w_i = 1/dr_i)
//   G_ii = 1/(d_i - k_{i-1} u_{i-1} - k_i w_{i+1});  causal G^c_ii = u_i.
// Each step is the Moebius map of the matrix [[d, -k], [1, 0]] on the projective vector (p, q),
// u = q/p, so a run of steps is one 2x2 complex matrix. A thread composes ITEMS steps, a block
// scans the thread matrices (warp shuffles, then one warp over the warp totals), and each thread
// replays its steps from the state the scan hands it. Matrices are rescaled by powers of two after
// every second step (exact, and a Moebius map ignores scale), so no quantity can overflow at any N.
// Tiles of one row (N > kBkTileSize) are chained by a per-row sequential scan of tile aggregates.
//
// Exact backward (dL/da_j = -sum_i Re(conj(g_i) G_ij G_ji)): with G_ij G_ji = G_jj^2 prod k u^2
// (left) / prod k w^2 (right), two first-order affine recurrences
//   F_j = conj(g_j) + k_{j-1} u_{j-1}^2 F_{j-1},  T_j = conj(g_j) + k_j w_{j+1}^2 T_{j+1},
//   dL/da_j = -Re(G_jj^2 (F_j + T_j - conj(g_j)))
// and, causal, S_j = u_j^2 (conj(g_j) + k_j S_{j+1}), dL/da_j = -Re S_j. Affine maps are the
// matrices [[alpha, c], [0, 1]], scanned with the same code (no rescaling: they contract).
// The per-row chaining of tiles is in bk_tile_state_scan.cu; the one-pass window algorithms are in
// bk_window_forward.cu and bk_window_backward.cu; this file dispatches to them.
#include "rbk/kernels/bk_scan_launch.h"

#include "bk_complex.cuh"
#include "bk_stable_kparams.cuh"
#include "rbk/kernels/bk_window.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <type_traits>

namespace rbk::cuda {
namespace {

using detail::Cf;
using detail::M2;
using detail::V2;
using detail::load_as_float;

// Tile-kernel passes: Forward writes G; AggAffine writes the backward's per-tile affine aggregates;
// Backward writes dL/da. (The per-tile Moebius aggregates come from bk_tile_aggregate_kernel.)
enum class Phase { Forward, AggAffine, Backward };

template <int THREADS>
struct ScanSmem {
  M2 wl[THREADS / 32];
  M2 wr[THREADS / 32];
  V2 vl[THREADS / 32];
  V2 vr[THREADS / 32];
};

// Block-wide scan of this thread's left aggregate L (earlier threads act first) and right aggregate
// R (later threads act first); E is a 2x2 Moebius matrix (state S = projective vector V2) or an
// affine map (S = Cf). AGG: write the two tile products to tot and stop. Otherwise returns in
// out_l / out_r the state entering this thread's first (left) / last (right) element, given the
// states entering the tile. NORM rescales Moebius products: thread aggregates arrive with entries
// in [1, 2), a product at most squares the scale (times 2), so rescaling after the off = 2 and
// off = 8 levels and at every cross-warp level keeps every entry far below 2^127.
template <int THREADS, class E, class S, bool NORM, bool DO_LEFT, bool DO_RIGHT, bool AGG>
__device__ __forceinline__ void block_scan(E L, E R, S in_l, S in_r, S& out_l, S& out_r, ScanSmem<THREADS>& sm,
                                           float* tot) {
  constexpr int NW = THREADS / 32;
  static_assert(sizeof(E) <= sizeof(M2) && sizeof(S) <= sizeof(V2), "scan scratch too small");
  E* wl = reinterpret_cast<E*>(sm.wl);
  E* wr = reinterpret_cast<E*>(sm.wr);
  S* vl = reinterpret_cast<S*>(sm.vl);
  S* vr = reinterpret_cast<S*>(sm.vr);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const E I = detail::identity_of<E>();
  __syncthreads();  // the shared scratch may still be read by a previous scan
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    if (DO_LEFT) {
      const E x = detail::shfl_up(L, off);
      if (lane >= off) L = L * x;
      if constexpr (NORM) {
        if (off == 2 || off == 8) detail::normalise(L);
      }
    }
    if (DO_RIGHT) {
      const E y = detail::shfl_down(R, off);
      if (lane + off < 32) R = R * y;
      if constexpr (NORM) {
        if (off == 2 || off == 8) detail::normalise(R);
      }
    }
  }
  if (DO_LEFT && lane == 31) wl[warp] = L;
  if (DO_RIGHT && lane == 0) wr[warp] = R;
  __syncthreads();
  if (warp == 0) {
    E a = (DO_LEFT && lane < NW) ? wl[lane] : I;
    E b = (DO_RIGHT && lane < NW) ? wr[lane] : I;
#pragma unroll
    for (int off = 1; off < NW; off <<= 1) {
      if (DO_LEFT) {
        const E x = detail::shfl_up(a, off);
        if (lane >= off) a = a * x;
        if constexpr (NORM) detail::normalise(a);
      }
      if (DO_RIGHT) {
        const E y = detail::shfl_down(b, off);
        if (lane + off < NW) b = b * y;
        if constexpr (NORM) detail::normalise(b);
      }
    }
    if (AGG) {
      if (lane == NW - 1) *reinterpret_cast<E*>(tot) = a;
      if (lane == 0) *reinterpret_cast<E*>(tot + 8) = b;
    } else {
      E ea = detail::shfl_up(a, 1);
      E eb = detail::shfl_down(b, 1);
      if (lane == 0) ea = I;
      if (lane == NW - 1) eb = I;
      if (lane < NW) {
        vl[lane] = ea * in_l;
        vr[lane] = eb * in_r;
      }
    }
  }
  if (AGG) return;
  __syncthreads();
  E xl = detail::shfl_up(L, 1);
  E xr = detail::shfl_down(R, 1);
  if (lane == 0) xl = I;
  if (lane == 31) xr = I;
  out_l = xl * vl[warp];
  out_r = xr * vr[warp];
}

// Padded shared-memory index: conflict-free for both the coalesced (striped) and the per-thread
// (blocked) access pattern, 4-byte words (f) and 8-byte pairs (f2).
__device__ __forceinline__ int pad_f(int i) { return i + (i >> 5); }
__device__ __forceinline__ int pad_f2(int i) { return i + (i >> 4); }

template <int THREADS, int ITEMS, Phase PH, bool LAP, bool CAUSAL, class Tin>
__global__ void __launch_bounds__(THREADS) bk_tile_kernel(const KParams p) {
  constexpr int T = THREADS * ITEMS;
  constexpr bool kBackward = PH == Phase::AggAffine || PH == Phase::Backward;
  __shared__ float2 sbuf[T + T / 16];
  __shared__ ScanSmem<THREADS> sm;
  float* sf = reinterpret_cast<float*>(sbuf);

  // The final passes walk tiles in reverse so that the tail of v the aggregate pass just read
  // is still in L2 when they start.
  const bool reversed = PH == Phase::Forward || PH == Phase::Backward;
  static_assert(THREADS * ITEMS == kBkTileSize, "tile must be kBkTileSize");
  const int64_t lin = reversed ? p.total_tiles - 1 - static_cast<int64_t>(blockIdx.x) : static_cast<int64_t>(blockIdx.x);
  const int64_t row = lin / p.nt, tile = lin % p.nt;
  const int64_t start = tile * T;
  const int count = static_cast<int>(min(static_cast<int64_t>(T), p.n - start));
  const int64_t base = row * p.n + start;
  const int tid = threadIdx.x;
  const int first = tid * ITEMS;

  // ---- inputs, coalesced through shared memory into per-thread runs ----
  float x[ITEMS];  // Re d_j
#pragma unroll
  for (int j = 0; j < ITEMS; ++j) {
    const int i = j * THREADS + tid;
    sf[pad_f(i)] = i < count ? load_as_float<Tin>(p.diag, base + i) : 0.f;
  }
  __syncthreads();
  const float shift = (LAP ? -2.f : 0.f) - p.z_re;
#pragma unroll
  for (int j = 0; j < ITEMS; ++j) x[j] = sf[pad_f(first + j)] + shift;
  const float dy = -p.z_im;  // Im d_j
  float k[ITEMS];            // k_j: coupling of j to j+1 (0 past the row end)
  float kprev = 1.f;         // k_{first-1}
  if constexpr (LAP) {
#pragma unroll
    for (int j = 0; j < ITEMS; ++j) k[j] = 1.f;  // the boundary terms vanish through u_{-1} = w_N = 0
  } else {
    __syncthreads();
    const int64_t kb = row * (p.n - 1) + start;
#pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      const int i = j * THREADS + tid;
      sf[pad_f(i)] = (i < count && start + i < p.n - 1) ? p.upper[kb + i] * p.lower[kb + i] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < ITEMS; ++j) k[j] = sf[pad_f(first + j)];
    if (tid > 0) {
      kprev = sf[pad_f(first - 1)];
    } else {
      kprev = start > 0 ? p.upper[kb - 1] * p.lower[kb - 1] : 0.f;
    }
  }
#define RBK_KP(j) ((j) == 0 ? kprev : k[(j) > 0 ? (j) - 1 : 0])
  __syncthreads();  // shared buffer free again

  // ---- Moebius aggregates of this thread's run ----
  M2 L = detail::identity_m2(), R = detail::identity_m2();
#pragma unroll
  for (int j = 0; j < ITEMS; ++j) {
    if (first + j < count) detail::pivot_step(L, Cf{x[j], dy}, RBK_KP(j));
    if ((j & 3) == 3) detail::normalise(L);
  }
  detail::normalise(L);
  if constexpr (!CAUSAL) {
#pragma unroll
    for (int j = ITEMS - 1; j >= 0; --j) {
      if (first + j < count) detail::pivot_step(R, Cf{x[j], dy}, k[j]);
      if ((j & 3) == 0) detail::normalise(R);
    }
    detail::normalise(R);
  }
  V2 vl{{1.f, 0.f}, {0.f, 0.f}}, vr = vl;
  {
    Cf u_in{0.f, 0.f}, w_in{0.f, 0.f};
    if (p.nt > 1) {
      const float* s = p.mob_state + lin * 4;
      u_in = Cf{s[0], s[1]};
      w_in = Cf{s[2], s[3]};
    }
    block_scan<THREADS, M2, V2, true, true, !CAUSAL, false>(L, R, V2{{1.f, 0.f}, u_in}, V2{{1.f, 0.f}, w_in}, vl, vr, sm,
                                                            nullptr);
  }
  const Cf u0 = detail::cdiv(vl.q, vl.p);  // u_{first-1}
  const Cf w0 = CAUSAL ? Cf{0.f, 0.f} : detail::cdiv(vr.q, vr.p);  // w_{first+ITEMS}

  if constexpr (PH == Phase::Forward) {
    Cf G[ITEMS];
    Cf ku[ITEMS];  // k_{j-1} u_{j-1}
    Cf u = u0;
#pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      ku[j] = RBK_KP(j) * u;
      u = detail::recip(Cf{x[j], dy} - ku[j]);
      if (CAUSAL) G[j] = u;
    }
    if constexpr (!CAUSAL) {
      Cf w = w0;
#pragma unroll
      for (int j = ITEMS - 1; j >= 0; --j) {
        const Cf dw = Cf{x[j], dy} - k[j] * w;
        G[j] = detail::recip(dw - ku[j]);
        if (first + j < count) w = detail::recip(dw);
      }
    }
#pragma unroll
    for (int j = 0; j < ITEMS; ++j) sbuf[pad_f2(first + j)] = make_float2(G[j].x, G[j].y);
    __syncthreads();
    float2* out2 = reinterpret_cast<float2*>(p.out);
#pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      const int i = j * THREADS + tid;
      if (i < count) out2[base + i] = sbuf[pad_f2(i)];
    }
    return;
  }

  if constexpr (kBackward) {
    Cf cg[ITEMS];  // conj(g_j)
    {
      const float2* g2 = reinterpret_cast<const float2*>(p.grad_features);
#pragma unroll
      for (int j = 0; j < ITEMS; ++j) {
        const int i = j * THREADS + tid;
        sbuf[pad_f2(i)] = i < count ? g2[base + i] : make_float2(0.f, 0.f);
      }
      __syncthreads();
#pragma unroll
      for (int j = 0; j < ITEMS; ++j) {
        const float2 g = sbuf[pad_f2(first + j)];
        cg[j] = Cf{g.x, -g.y};
      }
    }
    Cf grad_state_l{0.f, 0.f}, grad_state_r{0.f, 0.f};
    if (p.nt > 1 && PH == Phase::Backward) {
      const float* s = p.aff_state + lin * 4;
      grad_state_l = Cf{s[0], s[1]};
      grad_state_r = Cf{s[2], s[3]};
    }
    float gout[ITEMS];
    if constexpr (CAUSAL) {
      Cf us[ITEMS];  // u_j
      Cf u = u0;
#pragma unroll
      for (int j = 0; j < ITEMS; ++j) {
        if (first + j < count) u = detail::recip(Cf{x[j], dy} - RBK_KP(j) * u);
        us[j] = u * u;  // u_j^2
      }
      detail::Af A = detail::identity_af(), Rr = detail::identity_af();
#pragma unroll
      for (int j = ITEMS - 1; j >= 0; --j)
        if (first + j < count) Rr = detail::Af{k[j] * us[j], us[j] * cg[j]} * Rr;
      Cf al{0.f, 0.f}, ar{0.f, 0.f};
      if constexpr (PH == Phase::AggAffine) {
        block_scan<THREADS, detail::Af, Cf, false, false, true, true>(A, Rr, al, ar, al, ar, sm, p.aff_agg + lin * 16);
        return;
      } else {
        block_scan<THREADS, detail::Af, Cf, false, false, true, false>(A, Rr, Cf{0.f, 0.f}, grad_state_r, al, ar, sm,
                                                                       nullptr);
      }
      Cf S = ar;
#pragma unroll
      for (int j = ITEMS - 1; j >= 0; --j) {
        if (first + j < count) S = (k[j] * us[j]) * S + us[j] * cg[j];
        gout[j] = -S.x;
      }
    } else {
      Cf aF[ITEMS];  // k_{j-1} u_{j-1}^2
      Cf ku[ITEMS];
      Cf u = u0;
#pragma unroll
      for (int j = 0; j < ITEMS; ++j) {
        ku[j] = RBK_KP(j) * u;
        aF[j] = ku[j] * u;
        if (first + j < count) u = detail::recip(Cf{x[j], dy} - ku[j]);
      }
      Cf G2[ITEMS], aT[ITEMS];  // G_jj^2, k_j w_{j+1}^2
      Cf w = w0;
#pragma unroll
      for (int j = ITEMS - 1; j >= 0; --j) {
        const Cf kw = k[j] * w;
        const Cf dw = Cf{x[j], dy} - kw;
        const Cf Gjj = detail::recip(dw - ku[j]);
        G2[j] = Gjj * Gjj;
        aT[j] = kw * w;
        if (first + j < count) w = detail::recip(dw);
      }
      detail::Af Fm = detail::identity_af(), Tm = detail::identity_af();
#pragma unroll
      for (int j = 0; j < ITEMS; ++j)
        if (first + j < count) Fm = detail::Af{aF[j], cg[j]} * Fm;
#pragma unroll
      for (int j = ITEMS - 1; j >= 0; --j)
        if (first + j < count) Tm = detail::Af{aT[j], cg[j]} * Tm;
      Cf al{0.f, 0.f}, ar{0.f, 0.f};
      if constexpr (PH == Phase::AggAffine) {
        block_scan<THREADS, detail::Af, Cf, false, true, true, true>(Fm, Tm, al, ar, al, ar, sm, p.aff_agg + lin * 16);
        return;
      } else {
        block_scan<THREADS, detail::Af, Cf, false, true, true, false>(Fm, Tm, grad_state_l, grad_state_r, al, ar, sm,
                                                                      nullptr);
      }
      Cf F = al;
#pragma unroll
      for (int j = 0; j < ITEMS; ++j) {
        F = aF[j] * F + cg[j];
        aF[j] = F;  // now F_j
      }
      Cf Tv = ar;
#pragma unroll
      for (int j = ITEMS - 1; j >= 0; --j) {
        if (first + j < count) Tv = aT[j] * Tv + cg[j];
        gout[j] = -(G2[j] * (aF[j] + Tv - cg[j])).x;
      }
    }
    if constexpr (PH == Phase::Backward) {
      __syncthreads();
#pragma unroll
      for (int j = 0; j < ITEMS; ++j) sf[pad_f(first + j)] = gout[j];
      __syncthreads();
#pragma unroll
      for (int j = 0; j < ITEMS; ++j) {
        const int i = j * THREADS + tid;
        if (i < count) p.out[base + i] = sf[pad_f(i)];
      }
    }
  }
#undef RBK_KP
}

// Tile aggregates only (the first pass for N > kBkTileSize): nothing per position has to be kept,
// so each thread folds 64 positions into its two products (left A_i on the left, right A_i on the
// right, one ascending pass) and the block scan, whose cost per thread is fixed, is spread over 4x
// more positions than in the tile kernel. The tile is staged through shared memory with coalesced
// loads: reading 64 consecutive floats per thread straight from global memory made every warp load
// touch 32 cache lines and ran slower than the tile kernel (notes/kernel_speed.md, v3).
template <int THREADS, int ITEMS, bool LAP, bool CAUSAL, class Tin>
__global__ void __launch_bounds__(THREADS) bk_tile_aggregate_kernel(const KParams p) {
  static_assert(THREADS * ITEMS == kBkTileSize, "aggregate tile must be kBkTileSize");
  __shared__ ScanSmem<THREADS> sm;
  __shared__ float sx[kBkTileSize + kBkTileSize / 32];
  const int64_t lin = blockIdx.x;
  const int64_t row = lin / p.nt, tile = lin % p.nt;
  const int64_t start = tile * kBkTileSize;
  const int count = static_cast<int>(min(static_cast<int64_t>(kBkTileSize), p.n - start));
  const int64_t base = row * p.n + start;
  const int first = threadIdx.x * ITEMS;
  const float shift = (LAP ? -2.f : 0.f) - p.z_re;
  const float dy = -p.z_im;
  const int64_t kb = row * (p.n - 1) + start;  // general mode: k_i = upper[kb + i] lower[kb + i]
  float kprev = 1.f;
  if constexpr (!LAP) kprev = (start + first > 0 && first < count) ? p.upper[kb + first - 1] * p.lower[kb + first - 1] : 0.f;
#pragma unroll
  for (int j = 0; j < ITEMS; ++j) {
    const int i = j * THREADS + static_cast<int>(threadIdx.x);
    sx[pad_f(i)] = i < count ? load_as_float<Tin>(p.diag, base + i) : 0.f;
  }
  __syncthreads();
  M2 L = detail::identity_m2(), R = detail::identity_m2();
#pragma unroll 16
  for (int j = 0; j < ITEMS; ++j) {
    const int i = first + j;
    if (i < count) {
      const Cf d{sx[pad_f(i)] + shift, dy};
      float k = 1.f;
      if constexpr (!LAP) k = start + i < p.n - 1 ? p.upper[kb + i] * p.lower[kb + i] : 0.f;
      detail::pivot_step(L, d, kprev);
      if constexpr (!CAUSAL) detail::pivot_step_right(R, d, k);
      kprev = k;
    }
    if ((j & 3) == 3) {
      detail::normalise(L);
      if constexpr (!CAUSAL) detail::normalise(R);
    }
  }
  detail::normalise(L);
  if constexpr (!CAUSAL) detail::normalise(R);
  V2 unused{{1.f, 0.f}, {0.f, 0.f}};
  block_scan<THREADS, M2, V2, true, true, !CAUSAL, true>(L, R, unused, unused, unused, unused, sm, p.mob_agg + lin * 16);
}


template <bool CAUSAL>
cudaError_t launch_aggregate(const KParams& kp, const BkScanParams& p, cudaStream_t stream) {
  constexpr int kThreads = 64, kItems = 64;
  const dim3 grid(static_cast<unsigned>(kp.total_tiles)), block(kThreads);
  if (p.upper == nullptr) {
    if (p.diag_type == InputType::BFloat16)
      bk_tile_aggregate_kernel<kThreads, kItems, true, CAUSAL, __nv_bfloat16><<<grid, block, 0, stream>>>(kp);
    else
      bk_tile_aggregate_kernel<kThreads, kItems, true, CAUSAL, float><<<grid, block, 0, stream>>>(kp);
  } else {
    bk_tile_aggregate_kernel<kThreads, kItems, false, CAUSAL, float><<<grid, block, 0, stream>>>(kp);
  }
  return cudaGetLastError();
}
cudaError_t launch_aggregate(const KParams& kp, const BkScanParams& p, cudaStream_t stream) {
  return p.causal ? launch_aggregate<true>(kp, p, stream) : launch_aggregate<false>(kp, p, stream);
}

// Forward: 256 threads x 16 positions (fewer scan levels per position); backward keeps four
// per-position complex arrays live, so 512 x 8 keeps it out of local memory. Both tile 4096.
struct FwdCfg {
  static constexpr int kThreads = 256, kItems = 16;
};
struct BwdCfg {
  static constexpr int kThreads = 512, kItems = 8;
};
static_assert(FwdCfg::kThreads * FwdCfg::kItems == kBkTileSize, "forward tile must be kBkTileSize");
static_assert(BwdCfg::kThreads * BwdCfg::kItems == kBkTileSize, "backward tile must be kBkTileSize");

template <class Cfg, Phase PH, bool CAUSAL>
cudaError_t launch_phase(const KParams& kp, const BkScanParams& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(kp.total_tiles)), block(Cfg::kThreads);
  if (p.upper == nullptr) {
    if (p.diag_type == InputType::BFloat16)
      bk_tile_kernel<Cfg::kThreads, Cfg::kItems, PH, true, CAUSAL, __nv_bfloat16><<<grid, block, 0, stream>>>(kp);
    else
      bk_tile_kernel<Cfg::kThreads, Cfg::kItems, PH, true, CAUSAL, float><<<grid, block, 0, stream>>>(kp);
  } else {
    bk_tile_kernel<Cfg::kThreads, Cfg::kItems, PH, false, CAUSAL, float><<<grid, block, 0, stream>>>(kp);
  }
  return cudaGetLastError();
}

template <class Cfg, Phase PH>
cudaError_t launch_phase(const KParams& kp, const BkScanParams& p, cudaStream_t stream) {
  return p.causal ? launch_phase<Cfg, PH, true>(kp, p, stream) : launch_phase<Cfg, PH, false>(kp, p, stream);
}

template <class Cfg>
cudaError_t launch_forward(const KParams& kp, const BkScanParams& p, cudaStream_t stream) {
  cudaError_t e = cudaSuccess;
  if (kp.nt > 1) {
    if ((e = launch_aggregate(kp, p, stream)) != cudaSuccess) return e;
    if ((e = detail::launch_state_scan(false, kp.mob_agg, kp.mob_state, p.batch, kp.nt, stream)) != cudaSuccess) return e;
  }
  return launch_phase<Cfg, Phase::Forward>(kp, p, stream);
}

bool valid(const BkScanParams& p, bool backward) {
  if (p.forward_threads != 0 && p.forward_threads != 256 && p.forward_threads != 512) return false;
  if (p.window_items != 0 && p.window_items != 4 && p.window_items != 16 && p.window_items != 32) return false;
  if (p.window_warmup < 0 || p.window_warmup > kBkWindowWarmup) return false;
  if (p.forward_algorithm == BkForwardAlgorithm::Window && p.upper != nullptr) return false;  // Laplacian mode only
  if (backward && p.backward_algorithm == BkBackwardAlgorithm::Window && p.upper != nullptr) return false;
  if (p.batch < 1 || p.n < 1 || p.diag == nullptr || p.out == nullptr || !(p.z_im > 0.0)) return false;
  if ((p.upper == nullptr) != (p.lower == nullptr)) return false;
  if (p.upper != nullptr && p.diag_type != InputType::Float32) return false;
  if (backward && p.grad_features == nullptr) return false;
  const int64_t nt = (p.n + kBkTileSize - 1) / kBkTileSize;
  if (p.batch * nt > 0x7fffffffLL) return false;
  if (nt > 1 && p.workspace == nullptr) return false;
  return true;
}

KParams make_kparams(const BkScanParams& p) {
  KParams kp{};
  kp.diag = p.diag;
  kp.upper = p.upper;
  kp.lower = p.lower;
  kp.grad_features = p.grad_features;
  kp.out = p.out;
  kp.n = p.n;
  kp.nt = (p.n + kBkTileSize - 1) / kBkTileSize;
  kp.total_tiles = p.batch * kp.nt;
  kp.z_re = static_cast<float>(p.z_re);
  kp.z_im = static_cast<float>(p.z_im);
  if (kp.nt > 1) {
    float* ws = static_cast<float*>(p.workspace);
    kp.mob_agg = ws;
    kp.mob_state = ws + kp.total_tiles * 16;
    kp.aff_agg = ws + kp.total_tiles * 20;
    kp.aff_state = ws + kp.total_tiles * 36;
  }
  return kp;
}

__global__ void empty_kernel() {}

}  // namespace

cudaError_t launch_empty_kernel(cudaStream_t stream) {
  empty_kernel<<<1, 32, 0, stream>>>();
  return cudaGetLastError();
}

size_t bk_stable_workspace_bytes(int64_t batch, int64_t n) {
  const int64_t nt = (n + kBkTileSize - 1) / kBkTileSize;
  if (nt <= 1) return 0;
  return static_cast<size_t>(batch * nt) * 40 * sizeof(float);
}

BkForwardAlgorithm bk_resolve_forward_algorithm(const BkScanParams& p) {
  if (p.forward_algorithm != BkForwardAlgorithm::Auto) return p.forward_algorithm;
  return p.upper == nullptr && p.z_im >= kBkWindowMinImZ ? BkForwardAlgorithm::Window : BkForwardAlgorithm::Scan;
}

cudaError_t launch_bk_stable_forward(const BkScanParams& p, cudaStream_t stream) {
  if (!valid(p, false)) return cudaErrorInvalidValue;
  if (bk_resolve_forward_algorithm(p) == BkForwardAlgorithm::Window) return detail::launch_window_forward(p, stream);
  const KParams kp = make_kparams(p);
  if (p.forward_threads == 512) return launch_forward<BwdCfg>(kp, p, stream);
  return launch_forward<FwdCfg>(kp, p, stream);
}

BkBackwardAlgorithm bk_resolve_backward_algorithm(const BkScanParams& p) {
  if (p.backward_algorithm != BkBackwardAlgorithm::Auto) return p.backward_algorithm;
  return p.upper == nullptr && p.z_im >= kBkWindowMinImZ ? BkBackwardAlgorithm::Window : BkBackwardAlgorithm::Scan;
}

cudaError_t launch_bk_stable_backward(const BkScanParams& p, cudaStream_t stream) {
  if (!valid(p, true)) return cudaErrorInvalidValue;
  if (bk_resolve_backward_algorithm(p) == BkBackwardAlgorithm::Window) return launch_bk_window_backward(p, stream);
  const KParams kp = make_kparams(p);
  cudaError_t e = cudaSuccess;
  if (kp.nt > 1) {
    if ((e = launch_aggregate(kp, p, stream)) != cudaSuccess) return e;
    if ((e = detail::launch_state_scan(false, kp.mob_agg, kp.mob_state, p.batch, kp.nt, stream)) != cudaSuccess) return e;
    if ((e = launch_phase<BwdCfg, Phase::AggAffine>(kp, p, stream)) != cudaSuccess) return e;
    if ((e = detail::launch_state_scan(true, kp.aff_agg, kp.aff_state, p.batch, kp.nt, stream)) != cudaSuccess) return e;
  }
  return launch_phase<BwdCfg, Phase::Backward>(kp, p, stream);
}

}  // namespace rbk::cuda
