// LibTorch glue of the fused softmax cross-entropy kernel: checks that name the tensor and what was
// expected, allocation through the caching allocator, launch on the current stream. Issue 25.
#include "rbk/cuda_glue/softmax_xent_cuda.h"

#include "rbk/kernels/softmax_xent_launch.h"
#include "rbk/profiled_scope.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

namespace rbk::cuda {

std::pair<torch::Tensor, torch::Tensor> softmax_xent_cuda(const torch::Tensor& logits, const torch::Tensor& targets,
                                                          double grad_scale, bool allow_staging) {
  TORCH_CHECK(logits.is_cuda() && logits.dim() == 2 && logits.size(1) >= 1,
              "softmax cross-entropy (CUDA): logits must be a (rows, cols >= 1) CUDA tensor, got ", logits.sizes(), " on ",
              logits.device());
  TORCH_CHECK(logits.scalar_type() == torch::kBFloat16 || logits.scalar_type() == torch::kFloat,
              "softmax cross-entropy (CUDA): logits must be bfloat16 or float32, got ", logits.scalar_type());
  TORCH_CHECK(targets.device() == logits.device() && targets.scalar_type() == torch::kInt64 && targets.dim() == 1 &&
                  targets.size(0) == logits.size(0),
              "softmax cross-entropy (CUDA): targets must be (", logits.size(0), ",) int64 on ", logits.device(), ", got ",
              targets.sizes(), " ", targets.scalar_type(), " on ", targets.device());
  const c10::cuda::CUDAGuard guard(logits.device());
  const auto x = logits.contiguous();
  const auto t = targets.contiguous();
  auto row_loss = torch::empty({x.size(0)}, x.options().dtype(torch::kFloat));
  auto grad = torch::empty_like(x);
  SoftmaxXentParams p;
  p.logits = x.data_ptr();
  p.bf16 = x.scalar_type() == torch::kBFloat16;
  p.targets = t.data_ptr<int64_t>();
  p.row_loss = row_loss.data_ptr<float>();
  p.grad = grad.data_ptr();
  p.grad_scale = static_cast<float>(grad_scale);
  p.rows = x.size(0);
  p.cols = x.size(1);
  p.allow_staging = allow_staging;
  const ProfiledScope scope("rbk::softmax_xent");  // the kernel's host side in kernel attribution
  const cudaError_t e = launch_softmax_xent(p, at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(e == cudaSuccess, "softmax cross-entropy (CUDA): launch failed: ", cudaGetErrorString(e));
  return {row_loss, grad};
}

bool softmax_xent_cuda_stages_rows(const torch::Tensor& logits) {
  TORCH_CHECK(logits.is_cuda() && logits.dim() == 2 &&
                  (logits.scalar_type() == torch::kBFloat16 || logits.scalar_type() == torch::kFloat),
              "softmax cross-entropy (CUDA): logits must be a (rows, cols) bfloat16 or float32 CUDA tensor, got ",
              logits.sizes(), " ", logits.scalar_type(), " on ", logits.device());
  const c10::cuda::CUDAGuard guard(logits.device());
  SoftmaxXentParams p;
  p.bf16 = logits.scalar_type() == torch::kBFloat16;
  p.rows = logits.size(0);
  p.cols = logits.size(1);
  return softmax_xent_stages_rows(p);
}

}  // namespace rbk::cuda
