// Internal to the stable BK-Core kernels (bk_stable_scan.cu, bk_tile_state_scan.cu,
// bk_window_forward.cu): the kernels' parameter block and the launchers bk_stable_scan.cu calls.
#pragma once
#include "rbk/kernels/bk_scan_launch.h"

#include <cuda_runtime_api.h>

#include <cstdint>

namespace rbk::cuda {
namespace {  // one type per translation unit, as before the split: the kernels' mangled names keep it

// What the scan and window kernels read, resolved from BkScanParams by the launchers.
struct KParams {
  const void* diag;
  const float* upper;
  const float* lower;
  const float* grad_features;
  float* out;
  int64_t n;
  int64_t nt;           // tiles per row
  int64_t total_tiles;  // batch * nt
  float z_re;
  float z_im;
  float* mob_agg;    // (total_tiles, 2, 8): left and right Moebius aggregate of each tile
  float* mob_state;  // (total_tiles, 2, 2): u before the tile, w after it
  float* aff_agg;    // (total_tiles, 2, 8): affine aggregates (F left, T or S right)
  float* aff_state;  // (total_tiles, 2, 2): F before the tile, T/S after it
};

}  // namespace

namespace detail {
// BkForwardAlgorithm::Window (bk_window_forward.cu); p is validated by the caller.
cudaError_t launch_window_forward(const BkScanParams& p, cudaStream_t stream);
// The states entering each tile of every row from its tiles' aggregates (bk_tile_state_scan.cu):
// agg (batch * nt, 2, 8) Moebius (affine = false) or affine aggregates -> state (batch * nt, 2, 2).
cudaError_t launch_state_scan(bool affine, const float* agg, float* state, int64_t batch, int64_t nt,
                              cudaStream_t stream);
}  // namespace detail

}  // namespace rbk::cuda
