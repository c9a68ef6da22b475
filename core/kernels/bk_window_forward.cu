// The window forward of BK-Core (BkForwardAlgorithm::Window; the maths is in bk_scan_launch.h and
// rbk/kernels/bk_window.h): one pass, certified windowed continued fractions, Laplacian mode. Split
// out of bk_stable_scan.cu (issue 18) unchanged: every kernel's PTX is identical to before the move
// (scripts/ptx_identity.py). Claims C01, C17.
#include "rbk/kernels/bk_scan_launch.h"

#include "bk_complex.cuh"
#include "bk_stable_kparams.cuh"
#include "rbk/kernels/bk_window.h"

#include <cuda_bf16.h>

#include <algorithm>

namespace rbk::cuda {
namespace {

using bk_window::Disc;
using detail::Cf;
using detail::load_as_float;

using detail::pad16;

// Re d of one row for bk_window::walk_into: shared memory holds row positions [lo, lo + len)
// (already shifted); anything else (only the rare long walks reach it) is read from global memory.
template <class Tin>
struct WindowRow {
  const float* sx;
  int64_t lo, len;
  const void* diag;
  int64_t row_base;
  float shift;
  __device__ float operator()(int64_t pos) const {
    const int64_t o = pos - lo;
    return (o >= 0 && o < len) ? sx[pad16(static_cast<int>(o))] : load_as_float<Tin>(diag, row_base + pos) + shift;
  }
};

// Raw input words held in registers between a tile's prefetch and its staging (bf16 as its bits,
// so that nothing consumes the loaded value, and stalls on it, before the staging).
template <class Tin>
struct RawWord {
  using type = float;
  static __device__ __forceinline__ float to_float(float w) { return w; }
};
template <>
struct RawWord<__nv_bfloat16> {
  using type = unsigned short;
  static __device__ __forceinline__ float to_float(unsigned short w) { return __uint_as_float(static_cast<unsigned>(w) << 16); }
};

// Tiles of THREADS x ITEMS positions of one row; block b takes tiles b, b + gridDim.x, ... (the
// launcher sizes the grid to the resident blocks for large inputs, one tile per block otherwise).
// A tile and kBkWindowWarmup positions either side are staged in shared memory (coalesced), and
// the next tile's words are loaded into registers before this tile's arithmetic starts, so that
// its loads are in flight while the tile computes (run 6 measured memory and arithmetic adding up,
// not overlapping). Per thread: both first walks interleaved (from shared memory), the left replay
// keeping u_{j-1} in registers (in the G slot of shared memory for runs of 32), the right replay
// writing G through shared memory, coalesced stores. Index arithmetic is kept out of the per-
// position loops (run 8: Nsight Compute counted ~136 issued instructions per position against
// ~55 of arithmetic, with the issue slots 78 % busy).
template <int THREADS, int ITEMS, bool CAUSAL, class Tin>
__global__ void __launch_bounds__(THREADS, 8) bk_window_forward_kernel(const KParams p, const int warmup) {
  constexpr int T = THREADS * ITEMS;
  constexpr int H = kBkWindowWarmup;
  constexpr int S = T + 2 * H;
  constexpr int PRE = (S + THREADS - 1) / THREADS;
  static_assert(H == 16 && T % 16 == 0 && (ITEMS == 4 || ITEMS % 16 == 0), "layout assumes 16-float groups");
  constexpr bool ALIGNED_WALKS = ITEMS % 16 == 0;  // the 16-position walks start on a group
  using Raw = RawWord<Tin>;
  using Word = typename Raw::type;
  // sg holds G for the coalesced stores and, with KU_SHARED (runs of 32), u_{j-1} between the two
  // replays instead of a register array; the same one-pad-per-16 layout as sx.
  constexpr bool KU_SHARED = ITEMS > 16;
  __shared__ float sx[S + S / 16 + 1];
  __shared__ float2 sg[T + T / 16 + 1];
  const int64_t n = p.n;
  const float shift = -2.f - p.z_re, eta = p.z_im, dy = -p.z_im;
  const float tol = static_cast<float>(kBkWindowTol) * eta;
  const int tid = threadIdx.x;

  // Staged element i of a tile is row position start - H + i; it exists for i in [lo, hi).
  // Tile indices in 32 bits (the launcher checks they fit): a 64-bit division and remainder per
  // tile and thread is ~140 instructions (estimated from the PTX), ~9 per position at ITEMS 16.
  const unsigned nt = static_cast<unsigned>(p.nt), total = static_cast<unsigned>(p.total_tiles);
  Word pre[PRE];
  auto prefetch = [&](unsigned lin) {
    const int64_t row = lin / nt, start = static_cast<int64_t>(lin % nt) * T;
    const Word* src = static_cast<const Word*>(p.diag) + (row * n + start - H);
    const int lo = static_cast<int>(max(static_cast<int64_t>(0), H - start));
    const int hi = static_cast<int>(min(static_cast<int64_t>(S), n - start + H));
#pragma unroll
    for (int k = 0; k < PRE; ++k) {
      const int i = tid + k * THREADS;
      pre[k] = (i >= lo && i < hi) ? src[i] : Word(0);
    }
  };
  unsigned lin = blockIdx.x;
  if (lin < total) prefetch(lin);
  for (; lin < total; lin += gridDim.x) {
    const int64_t row = lin / nt, start = static_cast<int64_t>(lin % nt) * T, row_base = row * n;
    const int lo = static_cast<int>(max(static_cast<int64_t>(0), H - start));
    const int hi = static_cast<int>(min(static_cast<int64_t>(S), n - start + H));
    __syncthreads();  // the previous tile's reads of sx and sg are done
#pragma unroll
    for (int k = 0; k < PRE; ++k) {
      const int i = tid + k * THREADS;
      if (i < S) sx[pad16(i)] = (i >= lo && i < hi) ? Raw::to_float(pre[k]) + shift : 0.f;
    }
    __syncthreads();
    if (lin + gridDim.x < total) prefetch(lin + gridDim.x);

    const int64_t s0 = start + static_cast<int64_t>(tid) * ITEMS;  // this thread's run [s0, s0 + cnt)
    const int cnt = static_cast<int>(max(min(static_cast<int64_t>(ITEMS), n - s0), static_cast<int64_t>(0)));
    const int so = H + tid * ITEMS;     // staged index of s0
    const float* xrun = sx + pad16(so);  // Re d of the run: RBK_X(j) below
    float2* grun = sg + pad16(tid * ITEMS);
    if (cnt > 0) {
      // First walks: w0 <= H positions each side, so they stay in shared memory.
      const int ll = static_cast<int>(min(static_cast<int64_t>(warmup), s0));
      const int lr = static_cast<int>(min(static_cast<int64_t>(warmup), n - s0 - cnt));
      const bool exact_l = ll == s0, exact_r = s0 + cnt + lr == n;
      Disc dl = exact_l ? bk_window::disc_boundary() : bk_window::disc_c0(eta);
      Disc dr = exact_r ? bk_window::disc_boundary() : bk_window::disc_c0(eta);
      if constexpr (ALIGNED_WALKS) {
        // Step i reads position s0 - H + i (left) and s0 + ITEMS + H - 1 - i (right); a walk
        // shorter than H (row start or end, or a test's warm-up) skips its first steps.
        const float* wl = sx + pad16(so - H);
        const float* wr = sx + pad16(so + ITEMS);
        if (ll == H && (CAUSAL || lr == H)) {
#pragma unroll
          for (int i = 0; i < H; ++i) {
            disc_step(dl, wl[i + (i >> 4)], dy);
            if constexpr (!CAUSAL) disc_step(dr, wr[(H - 1 - i) + ((H - 1 - i) >> 4)], dy);
          }
        } else {
#pragma unroll
          for (int i = 0; i < H; ++i) {
            if (i >= H - ll) disc_step(dl, wl[i + (i >> 4)], dy);
            if (!CAUSAL && i >= H - lr) disc_step(dr, wr[(H - 1 - i) + ((H - 1 - i) >> 4)], dy);
          }
        }
      } else {
#pragma unroll
        for (int i = 0; i < H; ++i) {
          if (i < ll) disc_step(dl, sx[pad16(so - ll + i)], dy);
          if (!CAUSAL && i < lr) disc_step(dr, sx[pad16(so + cnt + lr - 1 - i)], dy);
        }
      }
      if (!(exact_l || dl.r <= tol) || (!CAUSAL && !(exact_r || dr.r <= tol))) {
        const WindowRow<Tin> rw{sx, start - H, S, p.diag, row_base, shift};
        if (!(exact_l || dl.r <= tol)) dl = bk_window::walk_into<false>(rw, s0, n, 2 * static_cast<int64_t>(warmup), eta, tol);
        if (!CAUSAL && !(exact_r || dr.r <= tol))
          dr = bk_window::walk_into<true>(rw, s0 + cnt, n, 2 * static_cast<int64_t>(warmup), eta, tol);
      }
      const Cf ml{dl.mx, dl.my}, mr{dr.mx, dr.my};  // u_{s0-1}, w_{s0+cnt}
#define RBK_X(j) xrun[(j) + ((j) >> 4)]
#define RBK_G(j) grun[(j) + ((j) >> 4)]
      Cf u = ml;  // u_{s0-1}
      if constexpr (CAUSAL) {
#pragma unroll
        for (int j = 0; j < ITEMS; ++j) {
          u = detail::recip(Cf{RBK_X(j), dy} - u);
          RBK_G(j) = make_float2(u.x, u.y);
        }
      } else {
        Cf ku[KU_SHARED ? 1 : ITEMS];  // u_{j-1} (in sg when KU_SHARED)
#pragma unroll
        for (int j = 0; j < ITEMS; ++j) {
          if constexpr (KU_SHARED) {
            RBK_G(j) = make_float2(u.x, u.y);
          } else {
            ku[j] = u;
          }
          u = detail::recip(Cf{RBK_X(j), dy} - u);
        }
        Cf w = mr;  // w_{s0+cnt}
#pragma unroll
        for (int j = ITEMS - 1; j >= 0; --j) {
          if (j < cnt) {
            const Cf dw = Cf{RBK_X(j), dy} - w;
            Cf kuj;
            if constexpr (KU_SHARED) {
              const float2 t = RBK_G(j);
              kuj = Cf{t.x, t.y};
            } else {
              kuj = ku[j];
            }
            const Cf G = detail::recip(dw - kuj);
            RBK_G(j) = make_float2(G.x, G.y);
            w = detail::recip(dw);
          }
        }
      }
#undef RBK_X
#undef RBK_G
    }
    __syncthreads();
    float2* out2 = reinterpret_cast<float2*>(p.out) + (row_base + start);
    const int count = static_cast<int>(min(static_cast<int64_t>(T), n - start));
#pragma unroll
    for (int k = 0; k < ITEMS; ++k) {
      const int i = tid + k * THREADS;
      if (i < count) out2[i] = sg[pad16(i)];
    }
  }
}

// Blocks of `kernel` resident on the current device at once, cached per device in `cached` (one
// array per kernel: the occupancy query costs microseconds, a launch at small N only a few).
constexpr int kMaxDevices = 64;
template <class K>
int resident_blocks(K kernel, int threads, int (&cached)[kMaxDevices]) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) return 0;
  if (cached[dev] == 0) {
    int per_sm = 0, sms = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
      return 0;
    cached[dev] = per_sm * sms;
  }
  return cached[dev];
}

