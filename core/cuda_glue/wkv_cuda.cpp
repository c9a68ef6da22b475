// LibTorch glue of the CUDA RWKV-4 WKV kernel: checks that name the tensor and what was expected,
// allocation through the caching allocator, launch on the current stream, the batch reduction of
// the per-row time_decay / time_first gradients. Issue 7 (RWKV baseline).
#include "rbk/cuda_glue/wkv_cuda.h"

#include "rbk/kernels/wkv_launch.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

namespace rbk::cuda {
namespace {

using torch::Tensor;

void check_launch(cudaError_t e, const char* what) {
  TORCH_CHECK(e == cudaSuccess, "WKV CUDA: ", what, " failed to launch: ", cudaGetErrorString(e));
}

void check_float_cuda(const Tensor& t, const char* name, const Tensor& like) {
  TORCH_CHECK(t.is_cuda(), "WKV CUDA: ", name, " must be a CUDA tensor, got ", t.device());
  TORCH_CHECK(t.device() == like.device(), "WKV CUDA: ", name, " is on ", t.device(), ", k on ", like.device());
  TORCH_CHECK(t.scalar_type() == torch::kFloat, "WKV CUDA: ", name, " must be float32, got ", t.scalar_type());
}

// Shapes and dtypes of the four operands: k (B, T, C), v like k, time_decay and time_first (C,).
void check_operands(const Tensor& time_decay, const Tensor& time_first, const Tensor& k, const Tensor& v) {
  TORCH_CHECK(k.dim() == 3, "WKV CUDA: k must be (B, T, C), got ", k.sizes());
  check_float_cuda(k, "k", k);
  check_float_cuda(v, "v", k);
  check_float_cuda(time_decay, "time_decay", k);
  check_float_cuda(time_first, "time_first", k);
  TORCH_CHECK(v.sizes() == k.sizes(), "WKV CUDA: v must be (B, T, C) = ", k.sizes(), ", got ", v.sizes());
  TORCH_CHECK(time_decay.dim() == 1 && time_decay.size(0) == k.size(2), "WKV CUDA: time_decay must be (", k.size(2),
              ",), got ", time_decay.sizes());
  TORCH_CHECK(time_first.dim() == 1 && time_first.size(0) == k.size(2), "WKV CUDA: time_first must be (", k.size(2),
              ",), got ", time_first.sizes());
}

WkvParams params_for(const Tensor& td, const Tensor& tf, const Tensor& k, const Tensor& v) {
  WkvParams p;
  p.time_decay = td.data_ptr<float>();
  p.time_first = tf.data_ptr<float>();
  p.k = k.data_ptr<float>();
  p.v = v.data_ptr<float>();
  p.batch = k.size(0);
  p.steps = k.size(1);
  p.channels = k.size(2);
  return p;
}

}  // namespace

Tensor wkv_forward_cuda(const Tensor& time_decay, const Tensor& time_first, const Tensor& k, const Tensor& v) {
  check_operands(time_decay, time_first, k, v);
  const c10::cuda::CUDAGuard guard(k.device());
  const Tensor td = time_decay.contiguous(), tf = time_first.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  Tensor y = torch::empty({kc.size(0), kc.size(1), kc.size(2)}, kc.options());
  if (y.numel() == 0) return y;
  WkvParams p = params_for(td, tf, kc, vc);
  p.out = y.data_ptr<float>();
  check_launch(launch_wkv_forward(p, at::cuda::getCurrentCUDAStream()), "forward");
  return y;
}

std::array<Tensor, 4> wkv_backward_cuda(const Tensor& time_decay, const Tensor& time_first, const Tensor& k,
                                        const Tensor& v, const Tensor& y, const Tensor& grad_y) {
  check_operands(time_decay, time_first, k, v);
  check_float_cuda(y, "y", k);
  TORCH_CHECK(y.sizes() == k.sizes(), "WKV CUDA: y must be (B, T, C) = ", k.sizes(), ", got ", y.sizes());
  TORCH_CHECK(grad_y.is_cuda() && grad_y.device() == k.device() && grad_y.sizes() == k.sizes(),
              "WKV CUDA: grad_y must be (B, T, C) = ", k.sizes(), " on ", k.device(), ", got ", grad_y.sizes(), " on ",
              grad_y.device());
  const c10::cuda::CUDAGuard guard(k.device());
  const Tensor td = time_decay.contiguous(), tf = time_first.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  const Tensor yc = y.contiguous();
  const Tensor gy = grad_y.to(torch::kFloat).contiguous();
  const int64_t B = kc.size(0), T = kc.size(1), C = kc.size(2);
  Tensor grad_k = torch::empty({B, T, C}, kc.options());
  Tensor grad_v = torch::empty({B, T, C}, kc.options());
  Tensor grad_td_rows = torch::empty({B, C}, kc.options());
  Tensor grad_tf_rows = torch::empty({B, C}, kc.options());
  if (B * C > 0) {
    WkvParams p = params_for(td, tf, kc, vc);
    p.forward_out = yc.data_ptr<float>();
    p.grad_out = gy.data_ptr<float>();
    p.grad_k = grad_k.data_ptr<float>();
    p.grad_v = grad_v.data_ptr<float>();
    p.grad_time_decay_rows = grad_td_rows.data_ptr<float>();
    p.grad_time_first_rows = grad_tf_rows.data_ptr<float>();
    check_launch(launch_wkv_backward(p, at::cuda::getCurrentCUDAStream()), "backward");
  }
  // The channel parameters are shared by the batch rows: their gradient is the sum over B.
  return {grad_td_rows.sum(0), grad_tf_rows.sum(0), grad_k, grad_v};
}

}  // namespace rbk::cuda
