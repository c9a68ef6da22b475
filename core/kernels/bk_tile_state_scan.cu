// The per-row chaining of BK-Core tiles for rows longer than kBkTileSize (the scan algorithms of
// bk_stable_scan.cu): one warp per (row, direction) scans the tiles' Moebius or affine aggregates
// and writes the state entering each tile. Split out of bk_stable_scan.cu (issue 18) unchanged:
// its PTX is identical to before the move (scripts/ptx_identity.py). Claims C01, C17.
#include "rbk/kernels/bk_scan_launch.h"

#include "bk_complex.cuh"
#include "bk_stable_kparams.cuh"

#include <type_traits>

namespace rbk::cuda {
namespace {

using detail::Cf;
using detail::M2;
using detail::V2;

// Chains the tiles of each row: one warp per (row, direction) takes 32 tile aggregates at a time
// (independent loads), scans them with shuffles, hands each tile the state entering it and carries
// the chunk's product to the next 32. Rows have N / 4096 tiles, so this is a few microseconds.
template <bool AFFINE>
__global__ void bk_tile_state_scan(const float* __restrict__ agg, float* __restrict__ state, int64_t batch, int64_t nt) {
  const int64_t warp_id = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  const int64_t row = warp_id >> 1;
  const int dir = static_cast<int>(warp_id & 1);
  if (row >= batch) return;  // whole warps leave together
  // Moebius states are the projective vector (1, s); affine states the value s itself.
  using E = typename std::conditional<AFFINE, detail::Af, M2>::type;
  using S = typename std::conditional<AFFINE, Cf, V2>::type;
  S s;
  if constexpr (AFFINE) {
    s = Cf{0.f, 0.f};
  } else {
    s = V2{{1.f, 0.f}, {0.f, 0.f}};
  }
  for (int64_t c0 = 0; c0 < nt; c0 += 32) {
    const int64_t step = c0 + lane;
    const bool ok = step < nt;
    const int64_t t = dir == 0 ? step : nt - 1 - step;
    const int64_t lin = row * nt + (ok ? t : 0);
    E m = ok ? *reinterpret_cast<const E*>(agg + lin * 16 + 8 * dir) : detail::identity_of<E>();
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const E x = detail::shfl_up(m, off);
      if (lane >= off) m = m * x;
      if constexpr (!AFFINE) detail::normalise(m);
    }
    E e = detail::shfl_up(m, 1);
    if (lane == 0) e = detail::identity_of<E>();
    const S in = e * s;
    if (ok) {
      Cf v;
      if constexpr (AFFINE) {
        v = in;
      } else {
        v = detail::cdiv(in.q, in.p);
      }
      state[lin * 4 + 2 * dir] = v.x;
      state[lin * 4 + 2 * dir + 1] = v.y;
    }
    s = detail::shfl_idx(m, 31) * s;
    if constexpr (!AFFINE) s = V2{{1.f, 0.f}, detail::cdiv(s.q, s.p)};
  }
}

}  // namespace

namespace detail {

cudaError_t launch_state_scan(bool affine, const float* agg, float* state, int64_t batch, int64_t nt,
                              cudaStream_t stream) {
  constexpr int kThreads = 128;
  const int64_t work = 2 * batch * 32;  // one warp per (row, direction)
  const dim3 grid(static_cast<unsigned>((work + kThreads - 1) / kThreads)), block(kThreads);
  if (affine)
    bk_tile_state_scan<true><<<grid, block, 0, stream>>>(agg, state, batch, nt);
  else
    bk_tile_state_scan<false><<<grid, block, 0, stream>>>(agg, state, batch, nt);
  return cudaGetLastError();
}

}  // namespace detail
}  // namespace rbk::cuda
