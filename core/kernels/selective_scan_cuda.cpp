// LibTorch glue of the Mamba-1 selective-scan CUDA kernels: checks that name the tensor and what was
// expected, float32 casts, allocation through the caching allocator, launch on the current stream.
// Issue 7 (baselines); see rbk/kernels/selective_scan_cuda.h.
#include "rbk/kernels/selective_scan_cuda.h"

#include "rbk/kernels/selective_scan_launch.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

namespace rbk::cuda {
namespace {

using torch::Tensor;

void check_launch(cudaError_t e, const char* what) {
  TORCH_CHECK(e == cudaSuccess, "selective scan CUDA: ", what, " failed to launch: ", cudaGetErrorString(e));
}

// Contiguous float32 copy (or the tensor itself) after checking device and shape.
Tensor prepare(const Tensor& t, const char* name, std::vector<int64_t> shape, const c10::Device& dev) {
  TORCH_CHECK(t.defined(), "selective scan CUDA: ", name, " is required");
  TORCH_CHECK(t.device() == dev, "selective scan CUDA: ", name, " must be on ", dev, " with u, got ", t.device());
  TORCH_CHECK(t.sizes().vec() == shape, "selective scan CUDA: ", name, " must be ", c10::IntArrayRef(shape), ", got ",
              t.sizes());
  TORCH_CHECK(t.is_floating_point(), "selective scan CUDA: ", name, " must be floating point, got ", t.scalar_type());
  return t.to(torch::kFloat).contiguous();
}

Tensor prepare_optional(const Tensor& t, const char* name, std::vector<int64_t> shape, const c10::Device& dev) {
  return t.defined() ? prepare(t, name, std::move(shape), dev) : Tensor();
}

const float* ptr_or_null(const Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

struct Prepared {
  Tensor u, delta, A, B, C, D, z, bias;
  SelectiveScanParams p;
};

Prepared prepare_all(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& B, const Tensor& C,
                     const Tensor& D, const Tensor& z, const Tensor& delta_bias, bool delta_softplus) {
  TORCH_CHECK(u.defined() && u.is_cuda() && u.dim() == 3, "selective scan CUDA: u must be a (Bt, Dm, L) CUDA tensor");
  TORCH_CHECK(A.defined() && A.dim() == 2, "selective scan CUDA: A must be (Dm, N)");
  const int64_t Bt = u.size(0), Dm = u.size(1), L = u.size(2), N = A.size(1);
  TORCH_CHECK(Bt >= 1 && Bt <= 65535 && Dm >= 1 && L >= 1, "selective scan CUDA: need 1 <= Bt <= 65535, Dm >= 1, L >= 1, got ",
              u.sizes());
  TORCH_CHECK(N >= 1 && N <= kSsMaxState, "selective scan CUDA: N (d_state) must be in [1, ", kSsMaxState, "], got ", N);
  const auto dev = u.device();
  Prepared r;
  r.u = prepare(u, "u", {Bt, Dm, L}, dev);
  r.delta = prepare(delta, "delta", {Bt, Dm, L}, dev);
  r.A = prepare(A, "A", {Dm, N}, dev);
  r.B = prepare(B, "B", {Bt, N, L}, dev);
  r.C = prepare(C, "C", {Bt, N, L}, dev);
  r.D = prepare_optional(D, "D", {Dm}, dev);
  r.z = prepare_optional(z, "z", {Bt, Dm, L}, dev);
  r.bias = prepare_optional(delta_bias, "delta_bias", {Dm}, dev);
  SelectiveScanParams& p = r.p;
  p.batch = Bt;
  p.dim = Dm;
  p.len = L;
  p.dstate = N;
  p.delta_softplus = delta_softplus;
  p.u = r.u.data_ptr<float>();
  p.delta = r.delta.data_ptr<float>();
  p.A = r.A.data_ptr<float>();
  p.B = r.B.data_ptr<float>();
  p.C = r.C.data_ptr<float>();
  p.D = ptr_or_null(r.D);
  p.z = ptr_or_null(r.z);
  p.delta_bias = ptr_or_null(r.bias);
  return r;
}

}  // namespace

std::vector<Tensor> selective_scan_fwd_cuda(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& B,
                                            const Tensor& C, const Tensor& D, const Tensor& z, const Tensor& delta_bias,
                                            bool delta_softplus) {
  const c10::cuda::CUDAGuard guard(u.device());
  Prepared r = prepare_all(u, delta, A, B, C, D, z, delta_bias, delta_softplus);
  const auto o = r.u.options();
  Tensor out = torch::empty({r.p.batch, r.p.dim, r.p.len}, o);
  Tensor states = torch::empty({r.p.batch, r.p.dim, selective_scan_num_chunks(r.p.len), r.p.dstate}, o);
  r.p.out = out.data_ptr<float>();
  r.p.chunk_states = states.data_ptr<float>();
  check_launch(launch_selective_scan_forward(r.p, at::cuda::getCurrentCUDAStream()), "forward");
  return {out, states};
}

std::vector<Tensor> selective_scan_bwd_cuda(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& B,
                                            const Tensor& C, const Tensor& D, const Tensor& z, const Tensor& delta_bias,
                                            bool delta_softplus, const Tensor& chunk_states, const Tensor& dout) {
  const c10::cuda::CUDAGuard guard(u.device());
  Prepared r = prepare_all(u, delta, A, B, C, D, z, delta_bias, delta_softplus);
  const int64_t Bt = r.p.batch, Dm = r.p.dim, L = r.p.len, N = r.p.dstate;
  const Tensor g = prepare(dout, "dout", {Bt, Dm, L}, u.device());
  const Tensor cs = prepare(chunk_states, "chunk_states", {Bt, Dm, selective_scan_num_chunks(L), N}, u.device());
  const auto o = r.u.options();
  Tensor du = torch::empty({Bt, Dm, L}, o), ddelta = torch::empty({Bt, Dm, L}, o);
  Tensor dz = r.z.defined() ? torch::empty({Bt, Dm, L}, o) : Tensor();
  Tensor dA_part = torch::empty({Bt, Dm, N}, o);
  Tensor dD_part = r.D.defined() ? torch::empty({Bt, Dm}, o) : Tensor();
  Tensor dbias_part = r.bias.defined() ? torch::empty({Bt, Dm}, o) : Tensor();
  Tensor dB = torch::empty({Bt, N, L}, o), dC = torch::empty({Bt, N, L}, o);
  Tensor ws = torch::empty({selective_scan_bwd_workspace_floats(Bt, Dm, L, N)}, o);
  SelectiveScanParams& p = r.p;
  p.chunk_states = cs.data_ptr<float>();
  p.dout = g.data_ptr<float>();
  p.du = du.data_ptr<float>();
  p.ddelta = ddelta.data_ptr<float>();
  p.dz = dz.defined() ? dz.data_ptr<float>() : nullptr;
  p.dA_part = dA_part.data_ptr<float>();
  p.dD_part = dD_part.defined() ? dD_part.data_ptr<float>() : nullptr;
  p.ddelta_bias_part = dbias_part.defined() ? dbias_part.data_ptr<float>() : nullptr;
  p.dB = dB.data_ptr<float>();
  p.dC = dC.data_ptr<float>();
  p.workspace = ws.data_ptr<float>();
  check_launch(launch_selective_scan_backward(p, at::cuda::getCurrentCUDAStream()), "backward");
  // Per-batch-row partials of the parameter gradients, summed here in a fixed order.
  return {du, ddelta, dA_part.sum(0), dB, dC, dD_part.defined() ? dD_part.sum(0) : Tensor(), dz,
          dbias_part.defined() ? dbias_part.sum(0) : Tensor()};
}

}  // namespace rbk::cuda
