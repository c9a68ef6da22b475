// CUDA rigs of exp_kernel_speed (claim C17): preallocated launches of rbk's BK-Core kernels and of
// the Triton-like compat kernel, and the CUDA-event timing helpers they are timed with. Only built
// where rbk_core has its CUDA kernels (RBK_WITH_CUDA_KERNELS); included by main.cpp and
// same_work.cpp inside that guard.
#pragma once
#if !defined(RBK_WITH_CUDA_KERNELS)
#error "cuda_rigs.h needs RBK_WITH_CUDA_KERNELS"
#endif
#include "accuracy.h"
#include "vmap_native_baseline.h"

#include "rbk/bk_core.h"
#include "rbk/cuda_glue/bk_core_cuda.h"
#include "rbk/kernels/bk_scan_launch.h"
#include "rbk/kernels/cuda_event_timer.h"
#include "rbk/timing.h"

#include <ATen/cuda/CUDAContext.h>
#include <cuda_runtime_api.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace rbk::kernel_speed {

using json = nlohmann::json;

inline cudaStream_t current_stream() { return at::cuda::getCurrentCUDAStream(); }

// Median of per-call device time on the current stream (the project's one CUDA-event timer).
inline rbk::TimingStats time_cuda(const std::function<void()>& fn, int warmup, int repeats) {
  return rbk::cuda::time_cuda_events(fn, warmup, repeats, current_stream());
}

// A call timed both ways: single launches between events (includes the host's launch latency of
// the first kernel) and replays of a graph of kGraphCalls calls (what the call costs inside a model
// step; notes/kernel_speed.md, run 6).
constexpr int kGraphCalls = 20;
struct TwoTimings {
  rbk::TimingStats single, graph;
  json to_json() const { return {{"single_launch", rbk::timing_json(single)}, {"graph_replay", rbk::timing_json(graph)}}; }
};
inline TwoTimings time_both(const std::function<void(cudaStream_t)>& fn, int warmup, int repeats, int graph_calls = kGraphCalls) {
  TwoTimings t;
  t.single = time_cuda([&] { fn(current_stream()); }, warmup, repeats);
  t.graph = rbk::cuda::time_cuda_graph(fn, graph_calls, std::min(warmup, 3), std::max(3, repeats / 4));
  return t;
}

// Device-to-device copy of `bytes`, counted as bytes read + written.
inline double copy_bandwidth_gbps(int64_t bytes, int warmup, int repeats) {
  return rbk::cuda::measure_copy_bandwidth_gbps(bytes, warmup, repeats, current_stream());
}

using Algo = rbk::cuda::BkForwardAlgorithm;
inline const char* algo_name(Algo a) { return a == Algo::Window ? "window" : a == Algo::Scan ? "scan" : "auto"; }

// One forward configuration of the launcher besides the default (Auto): the scan in either block
// shape, the window kernel with 4, 16 or 32 positions per thread.
struct FwdVariant {
  std::string name;
  Algo algorithm;
  int forward_threads;
  int window_items;
};
inline const std::vector<FwdVariant>& fwd_variants() {
  static const std::vector<FwdVariant> v = {{"scan_shape256", Algo::Scan, 256, 0},
                                            {"scan_shape512", Algo::Scan, 512, 0},
                                            {"window_items4", Algo::Window, 0, 4},
                                            {"window_items16", Algo::Window, 0, 16},
                                            {"window_items32", Algo::Window, 0, 32}};
  return v;
}

// Preallocated launch of the stable kernels on (B, N) fresh random v (Laplacian + v, z = i).
struct StableRig {
  int64_t B, N;
  torch::Tensor v, gfeat, out_f, out_g, ws;
  rbk::cuda::BkScanParams pf, pb;
  StableRig(int64_t b, int64_t n, bool causal) : B(b), N(n) {
    auto o = torch::TensorOptions().device(torch::kCUDA);
    v = torch::randn({B, N}, o);
    gfeat = torch::randn({B, N, 2}, o);
    out_f = torch::full({B, N, 2}, NAN, o);
    out_g = torch::full({B, N}, NAN, o);
    ws = torch::empty({static_cast<int64_t>(rbk::cuda::bk_stable_workspace_bytes(B, N) / 4) + 1}, o);
    pf.diag = v.data_ptr();
    pf.batch = B;
    pf.n = N;
    pf.z_re = kModelZ.real();
    pf.z_im = kModelZ.imag();
    pf.causal = causal;
    pf.workspace = ws.data_ptr();
    pf.out = out_f.data_ptr<float>();
    pb = pf;
    pb.grad_features = gfeat.data_ptr<float>();
    pb.out = out_g.data_ptr<float>();
  }
  void fwd(cudaStream_t s) const { rbk::cuda::throw_on_cuda_error(rbk::cuda::launch_bk_stable_forward(pf, s), "stable fwd"); }
  void fwd_variant(const FwdVariant& fv, cudaStream_t s) const {
    rbk::cuda::BkScanParams q = pf;
    q.forward_algorithm = fv.algorithm;
    q.forward_threads = fv.forward_threads;
    q.window_items = fv.window_items;
    rbk::cuda::throw_on_cuda_error(rbk::cuda::launch_bk_stable_forward(q, s), ("stable fwd " + fv.name).c_str());
  }
  // The two exact backwards side by side: the scan, and the Window backward (issue 25), which Auto
  // picks for the model's z.
  void bwd(cudaStream_t s) const {
    rbk::cuda::BkScanParams q = pb;
    q.backward_algorithm = rbk::cuda::BkBackwardAlgorithm::Scan;
    rbk::cuda::throw_on_cuda_error(rbk::cuda::launch_bk_stable_backward(q, s), "stable bwd scan");
  }
  void bwd_window(cudaStream_t s) const {
    rbk::cuda::BkScanParams q = pb;
    q.backward_algorithm = rbk::cuda::BkBackwardAlgorithm::Window;
    rbk::cuda::throw_on_cuda_error(rbk::cuda::launch_bk_stable_backward(q, s), "stable bwd window");
  }
  Algo default_algorithm() const { return rbk::cuda::bk_resolve_forward_algorithm(pf); }
  // Runs variant fv on NaN-poisoned output and refuses to go on unless every element is finite and
  // not all are zero; returns its accuracy against ref (pass an undefined ref where the fp64
  // oracle is not computed: only the check is made then).
  Accuracy checked_variant(const FwdVariant& fv, const torch::Tensor& ref) const {
    return checked(out_f, [&] { fwd_variant(fv, current_stream()); }, ref, "stable forward " + fv.name);
  }
  // The Window backward, checked the same way.
  Accuracy checked_window_backward(const torch::Tensor& ref) const {
    return checked(out_g, [&] { bwd_window(current_stream()); }, ref, "stable window backward");
  }

