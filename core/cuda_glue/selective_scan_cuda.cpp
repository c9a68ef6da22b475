// LibTorch glue of the Mamba-1 selective-scan CUDA kernels: checks that name the tensor and what was
// expected, float32 casts, allocation through the caching allocator, launch on the current stream.
// Issue 7 (baselines); see rbk/cuda_glue/selective_scan_cuda.h.
#include "rbk/cuda_glue/selective_scan_cuda.h"
#include "rbk/cuda_glue/selective_scan_rig.h"

#include "rbk/kernels/selective_scan_launch.h"
#include "rbk/selective_scan.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

namespace rbk::cuda {
namespace {

// The public header's copies of the kernels' constants (readable on builds without CUDA).
static_assert(kSelectiveScanKernelMaxState == kSsMaxState && kSelectiveScanKernelChunk == kSsChunk,
              "rbk/selective_scan.h and rbk/kernels/selective_scan_launch.h disagree");

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

struct Prepared {
  SelectiveScanTensors t;  // the checked float32 inputs; outputs added by the caller
  bool delta_softplus = false;
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
  r.delta_softplus = delta_softplus;
  r.t.u = prepare(u, "u", {Bt, Dm, L}, dev);
  r.t.delta = prepare(delta, "delta", {Bt, Dm, L}, dev);
  r.t.A = prepare(A, "A", {Dm, N}, dev);
  r.t.B = prepare(B, "B", {Bt, N, L}, dev);
  r.t.C = prepare(C, "C", {Bt, N, L}, dev);
  r.t.D = prepare_optional(D, "D", {Dm}, dev);
  r.t.z = prepare_optional(z, "z", {Bt, Dm, L}, dev);
  r.t.delta_bias = prepare_optional(delta_bias, "delta_bias", {Dm}, dev);
  return r;
}

template <class T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr<float>() : nullptr;
}

// The buffers a launch writes, shaped from t's inputs on their device: the forward's (out,
// chunk_states) and/or the backward's (gradients of the inputs present, dA/dD/ddelta_bias partials,
// workspace). make(shape) allocates one (uninitialised in the glue, poisoned in the rigs).
template <class Make>
void allocate_outputs(SelectiveScanTensors& t, bool forward, bool backward, Make&& make) {
  const int64_t Bt = t.u.size(0), Dm = t.u.size(1), L = t.u.size(2), N = t.A.size(1);
  if (forward) {
    t.out = make({Bt, Dm, L});
    t.chunk_states = make({Bt, Dm, selective_scan_num_chunks(L), N});
  }
  if (backward) {
    t.du = make({Bt, Dm, L});
    t.ddelta = make({Bt, Dm, L});
    if (t.z.defined()) t.dz = make({Bt, Dm, L});
    t.dA_part = make({Bt, Dm, N});
    if (t.D.defined()) t.dD_part = make({Bt, Dm});
    if (t.delta_bias.defined()) t.ddelta_bias_part = make({Bt, Dm});
    t.dB = make({Bt, N, L});
    t.dC = make({Bt, N, L});
    t.workspace = make({selective_scan_bwd_workspace_floats(Bt, Dm, L, N)});
  }
}

}  // namespace

SelectiveScanTensors selective_scan_rig_tensors(const std::vector<Tensor>& inputs, const Tensor& dout, torch::Device device,
                                                float fill) {
  TORCH_CHECK(inputs.size() == 8, "selective_scan_rig_tensors: need the 8 inputs (u, delta, A, B, C, D, z, delta_bias), got ",
              inputs.size());
  const auto o = torch::TensorOptions().device(device).dtype(torch::kFloat);
  auto in = [&](size_t i) { return inputs[i].defined() ? inputs[i].to(o).contiguous() : Tensor(); };
  SelectiveScanTensors t;
  t.u = in(0);
  t.delta = in(1);
  t.A = in(2);
  t.B = in(3);
  t.C = in(4);
  t.D = in(5);
  t.z = in(6);
  t.delta_bias = in(7);
  t.dout = dout.to(o).contiguous();
  allocate_outputs(t, true, true, [&](std::vector<int64_t> shape) { return torch::full(shape, fill, o); });
  return t;
}

