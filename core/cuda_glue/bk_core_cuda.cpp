// LibTorch glue of the CUDA BK-Core kernels (see rbk/cuda_glue/bk_core_cuda.h). Claims C01, C17.
#include "rbk/cuda_glue/bk_core_cuda.h"

#include "rbk/kernels/bk_scan_launch.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

namespace rbk::cuda {
namespace {

using torch::Tensor;

void check_launch(cudaError_t e, const char* what) {
  TORCH_CHECK(e == cudaSuccess, "BK-Core CUDA: ", what, " failed to launch: ", cudaGetErrorString(e));
}

void check_cuda_2d(const Tensor& t, const char* name, int64_t B, int64_t N) {
  TORCH_CHECK(t.is_cuda(), "BK-Core CUDA: ", name, " must be a CUDA tensor, got ", t.device());
  TORCH_CHECK(t.dim() == 2 && t.size(0) == B && t.size(1) == N, "BK-Core CUDA: ", name, " must be (", B, ", ", N,
              "), got ", t.sizes());
}

Tensor workspace_for(int64_t B, int64_t N, const torch::TensorOptions& o) {
  const size_t bytes = bk_stable_workspace_bytes(B, N);
  return torch::empty({static_cast<int64_t>((bytes + 3) / 4)}, o.dtype(torch::kFloat));
}

BkScanParams params_for(const Tensor& diag, const Tensor* upper, const Tensor* lower, c10::complex<double> z,
                        BkContext context, Tensor& ws) {
  BkScanParams p;
  p.diag = diag.data_ptr();
  p.diag_type = diag.scalar_type() == torch::kBFloat16 ? InputType::BFloat16 : InputType::Float32;
  p.upper = upper ? upper->data_ptr<float>() : nullptr;
  p.lower = lower ? lower->data_ptr<float>() : nullptr;
  p.batch = diag.size(0);
  p.n = diag.size(1);
  p.z_re = z.real();
  p.z_im = z.imag();
  p.causal = context == BkContext::Causal;
  ws = workspace_for(p.batch, p.n, diag.options());
  p.workspace = ws.numel() > 0 ? ws.data_ptr() : nullptr;
  return p;
}

}  // namespace

Tensor bk_core_diagonal_stable_cuda(const Tridiagonal& h, c10::complex<double> z, BkContext context) {
  TORCH_CHECK(h.diag.scalar_type() == torch::kFloat, "BK-Core CUDA: diag must be float32, got ", h.diag.scalar_type());
  const c10::cuda::CUDAGuard guard(h.diag.device());
  const int64_t B = h.diag.size(0), N = h.diag.size(1);
  const Tensor a = h.diag.contiguous(), b = h.upper.contiguous(), c = h.lower.contiguous();
  Tensor out = torch::empty({B, N, 2}, a.options().dtype(torch::kFloat));
  Tensor ws;
  BkScanParams p = params_for(a, &b, &c, z, context, ws);
  // (B, 0) off-diagonals have no storage; a non-null pointer still selects the general-k kernel.
  if (N == 1) p.upper = p.lower = a.data_ptr<float>();
  p.out = out.data_ptr<float>();
  check_launch(launch_bk_stable_forward(p, at::cuda::getCurrentCUDAStream()), "stable forward");
  return torch::view_as_complex(out);
}

Tensor bk_core_diagonal_vjp_exact_cuda(const Tridiagonal& h, c10::complex<double> z, const Tensor& grad_g,
                                         BkContext context) {
  TORCH_CHECK(h.diag.scalar_type() == torch::kFloat, "BK-Core CUDA: diag must be float32, got ", h.diag.scalar_type());
  TORCH_CHECK(grad_g.is_cuda(), "BK-Core CUDA: grad_g must be on the GPU with H, got ", grad_g.device());
  const c10::cuda::CUDAGuard guard(h.diag.device());
  const int64_t B = h.diag.size(0), N = h.diag.size(1);
  const Tensor a = h.diag.contiguous(), b = h.upper.contiguous(), c = h.lower.contiguous();
  const Tensor g = torch::view_as_real(grad_g.to(torch::kComplexFloat).contiguous()).contiguous();
  Tensor out = torch::empty({B, N}, a.options().dtype(torch::kFloat));
  Tensor ws;
  BkScanParams p = params_for(a, &b, &c, z, context, ws);
  if (N == 1) p.upper = p.lower = a.data_ptr<float>();
  p.grad_features = g.data_ptr<float>();
  p.out = out.data_ptr<float>();
  check_launch(launch_bk_stable_backward(p, at::cuda::getCurrentCUDAStream()), "stable exact backward");
  return out;
}

Tensor bk_core_features_cuda(const Tensor& v, c10::complex<double> z, BkContext context) {
  TORCH_CHECK(v.dim() == 2, "BK-Core CUDA: v must be (B, N), got ", v.sizes());
  check_cuda_2d(v, "v", v.size(0), v.size(1));
  TORCH_CHECK(v.scalar_type() == torch::kFloat || v.scalar_type() == torch::kBFloat16,
              "BK-Core CUDA: v must be float32 or bfloat16, got ", v.scalar_type());
  TORCH_CHECK(v.size(0) >= 1 && v.size(1) >= 1, "BK-Core CUDA: v must have B >= 1 and N >= 1, got ", v.sizes());
  TORCH_CHECK(z.imag() > 0.0, "BK-Core CUDA: Im z must be > 0, got ", z.imag());
  const c10::cuda::CUDAGuard guard(v.device());
  const Tensor vc = v.contiguous();
  Tensor out = torch::empty({v.size(0), v.size(1), 2}, vc.options().dtype(torch::kFloat));
  Tensor ws;
  BkScanParams p = params_for(vc, nullptr, nullptr, z, context, ws);
  p.out = out.data_ptr<float>();
  check_launch(launch_bk_stable_forward(p, at::cuda::getCurrentCUDAStream()), "stable forward (Laplacian + v)");
  return out;
}

Tensor bk_core_features_vjp_cuda(const Tensor& v, c10::complex<double> z, const Tensor& grad_features, BkContext context) {
  TORCH_CHECK(v.dim() == 2, "BK-Core CUDA: v must be (B, N), got ", v.sizes());
  check_cuda_2d(v, "v", v.size(0), v.size(1));
  TORCH_CHECK(v.scalar_type() == torch::kFloat || v.scalar_type() == torch::kBFloat16,
              "BK-Core CUDA: v must be float32 or bfloat16, got ", v.scalar_type());
  TORCH_CHECK(grad_features.is_cuda() && grad_features.dim() == 3 && grad_features.size(0) == v.size(0) &&
                  grad_features.size(1) == v.size(1) && grad_features.size(2) == 2,
              "BK-Core CUDA: grad_features must be CUDA (B, N, 2) = (", v.size(0), ", ", v.size(1), ", 2), got ",
              grad_features.sizes(), " on ", grad_features.device());
  TORCH_CHECK(z.imag() > 0.0, "BK-Core CUDA: Im z must be > 0, got ", z.imag());
  const c10::cuda::CUDAGuard guard(v.device());
  const Tensor vc = v.contiguous();
  const Tensor g = grad_features.to(torch::kFloat).contiguous();
  Tensor out = torch::empty({v.size(0), v.size(1)}, vc.options().dtype(torch::kFloat));
  Tensor ws;
  BkScanParams p = params_for(vc, nullptr, nullptr, z, context, ws);
  p.grad_features = g.data_ptr<float>();
  p.out = out.data_ptr<float>();
  check_launch(launch_bk_stable_backward(p, at::cuda::getCurrentCUDAStream()), "stable exact backward (Laplacian + v)");
  return out;
}

}  // namespace rbk::cuda
