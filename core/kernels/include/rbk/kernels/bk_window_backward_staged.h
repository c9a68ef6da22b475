// The Window backward of BK-Core with each block's tile of the row staged in shared memory (issue
// 25): the same maths and the same result as BkBackwardAlgorithm::Window (bk_window_backward.h),
// meant to replace its global-memory kernel. Written in a session without a GPU, so it is not yet
// reachable through launch_bk_stable_backward: the GPU tests (tests/gpu/test_bk_cuda.cpp) call it
// directly, and once they pass and exp_kernel_speed has timed it next to Window, Auto picks it and
// the global-memory kernel goes.
#pragma once
#include "rbk/kernels/bk_scan_launch.h"

namespace rbk::cuda {

// Laplacian mode only (p.upper == nullptr); p.grad_features, p.out, p.diag as for
// launch_bk_stable_backward; p.window_warmup sets the first window (0 = kBkWindowWarmup);
// p.backward_algorithm is not read. Returns cudaErrorInvalidValue for parameters it cannot take.
cudaError_t launch_bk_window_backward_staged(const BkScanParams& p, cudaStream_t stream);

}  // namespace rbk::cuda