template <int ITEMS, bool CAUSAL, class Tin>
cudaError_t launch_window_kernel(const BkScanParams& p, cudaStream_t stream) {
  constexpr int kThreads = ITEMS > 16 ? 64 : 128;  // tiles of 2048 (and 26 KB) for runs of 16 and 32
  KParams kp{};
  kp.diag = p.diag;
  kp.out = p.out;
  kp.n = p.n;
  kp.nt = (p.n + kThreads * ITEMS - 1) / (kThreads * ITEMS);
  kp.total_tiles = p.batch * kp.nt;
  kp.z_re = static_cast<float>(p.z_re);
  kp.z_im = static_cast<float>(p.z_im);
  if (kp.total_tiles > 0x7fffffffLL) return cudaErrorInvalidValue;  // the kernel indexes tiles in 32 bits
  const int warmup = p.window_warmup > 0 ? p.window_warmup : kBkWindowWarmup;
  const auto kernel = bk_window_forward_kernel<kThreads, ITEMS, CAUSAL, Tin>;
  // One tile per block while the tiles fit in one wave; beyond, a resident grid that walks them.
  static int cached[kMaxDevices] = {};
  const int resident = resident_blocks(kernel, kThreads, cached);
  if (resident <= 0) return cudaErrorUnknown;
  const int64_t blocks = std::min<int64_t>(kp.total_tiles, resident);
  kernel<<<dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream>>>(kp, warmup);
  return cudaGetLastError();
}

template <int ITEMS, bool CAUSAL>
cudaError_t launch_window_typed(const BkScanParams& p, cudaStream_t stream) {
  return p.diag_type == InputType::BFloat16 ? launch_window_kernel<ITEMS, CAUSAL, __nv_bfloat16>(p, stream)
                                            : launch_window_kernel<ITEMS, CAUSAL, float>(p, stream);
}

}  // namespace

namespace detail {

cudaError_t launch_window_forward(const BkScanParams& p, cudaStream_t stream) {
  const int items = p.window_items != 0 ? p.window_items : (p.batch * p.n < (int64_t(1) << 20) ? 4 : 16);
  if (items == 4) return p.causal ? launch_window_typed<4, true>(p, stream) : launch_window_typed<4, false>(p, stream);
  if (items == 32) return p.causal ? launch_window_typed<32, true>(p, stream) : launch_window_typed<32, false>(p, stream);
  return p.causal ? launch_window_typed<16, true>(p, stream) : launch_window_typed<16, false>(p, stream);
}

}  // namespace detail

}  // namespace rbk::cuda
