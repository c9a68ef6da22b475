// Raw-pointer launchers of the CUDA BK-Core kernels (core/kernels/*.cu). No LibTorch here, so the
// kernels compile with nvcc on machines whose Torch has no CUDA; the torch glue
// (rbk/cuda_glue/bk_core_cuda.h) and the benchmark call these. Claims C01 (BK-Core numerics) and
// C17 (fused-kernel speed); upstream-audit §1.10-1.11, §10.1.
//
// Stable kernels: the continued-fraction form of G_ii = [(H - zI)^{-1}]_ii (bk_core.h), made
// parallel over N: every element's left pivot map u -> 1/(d_i - k_{i-1} u) is a Moebius map, i.e.
// a 2x2 complex matrix up to scale; a tile of 4096 positions per thread block composes them with a
// block-wide scan of power-of-two-normalised matrices, and tiles of one row are chained by a
// per-row scan of the tile aggregates (only for N > 4096). fp32 arithmetic, no state ever grows,
// so nothing overflows at any N. The exact gradient runs the same scan, then two affine scans.
// The forward's default in Laplacian mode is the one-pass window algorithm (BkForwardAlgorithm
// below; its walk in rbk/kernels/bk_window.h, checked on the host by tests/bk_core/test_bk_window).
// Input range: thread aggregates are rescaled every 4 positions, so |a_i - z| + |b_i c_i| must stay
// below ~1e9 (|v| < 1e9 for the model's H); any N is fine.
#pragma once
#include "rbk/kernels/bk_window.h"

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace rbk::cuda {

enum class InputType { Float32, BFloat16 };

// Positions per thread block; rows longer than this are split into tiles chained by a scan.
constexpr int64_t kBkTileSize = 4096;

// Forward algorithms (BkScanParams::forward_algorithm); both compute the same G to fp32 rounding.
//   Scan: the exact parallel scan above (every mode, every z); three passes where N > kBkTileSize.
//   Window: certified windowed continued fractions, one pass (Laplacian mode only). Every left
//     state u_j = 1/(d_j - u_{j-1}) lies in the disc C0 = D(i/(2 eta), 1/(2 eta)), eta = Im z,
//     whatever came before it (C0 is the image of the half-plane Im <= -eta under inversion), and a
//     pivot map sends a disc D(m, r) to the disc D(conj(c)/(|c|^2 - r^2), r/(|c|^2 - r^2)),
//     c = d - m. A thread therefore starts the disc C0 W positions before its run and walks it up
//     to the run: the centre is the state entering the run and the radius bounds its error. If the
//     radius is above kBkWindowTol * eta the walk restarts twice as far back, down to the row start
//     (where u_{-1} = 0 makes it exact); the right states w likewise. Since |G_jj| <= 1/eta, an
//     error delta in u or w moves G_jj by at most |G_jj|^2 2 delta, i.e. relative 2 kBkWindowTol =
//     2^-25, under fp32 rounding. Two consecutive steps shrink a radius by at least eta^4 + 2 eta^2
//     (3 at eta = 1: 32 steps reach the tolerance for any v); v ~ N(0, 1) at z = i needs 9-15
//     (notes/kernel_speed.md, v5).
//   Auto (default): Window in Laplacian mode with Im z >= kBkWindowMinImZ, else Scan.
//   The constants (kBkWindowMinImZ, kBkWindowTol, kBkWindowWarmup) and the walk itself are in
//   rbk/kernels/bk_window.h, shared with the host test of the maths.
enum class BkForwardAlgorithm { Auto, Scan, Window };

// Backward algorithms (BkScanParams::backward_algorithm); both compute the exact gradient to fp32
// rounding.
//   Scan: the affine scans above (every mode, every z); five passes where N > kBkTileSize.
//   Window: windowed affine states, one pass, one thread per run of 16 positions (Laplacian mode
//     only; the maths and its error bound in rbk/kernels/bk_window_backward.h, checked on the host
//     by tests/bk_core/test_bk_window). window_warmup sets its first window length as well.
//   Auto (default): as the forward's Auto, Window in Laplacian mode with Im z >= kBkWindowMinImZ
//     (where its windows contract fast), else Scan. exp_kernel_speed times both side by side.
enum class BkBackwardAlgorithm { Auto, Scan, Window };

struct BkScanParams {
  // Diagonal input, (B, N) contiguous. Laplacian mode (upper == lower == nullptr): the potential v
  // with H = H0 + diag(v), H0 = 1-D Laplacian (a = -2 + v, b = c = 1). General mode: a itself.
  const void* diag = nullptr;
  InputType diag_type = InputType::Float32;  // BFloat16 only in Laplacian mode
  const float* upper = nullptr;              // (B, N-1) b_i = H[i, i+1], general mode only
  const float* lower = nullptr;              // (B, N-1) c_i = H[i+1, i], general mode only
  const float* grad_features = nullptr;      // (B, N, 2) dL/d(Re G, Im G), backward only
  float* out = nullptr;                      // forward: (B, N, 2) (Re G, Im G); backward: (B, N) dL/da
  int64_t batch = 0;
  int64_t n = 0;
  double z_re = 0.0;
  double z_im = 1.0;  // must be > 0
  bool causal = false;
  void* workspace = nullptr;  // bk_stable_workspace_bytes(); may be null when that is 0
  // Forward block shape (threads x positions per thread, tile 4096 either way): 0 = automatic,
  // 256 (x16: fewer scan levels per position) or 512 (x8: shorter per-thread chains, more warps).
  // The backward always runs 512 x 8. Every shape computes the same function.
  int forward_threads = 0;
  BkForwardAlgorithm forward_algorithm = BkForwardAlgorithm::Auto;
  // Window algorithm only: positions per thread, 0 = automatic (4 below B N = 2^20, else 16), 4, 16
  // or 32 (u_{j-1} kept in shared memory instead of registers); and the first walk length, 0 = kBkWindowWarmup, else 1 .. kBkWindowWarmup (tests set 1 to
  // drive every thread through the restarts). Neither changes the result beyond rounding.
  int window_items = 0;
  int window_warmup = 0;
  BkBackwardAlgorithm backward_algorithm = BkBackwardAlgorithm::Auto;
};

// The algorithm launch_bk_stable_forward runs for p (Auto resolved).
BkForwardAlgorithm bk_resolve_forward_algorithm(const BkScanParams& p);

// The algorithm launch_bk_stable_backward runs for p (Auto resolved).
BkBackwardAlgorithm bk_resolve_backward_algorithm(const BkScanParams& p);

// The Window backward's launcher (bk_window_backward.cu), which launch_bk_stable_backward calls;
// p is validated there.
cudaError_t launch_bk_window_backward(const BkScanParams& p, cudaStream_t stream);

// Scratch the launchers need (tile aggregates and carried states); 0 when N <= kBkTileSize.
size_t bk_stable_workspace_bytes(int64_t batch, int64_t n);

// Forward: features (B, N, 2) float32. Backward: the exact vector-Jacobian product
// dL/da_j = -sum_i Re(conj(g_i) G_ij G_ji), g = grad_features[..., 0] + i grad_features[..., 1].
// Return the launch error (cudaSuccess when every launch was accepted); they do not synchronise.
cudaError_t launch_bk_stable_forward(const BkScanParams& p, cudaStream_t stream);
cudaError_t launch_bk_stable_backward(const BkScanParams& p, cudaStream_t stream);

// An empty kernel: its event-timed duration is the launch-overhead floor that every single-launch
// time at small N includes (reported next to the BK-Core times).
cudaError_t launch_empty_kernel(cudaStream_t stream);

// Compat kernel shaped like upstream's paper-time Triton path (audit §1.10): one serial fp32
// program per batch row for theta, another for phi (un-scaled continuants, overflow included),
// then an element-wise assembly G = theta_i phi_i / (theta_N + 1e-18) with upstream's sanitiser
// (non-finite -> 0, |G| <= 50). a (B, N), b, c (B, N-1) float32; theta, phi: scratch of
// (B, N + 1) complex (2 floats each); out (B, N, 2) float32.
cudaError_t launch_bk_compat_triton_like(const float* a, const float* b, const float* c, int64_t batch, int64_t n,
                                         double z_re, double z_im, float* theta, float* phi, float* out,
                                         cudaStream_t stream);

}  // namespace rbk::cuda