 private:
  Accuracy checked(const torch::Tensor& out, const std::function<void()>& run, const torch::Tensor& ref,
                   const std::string& what) const {
    out.fill_(NAN);
    run();
    Accuracy a = accuracy(out, ref.defined() ? ref : torch::zeros({1}, torch::kDouble));
    if (!(a.finite_fraction == 1.0) || !(a.zero_fraction < 1.0))
      throw std::runtime_error(what + " not finite and non-trivial at N = " + std::to_string(N) + "; refusing to time it");
    if (!ref.defined()) a.rel_err = NAN;
    return a;
  }
};

struct CompatRig {
  torch::Tensor a, b, c, theta, phi, out;
  int64_t B, N;
  c10::complex<double> z;
  CompatRig(const rbk::Tridiagonal& h, c10::complex<double> zz) : B(h.diag.size(0)), N(h.diag.size(1)), z(zz) {
    a = h.diag.cuda().contiguous();
    b = h.upper.cuda().contiguous();
    c = h.lower.cuda().contiguous();
    auto o = a.options();
    theta = torch::empty({B, N + 1, 2}, o);
    phi = torch::empty({B, N + 1, 2}, o);
    out = torch::full({B, N, 2}, NAN, o);
  }
  void run(cudaStream_t s) const {
    rbk::cuda::throw_on_cuda_error(rbk::cuda::launch_bk_compat_triton_like(a.data_ptr<float>(), N > 1 ? b.data_ptr<float>() : nullptr,
                                                       N > 1 ? c.data_ptr<float>() : nullptr, B, N, z.real(), z.imag(),
                                                       theta.data_ptr<float>(), phi.data_ptr<float>(),
                                                       out.data_ptr<float>(), s),
               "compat triton-like");
  }
};

// rbk's kernel in its general tridiagonal mode (any a, b, c; the parallel continued-fraction scan)
// on fixed inputs h (float32, copied to the GPU) at z: the path claim C17's same-work ratio times.
struct GeneralRig {
  torch::Tensor a, b, c, out, ws;
  rbk::cuda::BkScanParams p;
  GeneralRig(const rbk::Tridiagonal& h, c10::complex<double> z) {
    a = h.diag.to(torch::kCUDA, torch::kFloat).contiguous();
    b = h.upper.to(torch::kCUDA, torch::kFloat).contiguous();
    c = h.lower.to(torch::kCUDA, torch::kFloat).contiguous();
    const int64_t B = a.size(0), N = a.size(1);
    if (N < 2) throw std::invalid_argument("GeneralRig: the general mode needs N >= 2 (off-diagonals present)");
    out = torch::full({B, N, 2}, NAN, a.options());
    ws = torch::empty({static_cast<int64_t>(rbk::cuda::bk_stable_workspace_bytes(B, N) / 4) + 1}, a.options());
    p.diag = a.data_ptr();
    p.upper = b.data_ptr<float>();
    p.lower = c.data_ptr<float>();
    p.batch = B;
    p.n = N;
    p.z_re = z.real();
    p.z_im = z.imag();
    p.workspace = ws.data_ptr();
    p.out = out.data_ptr<float>();
  }
  void run(cudaStream_t s) const { rbk::cuda::throw_on_cuda_error(rbk::cuda::launch_bk_stable_forward(p, s), "general fwd"); }
  Algo algorithm() const { return rbk::cuda::bk_resolve_forward_algorithm(p); }
};

}  // namespace rbk::kernel_speed
