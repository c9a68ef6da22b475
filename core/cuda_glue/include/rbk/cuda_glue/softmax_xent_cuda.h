// LibTorch entry point of the fused softmax cross-entropy kernel (raw launcher:
// softmax_xent_launch.h). rbk::fused_linear_cross_entropy (fused_cross_entropy.h) calls it for CUDA
// logits in builds with the kernels (RBK_WITH_CUDA_KERNELS); nothing else does. Issue 25.
#pragma once
#include <torch/torch.h>

#include <utility>

namespace rbk::cuda {

// logits: (rows, cols) bfloat16 or float32 CUDA (made contiguous here); targets: (rows,) int64 on
// the same device. Returns {row_loss (rows,) float32, grad (rows, cols) in the logits' dtype}, the
// gradient of grad_scale x sum(row_loss) with respect to the logits. allow_staging false keeps
// every row out of shared memory (the kernel then reads it twice): for tests and side-by-side timing.
std::pair<torch::Tensor, torch::Tensor> softmax_xent_cuda(const torch::Tensor& logits, const torch::Tensor& targets,
                                                          double grad_scale, bool allow_staging = true);

// Whether softmax_xent_cuda keeps the rows of `logits` (a (rows, cols) bfloat16 or float32 CUDA
// tensor) in shared memory on its device, with staging allowed.
bool softmax_xent_cuda_stages_rows(const torch::Tensor& logits);

}  // namespace rbk::cuda