SelectiveScanParams selective_scan_params(const SelectiveScanTensors& t, bool delta_softplus, SsVariant variant) {
  SelectiveScanParams p;
  p.batch = t.u.size(0);
  p.dim = t.u.size(1);
  p.len = t.u.size(2);
  p.dstate = t.A.size(1);
  p.delta_softplus = delta_softplus;
  p.variant = variant;
  p.u = ptr_or_null<const float>(t.u);
  p.delta = ptr_or_null<const float>(t.delta);
  p.A = ptr_or_null<const float>(t.A);
  p.B = ptr_or_null<const float>(t.B);
  p.C = ptr_or_null<const float>(t.C);
  p.D = ptr_or_null<const float>(t.D);
  p.z = ptr_or_null<const float>(t.z);
  p.delta_bias = ptr_or_null<const float>(t.delta_bias);
  p.out = ptr_or_null<float>(t.out);
  p.chunk_states = ptr_or_null<float>(t.chunk_states);
  p.dout = ptr_or_null<const float>(t.dout);
  p.du = ptr_or_null<float>(t.du);
  p.ddelta = ptr_or_null<float>(t.ddelta);
  p.dz = ptr_or_null<float>(t.dz);
  p.dA_part = ptr_or_null<float>(t.dA_part);
  p.dD_part = ptr_or_null<float>(t.dD_part);
  p.ddelta_bias_part = ptr_or_null<float>(t.ddelta_bias_part);
  p.dB = ptr_or_null<float>(t.dB);
  p.dC = ptr_or_null<float>(t.dC);
  p.workspace = ptr_or_null<float>(t.workspace);
  return p;
}

std::vector<Tensor> selective_scan_fwd_cuda(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& B,
                                            const Tensor& C, const Tensor& D, const Tensor& z, const Tensor& delta_bias,
                                            bool delta_softplus) {
  const c10::cuda::CUDAGuard guard(u.device());
  Prepared r = prepare_all(u, delta, A, B, C, D, z, delta_bias, delta_softplus);
  SelectiveScanTensors& t = r.t;
  const auto o = t.u.options();
  allocate_outputs(t, true, false, [&](std::vector<int64_t> shape) { return torch::empty(shape, o); });
  const SelectiveScanParams p = selective_scan_params(t, r.delta_softplus);
  check_launch(launch_selective_scan_forward(p, at::cuda::getCurrentCUDAStream()), "forward");
  return {t.out, t.chunk_states};
}

std::vector<Tensor> selective_scan_bwd_cuda(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& B,
                                            const Tensor& C, const Tensor& D, const Tensor& z, const Tensor& delta_bias,
                                            bool delta_softplus, const Tensor& chunk_states, const Tensor& dout) {
  const c10::cuda::CUDAGuard guard(u.device());
  Prepared r = prepare_all(u, delta, A, B, C, D, z, delta_bias, delta_softplus);
  SelectiveScanTensors& t = r.t;
  const int64_t Bt = t.u.size(0), Dm = t.u.size(1), L = t.u.size(2), N = t.A.size(1);
  t.dout = prepare(dout, "dout", {Bt, Dm, L}, u.device());
  t.chunk_states = prepare(chunk_states, "chunk_states", {Bt, Dm, selective_scan_num_chunks(L), N}, u.device());
  const auto o = t.u.options();
  allocate_outputs(t, false, true, [&](std::vector<int64_t> shape) { return torch::empty(shape, o); });
  const SelectiveScanParams p = selective_scan_params(t, r.delta_softplus);
  check_launch(launch_selective_scan_backward(p, at::cuda::getCurrentCUDAStream()), "backward");
  // Per-batch-row partials of the parameter gradients, summed here in a fixed order.
  return {t.du, t.ddelta, t.dA_part.sum(0), t.dB, t.dC, t.dD_part.defined() ? t.dD_part.sum(0) : Tensor(), t.dz,
          t.ddelta_bias_part.defined() ? t.ddelta_bias_part.sum(0) : Tensor()};
}

}  // namespace rbk::cuda
