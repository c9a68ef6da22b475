// The Window backward of BK-Core (BkBackwardAlgorithm::Window, issue 25; the maths and its
// error bound: rbk/kernels/bk_window_backward.h, the code the host test checks against fp64).
// A block's tile of kTile positions of one row and kStagedHalo positions either side (v shifted,
// conj(g)) are loaded into shared memory with coalesced loads, in the window forward's padded
// layout (detail::pad16: a warp's runs read 17 words apart, no bank conflict); each thread then
// runs bk_window::backward_run on one run of kItems = 16 positions from shared memory, and the rare
// walks that reach past the halo read global memory. The gradients go out through shared memory with
// coalesced stores.
// Why staged: read straight from global memory, one run per thread, the same maths is
// L1/TEX-bound (a warp's loads 64 B apart); staged, fwd + bwd at N = 2^20 takes half the time
// (NOTES.md, "The staged backward").
#include "rbk/kernels/bk_scan_launch.h"

#include "bk_complex.cuh"
#include "rbk/kernels/bk_window_backward.h"

#include <cuda_bf16.h>

namespace rbk::cuda {
namespace {

constexpr int kThreads = 128;
// Positions per thread. Issue 25's occupancy trial timed 16 and 8 with and without a register cap
// beside each other; none beat this one by the 5 % its rule asked (NOTES.md, "The Window backward's
// block shapes, against the rule"), so the others were removed.
constexpr int kItems = 16;
constexpr int kTile = kThreads * kItems;
// The entries' usual reach either side of a run: a first window of kBkWindowWarmup = 16 positions
// walked into from 16 further back; one restart doubles both (64).
constexpr int kStagedHalo = 64;
// The staged span: staged element i is row position tile start - halo + i.
constexpr int kStaged = kTile + 2 * kStagedHalo;
static_assert(kStagedHalo % 16 == 0 && kTile % 16 == 0, "runs and walks must lie in whole 16-element groups");

using detail::pad16;

// Re d_pos = v_pos - 2 - Re z of one row, from global memory.
template <class Tin>
struct ShiftedRow {
  const void* diag;
  int64_t base;
  float shift;
  __device__ float operator()(int64_t pos) const { return detail::load_as_float<Tin>(diag, base + pos) + shift; }
};

// conj(g_pos), g = grad_features[..., 0] + i grad_features[..., 1], from global memory.
struct ConjGrad {
  const float2* g;
  int64_t base;
  __device__ bk_window::Cf operator()(int64_t pos) const {
    const float2 v = g[base + pos];
    return {v.x, -v.y};
  }
};

// Row positions [lo, lo + STAGED) from shared memory, any other from global memory. The maths
// reads positions inside the row only.
template <int STAGED, class Global, class T>
struct Staged {
  const T* staged;
  int64_t lo;
  Global global;
  __device__ auto operator()(int64_t pos) const {
    const int64_t o = pos - lo;
    return (o >= 0 && o < STAGED) ? value(staged[pad16(static_cast<int>(o))]) : global(pos);
  }
  static __device__ float value(float v) { return v; }
  static __device__ bk_window::Cf value(float2 v) { return {v.x, v.y}; }
};

struct StoreStaged {
  float* staged;
  int64_t start;
  __device__ void operator()(int64_t pos, float value) const { staged[pad16(static_cast<int>(pos - start))] = value; }
};

// One block per tile of one row (tiles_per_row tiles a row; the last one may be partial).
template <bool CAUSAL, class Tin>
__global__ void __launch_bounds__(kThreads) bk_window_backward_kernel(const void* diag, const float2* grad_features,
                                                                      float* out, int64_t n, int64_t tiles_per_row,
                                                                      float shift, float eta, int warmup) {
  __shared__ float sx[kStaged + kStaged / 16 + 1];
  __shared__ float2 sg[kStaged + kStaged / 16 + 1];
  __shared__ float so[kTile + kTile / 16 + 1];
  const int64_t row = blockIdx.x / tiles_per_row;
  const int64_t start = (blockIdx.x % tiles_per_row) * kTile, base = row * n, lo = start - kStagedHalo;
  const int tid = threadIdx.x;
  for (int i = tid; i < kStaged; i += kThreads) {  // positions outside the row hold 0 and are never read
    const int64_t pos = lo + i;
    const bool in_row = pos >= 0 && pos < n;
    sx[pad16(i)] = in_row ? detail::load_as_float<Tin>(diag, base + pos) + shift : 0.f;
    const float2 g = in_row ? grad_features[base + pos] : make_float2(0.f, 0.f);
    sg[pad16(i)] = make_float2(g.x, -g.y);
  }
  __syncthreads();
  const int64_t s0 = start + static_cast<int64_t>(tid) * kItems;
  if (s0 < n)
    bk_window::backward_run<kItems>(Staged<kStaged, ShiftedRow<Tin>, float>{sx, lo, ShiftedRow<Tin>{diag, base, shift}},
                                       Staged<kStaged, ConjGrad, float2>{sg, lo, ConjGrad{grad_features, base}},
                                       StoreStaged{so, start}, s0, n, CAUSAL, warmup, eta,
                                       static_cast<float>(kBkWindowTol) * eta, static_cast<float>(kBkWindowAffineTol));
  __syncthreads();
  const int count = static_cast<int>(n - start < kTile ? n - start : kTile);
  for (int i = tid; i < count; i += kThreads) out[base + start + i] = so[pad16(i)];
}

template <bool CAUSAL, class Tin>
cudaError_t launch_typed(const BkScanParams& p, cudaStream_t stream) {
  const int64_t tiles_per_row = (p.n + kTile - 1) / kTile;
  const int64_t blocks = p.batch * tiles_per_row;
  if (blocks > 0x7fffffffLL) return cudaErrorInvalidValue;
  const int warmup = p.window_warmup > 0 ? p.window_warmup : kBkWindowWarmup;
  bk_window_backward_kernel<CAUSAL, Tin><<<dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream>>>(
      p.diag, reinterpret_cast<const float2*>(p.grad_features), p.out, p.n, tiles_per_row,
      -2.f - static_cast<float>(p.z_re), static_cast<float>(p.z_im), warmup);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_bk_window_backward(const BkScanParams& p, cudaStream_t stream) {
  if (p.upper != nullptr || p.lower != nullptr || p.grad_features == nullptr || p.out == nullptr || p.diag == nullptr ||
      p.batch < 1 || p.n < 1 || !(p.z_im > 0.0) || p.window_warmup < 0 || p.window_warmup > kBkWindowWarmup)
    return cudaErrorInvalidValue;
  const bool bf16 = p.diag_type == InputType::BFloat16;
  if (p.causal)
    return bf16 ? launch_typed<true, __nv_bfloat16>(p, stream) : launch_typed<true, float>(p, stream);
  return bf16 ? launch_typed<false, __nv_bfloat16>(p, stream) : launch_typed<false, float>(p, stream);
}

}  // namespace rbk::cuda
