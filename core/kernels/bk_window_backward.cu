// The Window backward of BK-Core (BkBackwardAlgorithm::Window, issue 25): one thread per run of 16
// positions of one row runs bk_window::backward_run (rbk/kernels/bk_window_backward.h, the code the
// host test checks against fp64), reading v and the incoming gradient straight from global memory
// (neighbouring threads' windows overlap, so most reads hit the caches). A first version, for
// correctness on the GPU and a first timing against the scan backward; the window forward's shared-
// memory staging is the next step if the timing asks for it.
#include "rbk/kernels/bk_scan_launch.h"

#include "bk_complex.cuh"
#include "rbk/kernels/bk_window_backward.h"

#include <cuda_bf16.h>

namespace rbk::cuda {
namespace {

constexpr int kRunItems = 16;
constexpr int kThreads = 128;

// Re d_pos = v_pos - 2 - Re z of one row (Laplacian mode).
template <class Tin>
struct ShiftedRow {
  const void* diag;
  int64_t base;
  float shift;
  __device__ float operator()(int64_t pos) const { return detail::load_as_float<Tin>(diag, base + pos) + shift; }
};

// conj(g_pos), g = grad_features[..., 0] + i grad_features[..., 1].
struct ConjGrad {
  const float2* g;
  int64_t base;
  __device__ bk_window::Cf operator()(int64_t pos) const {
    const float2 v = g[base + pos];
    return {v.x, -v.y};
  }
};

struct StoreGrad {
  float* out;
  int64_t base;
  __device__ void operator()(int64_t pos, float value) const { out[base + pos] = value; }
};

template <bool CAUSAL, class Tin>
__global__ void __launch_bounds__(kThreads) bk_window_backward_kernel(const void* diag, const float2* grad_features,
                                                                      float* out, int64_t batch, int64_t n, float shift,
                                                                      float eta, int warmup) {
  const int64_t runs_per_row = (n + kRunItems - 1) / kRunItems;
  const int64_t run = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (run >= batch * runs_per_row) return;
  const int64_t base = (run / runs_per_row) * n;
  const int64_t s0 = (run % runs_per_row) * kRunItems;
  const float tol = static_cast<float>(kBkWindowTol) * eta;
  bk_window::backward_run<kRunItems>(ShiftedRow<Tin>{diag, base, shift}, ConjGrad{grad_features, base},
                                     StoreGrad{out, base}, s0, n, CAUSAL, warmup, eta, tol,
                                     static_cast<float>(kBkWindowAffineTol));
}

template <bool CAUSAL, class Tin>
cudaError_t launch_typed(const BkScanParams& p, cudaStream_t stream) {
  const int64_t runs = p.batch * ((p.n + kRunItems - 1) / kRunItems);
  const int64_t blocks = (runs + kThreads - 1) / kThreads;
  if (blocks > 0x7fffffffLL) return cudaErrorInvalidValue;
  const int warmup = p.window_warmup > 0 ? p.window_warmup : kBkWindowWarmup;
  bk_window_backward_kernel<CAUSAL, Tin><<<dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream>>>(
      p.diag, reinterpret_cast<const float2*>(p.grad_features), p.out, p.batch, p.n,
      -2.f - static_cast<float>(p.z_re), static_cast<float>(p.z_im), warmup);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_bk_window_backward(const BkScanParams& p, cudaStream_t stream) {
  if (p.upper != nullptr || p.grad_features == nullptr || p.out == nullptr || p.diag == nullptr || p.batch < 1 ||
      p.n < 1 || !(p.z_im > 0.0))
    return cudaErrorInvalidValue;
  const bool bf16 = p.diag_type == InputType::BFloat16;
  if (p.causal) return bf16 ? launch_typed<true, __nv_bfloat16>(p, stream) : launch_typed<true, float>(p, stream);
  return bf16 ? launch_typed<false, __nv_bfloat16>(p, stream) : launch_typed<false, float>(p, stream);
}

}  // namespace rbk::cuda
