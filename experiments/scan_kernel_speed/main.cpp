// exp_scan_kernel_speed: issue 7 (baselines) performance target for the Mamba-1 selective-scan CUDA
// kernel: forward + backward within 2x of the time a bandwidth model predicts for its bytes at
// B = 8, D = 1536, L = 4096, N = 16, with effective GB/s. Not a paper claim: an engineering target
// that keeps the Mamba baseline's training cost honest next to ResNet-BK's (no claim is judged from it).
//
// Rows, in one run on one GPU:
//   check            the kernel (fp32) and the fp32 LibTorch reference against the fp64 reference at
//                    a small shape: relative L2 error of out and of every gradient;
//   copy_bandwidth   cudaMemcpyAsync device-to-device of copy_bytes, counted as read + write bytes
//                    (rbk::cuda::measure_copy_bandwidth_gbps, the same ceiling as exp_kernel_speed);
//   scan_cuda        the raw launchers of both kernel variants (row keys `variant`: "sequential"
//                    (the first kernel), "runs", and `default`: whether
//                    the entry point runs it at this shape on this GPU) side by side
//                    at (batch, dim, len, dstate) and over sweep_len, CUDA event timing (median of
//                    `repeats`), after checking the outputs are finite and non-trivial;
//   reference_gpu    the LibTorch reference on the GPU at len = ref_len (fwd, fwd + autograd bwd), for scale;
//   upstream_mamba_check, upstream_mamba
//                    upstream Mamba's own kernels (state-spaces/mamba, built only when configured with
//                    -DRBK_UPSTREAM_MAMBA_SRC, see upstream_mamba_scan.h; otherwise only a summary key):
//                    against fp64 at (check_batch, check_dim, 2048), and timed like scan_cuda on the
//                    same draws at every sweep length that is a multiple of 2048. Why: the 2x target
//                    is judged against a bytes model; how far the reference implementation of the
//                    baseline is from the same model says what that target asks.
//
// Bytes model (fp32; E = Bt Dm L elements of u-shaped arrays, S = Bt N L of B/C-shaped ones):
//   minimal forward   reads u, delta, z (12 E) and B, C (8 S), writes out (4 E)          = 16 E + 8 S
//   minimal backward  reads u, delta, z, dout (16 E), B, C (8 S), writes du, ddelta, dz (12 E),
//                     dB, dC (8 S)                                                         = 28 E + 16 S
//   (A, D, delta_bias and their gradients are O(Dm N): ignored.) This kernel moves more: the forward
//   also writes the chunk states (4 Bt Dm ceil(L/64) N), the backward reads them, re-reads u, delta,
//   B once more to replay each chunk (8 E + 4 S, 7/8 of the tiles), and writes then reads the per-block
//   dB/dC partials (2 x 8 Bt ceil(Dm/32) N L). The runs variant moves the minimal bytes, the chunk states and partials and its per-chunk workspace (no replay
//   re-reads, no local-adjoint pass). Predicted time = bytes / measured copy bandwidth;
//   the target is measured / predicted(minimal bytes) <= 2 for forward + backward.
//
// Summary keys: default_variant (what the entry point runs here); unprefixed fwd_us, fwd_bwd_us,
//   fwd_GBps, fwd_bwd_GBps, ratio_fwd, ratio_fwd_bwd, ratio_fwd_bwd_kernel_bytes are the default's,
//   and the same keys prefixed sequential_ (the first kernel) and runs_ are each variant's;
//   runs_speedup_fwd_bwd_vs_sequential (the removed chunked, hybrid and lean variants had theirs:
//   notes/baseline_kernels.md);
//   batch, dim, len, dstate; copy_bandwidth_GBps; fwd_us, fwd_bwd_us (medians);
//   fwd_GBps, fwd_bwd_GBps (minimal bytes / time); predicted_fwd_us, predicted_fwd_bwd_us (minimal
//   bytes at copy bandwidth); ratio_fwd, ratio_fwd_bwd (measured / predicted); bytes_kernel_fwd_bwd
//   (sequential variant), ratio_fwd_bwd_kernel_bytes (each variant's own traffic); target_fwd_bwd_within_2x
//   (bool, default variant); check_* errors; reference_gpu_*_us; when upstream is built:
//   upstream_mamba_commit, upstream_mamba_{fwd_us, fwd_bwd_us, ratio_fwd, ratio_fwd_bwd},
//   upstream_mamba_check_rel_err_out, upstream_mamba_check_worst_kernel_over_fp32_reference,
//   speedup_fwd_vs_upstream_mamba, speedup_fwd_bwd_vs_upstream_mamba (upstream's time / the default's),
//   upstream_mamba_lengths_not_built (+ _why); when not built: upstream_mamba (why not).
#include "rbk/experiment.h"
#include "rbk/selective_scan.h"
#include "rbk/tensor_metrics.h"
#include "rbk/torch_compat.h"

#if defined(RBK_WITH_CUDA_KERNELS)
#include "rbk/kernels/cuda_event_timer.h"
#include "rbk/cuda_glue/selective_scan_rig.h"
#include "rbk/kernels/selective_scan_launch.h"
#include <ATen/cuda/CUDAContext.h>
#include <cuda_runtime_api.h>
#endif
#if defined(RBK_WITH_UPSTREAM_MAMBA)
#include "upstream_mamba_scan.h"
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

using torch::Tensor;
using json = nlohmann::json;

struct Bytes {
  double fwd_min, fwd_bwd_min, fwd_kernel, fwd_bwd_kernel;  // kernel: the sequential variant's traffic
  double fwd_bwd_kernel_runs;                               // the runs variant's traffic
};

Bytes bytes_model(int64_t Bt, int64_t Dm, int64_t L, int64_t N) {
  const double E = static_cast<double>(Bt) * Dm * L, S = static_cast<double>(Bt) * N * L;
  const double states = 4.0 * Bt * Dm * std::ceil(static_cast<double>(L) / rbk::kSelectiveScanKernelChunk) * N;
  const double partials = 8.0 * Bt * std::ceil(Dm / 32.0) * N * L;
  Bytes b;
  b.fwd_min = 16 * E + 8 * S;
  b.fwd_bwd_min = b.fwd_min + 28 * E + 16 * S;
  b.fwd_kernel = b.fwd_min + states;
  b.fwd_bwd_kernel = b.fwd_kernel + 28 * E + 16 * S + states + (8 * E + 4 * S) * 7.0 / 8.0 + 2 * partials;
  // The runs backward's per-chunk workspace (carry, an unused slot, dA, dD, ddelta_bias partials:
  // Bt Dm nck (2 N + 3) floats, written and read twice at most).
  const double chunk_ws = 4.0 * Bt * Dm * std::ceil(static_cast<double>(L) / rbk::kSelectiveScanKernelChunk) * (2 * N + 3) * 4;
  // Runs variant: the minimal bytes, the chunk states (written and read), the backward's dB/dC
  // partials (written and read) and its per-chunk workspace (chunk_ws covers the carries' reset, write
  // and read and the dA, dD, ddelta_bias partials); its backward reads u, delta, z, dout once.
  b.fwd_bwd_kernel_runs = b.fwd_bwd_min + 2 * states + 2 * partials + chunk_ws;
  return b;
}

// Inputs in the model's regime (see tests/gpu/test_selective_scan_cuda.cpp), fp64 on the CPU.
std::vector<Tensor> draw(int64_t Bt, int64_t Dm, int64_t L, int64_t N, torch::TensorOptions o) {
  return {torch::randn({Bt, Dm, L}, o),          torch::randn({Bt, Dm, L}, o) * 0.5 - 1.0,
          -(torch::rand({Dm, N}, o) * 3.0 + 0.5), torch::randn({Bt, N, L}, o),
          torch::randn({Bt, N, L}, o),           torch::randn({Dm}, o),
          torch::randn({Bt, Dm, L}, o),          torch::randn({Dm}, o) * 0.5 - 2.0};
}

const char* kOutNames[9] = {"out", "u", "delta", "A", "B", "C", "D", "z", "delta_bias"};

std::vector<Tensor> run_scan(const std::vector<Tensor>& in, const Tensor& w, torch::Dtype dt, torch::Device dev,
                             rbk::SelectiveScanImpl impl) {
  std::vector<Tensor> x;
  for (const auto& t : in) x.push_back(t.to(dev, dt).detach().requires_grad_(true));
  const Tensor out = rbk::selective_scan(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], true, impl);
  (out * w.to(dev, out.scalar_type())).sum().backward();
  std::vector<Tensor> r{out.detach().cpu()};
  for (const auto& t : x) r.push_back(t.grad().cpu());
  return r;
}

// An accuracy check's inputs (fp64, CPU), the weights of its loss sum(out w), and the outputs and
// gradients of the fp64 and fp32 references (in kOutNames' order).
struct CheckCase {
  std::vector<Tensor> in;
  Tensor w;
  std::vector<Tensor> ref, f32;
};
CheckCase make_check_case(int64_t cb, int64_t cd, int64_t cl, int64_t N) {
  CheckCase c;
  c.in = draw(cb, cd, cl, N, torch::TensorOptions().dtype(torch::kDouble));
  c.w = torch::randn({cb, cd, cl}, torch::kDouble);
  c.ref = run_scan(c.in, c.w, torch::kDouble, torch::kCPU, rbk::SelectiveScanImpl::Reference);
  c.f32 = run_scan(c.in, c.w, torch::kFloat, torch::kCPU, rbk::SelectiveScanImpl::Reference);
  return c;
}
// Every output's relative L2 error against fp64 into row: the fp32 reference's, and the kernel's
// when `kernel` is not empty (printed with `label`). Returns the worst kernel / fp32-reference ratio.
double record_check_errors(json& row, const CheckCase& c, const std::vector<Tensor>& kernel, const char* label) {
  double worst_ratio = 0.0;
  for (int i = 0; i < 9; ++i) {
    const double e32 = rbk::relative_l2_error(c.f32[i], c.ref[i]);
    row[std::string("fp32_reference_rel_err_") + kOutNames[i]] = e32;
    if (kernel.empty()) continue;
    const double ek = rbk::relative_l2_error(kernel[i], c.ref[i]);
    row[std::string("kernel_rel_err_") + kOutNames[i]] = ek;
    worst_ratio = std::max(worst_ratio, ek / std::max(e32, 1e-12));
    std::fprintf(stderr, "[scan_kernel_speed] %s %-10s kernel %.2e  fp32 reference %.2e\n", label, kOutNames[i], ek, e32);
  }
  return worst_ratio;
}

#if defined(RBK_WITH_CUDA_KERNELS)
using rbk::timing_json;

// The keys of every timed row (rbk's variants and upstream's kernels alike): the medians, GB/s and
// the ratios against the minimal bytes model at the measured copy bandwidth; also printed.
json timed_row(const char* name, bool is_default, int64_t Bt, int64_t Dm, int64_t l, int64_t N, double copy_gbps,
               const rbk::TimingStats& tf, const rbk::TimingStats& tfb) {
  const Bytes b = bytes_model(Bt, Dm, l, N);
  const double pf = b.fwd_min / (copy_gbps * 1e9), pfb = b.fwd_bwd_min / (copy_gbps * 1e9);
  std::fprintf(stderr,
               "[scan_kernel_speed] %-14s%s B=%lld D=%lld L=%lld N=%lld: fwd %.1f us (%.0f GB/s, %.2fx predicted), "
               "fwd+bwd %.1f us (%.0f GB/s, %.2fx predicted %.1f us)\n",
               name, is_default ? "*" : " ", (long long)Bt, (long long)Dm, (long long)l, (long long)N, tf.median_s * 1e6,
               b.fwd_min / tf.median_s / 1e9, tf.median_s / pf, tfb.median_s * 1e6, b.fwd_bwd_min / tfb.median_s / 1e9,
               tfb.median_s / pfb, pfb * 1e6);
  return {{"status", "ok"}, {"fwd", timing_json(tf)}, {"fwd_bwd", timing_json(tfb)},
          {"bytes_min_fwd", b.fwd_min}, {"bytes_min_fwd_bwd", b.fwd_bwd_min},
          {"fwd_GBps", b.fwd_min / tf.median_s / 1e9}, {"fwd_bwd_GBps", b.fwd_bwd_min / tfb.median_s / 1e9},
          {"predicted_fwd_us", pf * 1e6}, {"predicted_fwd_bwd_us", pfb * 1e6},
          {"ratio_fwd", tf.median_s / pf}, {"ratio_fwd_bwd", tfb.median_s / pfb},
          {"tokens_per_s_fwd_bwd", Bt * l / tfb.median_s}};
}

// Every output finite (fully written: outputs start as NaN) and not all zero.
void check_outputs(std::initializer_list<Tensor> outputs, const char* what) {
  for (const Tensor& x : outputs) {
    if (!torch::isfinite(x).all().item<bool>()) throw std::runtime_error(std::string(what) + " output not finite / not fully written");
    if (!(x.abs().max().item<double>() > 0)) throw std::runtime_error(std::string(what) + " output is all zero");
  }
}

// Preallocated raw-launcher rig at one shape (fresh random inputs, poisoned outputs).
struct Rig {
  rbk::cuda::SelectiveScanTensors t;
  rbk::cuda::SelectiveScanParams p;
  Rig(int64_t Bt, int64_t Dm, int64_t L, int64_t N, rbk::cuda::SsVariant variant) {
    const auto o = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat);
    t = rbk::cuda::selective_scan_rig_tensors(draw(Bt, Dm, L, N, o), torch::randn({Bt, Dm, L}, o), torch::kCUDA, NAN);
    p = rbk::cuda::selective_scan_params(t, /*delta_softplus=*/true, variant);
  }
  void fwd() const {
    rbk::cuda::throw_on_cuda_error(rbk::cuda::launch_selective_scan_forward(p, at::cuda::getCurrentCUDAStream()), "scan fwd");
  }
  void bwd() const {
    rbk::cuda::throw_on_cuda_error(rbk::cuda::launch_selective_scan_backward(p, at::cuda::getCurrentCUDAStream()), "scan bwd");
  }
  void check() const {
    check_outputs({t.out, t.du, t.ddelta, t.dz, t.dA_part, t.dD_part, t.ddelta_bias_part, t.dB, t.dC}, "selective scan");
  }
};

// One untimed forward + backward whose outputs are checked (finite, fully written, non-zero), then
// the medians of the forward and of forward + backward. R: Rig or UpstreamRig.
template <typename R>
std::pair<rbk::TimingStats, rbk::TimingStats> check_and_time(const R& rig, int warmup, int repeats, cudaStream_t stream) {
  rig.fwd();
  rig.bwd();
  rbk::cuda::throw_on_cuda_error(cudaStreamSynchronize(stream), "check run");
  rig.check();
  return {rbk::cuda::time_cuda_events([&] { rig.fwd(); }, warmup, repeats, stream),
          rbk::cuda::time_cuda_events([&] { rig.fwd(); rig.bwd(); }, warmup, repeats, stream)};
}
#endif

#if defined(RBK_WITH_UPSTREAM_MAMBA)
// Upstream Mamba's kernels on preallocated arrays: inputs in draw()'s order (u, delta, A, B, C, D, z,
// delta_bias) as contiguous fp32 CUDA tensors, outputs poisoned with NaN.
struct UpstreamRig {
  std::vector<Tensor> in;
  Tensor dout, out, out_z, states, du, ddelta, dA, dB, dC, dD, dz, ddelta_bias;
  rbk::upstream_mamba::ScanArrays a;
  UpstreamRig(const std::vector<Tensor>& inputs, const Tensor& dout_) {
    for (const Tensor& x : inputs) in.push_back(x.to(torch::kCUDA, torch::kFloat).contiguous());
    dout = dout_.to(torch::kCUDA, torch::kFloat).contiguous();
    const Tensor &u = in[0], &A = in[2], &B = in[3];
    auto poisoned = [](const Tensor& like) { return torch::full_like(like, NAN); };
    const int64_t chunks = (u.size(2) + rbk::upstream_mamba::chunk_len() - 1) / rbk::upstream_mamba::chunk_len();
    out = poisoned(u);
    out_z = poisoned(u);
    states = torch::full({u.size(0), u.size(1), chunks, 2 * A.size(1)}, NAN, u.options());
    du = poisoned(u);
    ddelta = poisoned(u);
    dz = poisoned(u);
    dA = poisoned(A);
    dB = poisoned(B);
    dC = poisoned(B);
    dD = poisoned(in[5]);
    ddelta_bias = poisoned(in[7]);
    a.batch = u.size(0);
    a.dim = u.size(1);
    a.len = u.size(2);
    a.dstate = A.size(1);
    const float** src[] = {&a.u, &a.delta, &a.A, &a.B, &a.C, &a.D, &a.z, &a.delta_bias};
    for (int i = 0; i < 8; ++i) *src[i] = in[i].data_ptr<float>();
    a.dout = dout.data_ptr<float>();
    float** dst[] = {&a.out, &a.out_z, &a.chunk_states, &a.du, &a.ddelta, &a.dz, &a.dA, &a.dB, &a.dC, &a.dD, &a.ddelta_bias};
    Tensor* outputs[] = {&out, &out_z, &states, &du, &ddelta, &dz, &dA, &dB, &dC, &dD, &ddelta_bias};
    for (int i = 0; i < 11; ++i) *dst[i] = outputs[i]->data_ptr<float>();
  }
  void fwd() const {
    rbk::cuda::throw_on_cuda_error(rbk::upstream_mamba::forward(a, at::cuda::getCurrentCUDAStream()), "upstream mamba fwd");
  }
  void bwd() const {
    rbk::cuda::throw_on_cuda_error(rbk::upstream_mamba::backward(a, at::cuda::getCurrentCUDAStream()), "upstream mamba bwd");
  }
  void check() const { check_outputs({out_z, du, ddelta, dz, dA, dB, dC, dD, ddelta_bias}, "upstream mamba"); }
  // The gated output and the 8 gradients, in kOutNames' order.
  std::vector<Tensor> results() const {
    std::vector<Tensor> r;
    for (const Tensor& x : {out_z, du, ddelta, dA, dB, dC, dD, dz, ddelta_bias}) r.push_back(x.cpu());
    return r;
  }
};
#endif

}  // namespace

int main(int argc, char** argv) {
  rbk::ExperimentSpec spec{"scan_kernel_speed", {},
                           "Mamba-1 selective-scan CUDA kernel: forward and forward + backward time against a bytes "
                           "model at the measured copy bandwidth (issue 7 target: fwd + bwd within 2x)",
                           {}};
  spec.schema.add_int("batch", 1, 65535, "batch of the target point (issue 7: 8)")
      .add_int("dim", 1, 1 << 20, "channels Dm of the target point (issue 7: 1536)")
      .add_int("len", 1, 1 << 22, "sequence length of the target point (issue 7: 4096)")
      .add_int("dstate", 1, 16, "state size N (issue 7: 16; the kernel holds N <= 16)")
      .add_int_list("sweep_len", 1, 1 << 22, "sequence lengths of the sweep at (batch, dim)")
      .add_int("warmup", 0, 1000, "untimed calls before timing")
      .add_int("repeats", 1, 100000, "timed calls per point; the median is reported")
      .add_int("copy_bytes", 1 << 20, int64_t(1) << 34, "bytes of the device-to-device copy that sets the ceiling")
      .add_int("check_batch", 1, 64, "batch of the accuracy check against fp64")
      .add_int("check_dim", 1, 4096, "channels of the accuracy check")
      .add_int("check_len", 1, 1 << 16, "length of the accuracy check")
      .add_int("ref_len", 0, 1 << 16, "length at which the LibTorch reference is timed on the GPU (0: skip)")
      .add_int("ref_repeats", 1, 100, "timed calls of the GPU reference");
  // GPU-only (issue 16): without a device the run only checks the LibTorch reference against fp64
  // (tests/baselines/test_mamba.cpp checks that reference) with every kernel row skipped, and it
  // judges no claim; exit 77 (skipped) says so instead of a Passed test with nothing measured.
  spec.requires_cuda = true;

  return rbk::run_experiment(argc, argv, spec, [](const rbk::Config& cfg, rbk::ExperimentOutput& out) {
    const int64_t Bt = cfg.get_int("batch"), Dm = cfg.get_int("dim"), L = cfg.get_int("len"), N = cfg.get_int("dstate");
    out.summary["batch"] = Bt;
    out.summary["dim"] = Dm;
    out.summary["len"] = L;
    out.summary["dstate"] = N;
    const Bytes bm = bytes_model(Bt, Dm, L, N);
    out.summary["bytes_min_fwd"] = bm.fwd_min;
    out.summary["bytes_min_fwd_bwd"] = bm.fwd_bwd_min;
    out.summary["bytes_kernel_fwd_bwd"] = bm.fwd_bwd_kernel;

    // ---- accuracy check (every machine: the fp32 reference; with CUDA: the kernel too) ----
    {
      const int64_t cb = cfg.get_int("check_batch"), cd = cfg.get_int("check_dim"), cl = cfg.get_int("check_len");
      const CheckCase c = make_check_case(cb, cd, cl, N);
      json row = {{"path", "check"}, {"batch", cb}, {"dim", cd}, {"len", cl}, {"dstate", N}, {"status", "ok"}};
      std::vector<Tensor> ker;
      const bool gpu = rbk::cuda_available() && rbk::selective_scan_kernel_eligible(torch::empty({1, 1, 1}, torch::kCUDA),
                                                                                      torch::empty({1, N}));
      if (gpu) ker = run_scan(c.in, c.w, torch::kFloat, torch::kCUDA, rbk::SelectiveScanImpl::Kernel);
      const double worst_ratio = record_check_errors(row, c, ker, "check");
      if (gpu) {
        out.summary["check_kernel_rel_err_out"] = row["kernel_rel_err_out"];
        out.summary["check_worst_kernel_over_fp32_reference"] = worst_ratio;
      } else {
        row["kernel"] = "skipped: no CUDA device";
      }
      out.summary["check_fp32_reference_rel_err_out"] = row["fp32_reference_rel_err_out"];
      out.rows.push_back(row);
    }

#if defined(RBK_WITH_CUDA_KERNELS)
    if (rbk::cuda_available()) {
      const int warmup = static_cast<int>(cfg.get_int("warmup")), repeats = static_cast<int>(cfg.get_int("repeats"));
      const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
      const double copy_gbps = rbk::cuda::measure_copy_bandwidth_gbps(cfg.get_int("copy_bytes"), 3, 20, stream);
      out.summary["copy_bandwidth_GBps"] = copy_gbps;
      out.rows.push_back({{"path", "copy_bandwidth"}, {"bytes", cfg.get_int("copy_bytes")}, {"GBps", copy_gbps}, {"status", "ok"}});
      std::fprintf(stderr, "[scan_kernel_speed] device-to-device copy: %.0f GB/s (read + write)\n", copy_gbps);

      std::vector<int64_t> lens = cfg.get_int_list("sweep_len");
      if (std::find(lens.begin(), lens.end(), L) == lens.end()) lens.push_back(L);
      // Every variant at every length, side by side; the unprefixed summary keys and sweep arrays
      // are the default's (the variant SsVariant::Auto resolves to at (batch, dim, len) on this GPU).
      using rbk::cuda::SsVariant;
      struct Variant {
        SsVariant id;
        const char* name;
      };
      auto variant = [](SsVariant v) { return Variant{v, rbk::cuda::selective_scan_variant_name(v)}; };
      const Variant variants[] = {variant(SsVariant::Sequential), variant(SsVariant::Runs)};
      constexpr int kNumVariants = 2;
      constexpr int kSequentialIndex = 0;  // the speedups are relative to the first kernel
      std::vector<double> a_len, a_fwd, a_fb, a_ratio, a_var_fwd[kNumVariants], a_var_fb[kNumVariants];
      double target_fb_us[kNumVariants] = {};
      for (const int64_t l : lens) {
        rbk::cuda::SelectiveScanParams probe;
        probe.batch = Bt;
        probe.dim = Dm;
        probe.len = l;
        probe.dstate = N;
        const SsVariant default_id = rbk::cuda::selective_scan_resolve_variant(probe);
        a_len.push_back(static_cast<double>(l));
        a_fwd.push_back(NAN);
        a_fb.push_back(NAN);
        a_ratio.push_back(NAN);
        for (int vi = 0; vi < kNumVariants; ++vi) {
          const Variant& var = variants[vi];
          const std::string pre = std::string(var.name) + "_";
          const bool is_default = var.id == default_id;
          json row = {{"path", "scan_cuda"}, {"variant", var.name}, {"default", is_default}, {"batch", Bt},
                      {"dim", Dm}, {"len", l}, {"dstate", N}};
          a_var_fwd[vi].push_back(NAN);  // replaced below when the point runs
          a_var_fb[vi].push_back(NAN);
          try {
            const Rig rig(Bt, Dm, l, N, var.id);
            const auto timed = check_and_time(rig, warmup, repeats, stream);  // no structured binding: put() captures them
            const rbk::TimingStats &tf = timed.first, &tfb = timed.second;
            const Bytes b = bytes_model(Bt, Dm, l, N);
            const double kb = var.id == SsVariant::Sequential ? b.fwd_bwd_kernel : b.fwd_bwd_kernel_runs;
            const double pf = b.fwd_min / (copy_gbps * 1e9), pfb = b.fwd_bwd_min / (copy_gbps * 1e9);
            row.update(timed_row(var.name, is_default, Bt, Dm, l, N, copy_gbps, tf, tfb));
            row.update({{"bytes_kernel_fwd_bwd", kb}, {"fwd_bwd_kernel_bytes_GBps", kb / tfb.median_s / 1e9},
                        {"ratio_fwd_bwd_kernel_bytes", tfb.median_s / (kb / (copy_gbps * 1e9))}});
            a_var_fwd[vi].back() = tf.median_s * 1e6;
            a_var_fb[vi].back() = tfb.median_s * 1e6;
            if (is_default) {
              a_fwd.back() = tf.median_s * 1e6;
              a_fb.back() = tfb.median_s * 1e6;
              a_ratio.back() = tfb.median_s / pfb;
            }
            if (l == L) {
              target_fb_us[vi] = tfb.median_s * 1e6;
              auto put = [&](const std::string& k) {
                out.summary[k + "fwd_us"] = tf.median_s * 1e6;
                out.summary[k + "fwd_bwd_us"] = tfb.median_s * 1e6;
                out.summary[k + "fwd_GBps"] = row["fwd_GBps"];
                out.summary[k + "fwd_bwd_GBps"] = row["fwd_bwd_GBps"];
                out.summary[k + "ratio_fwd"] = tf.median_s / pf;
                out.summary[k + "ratio_fwd_bwd"] = tfb.median_s / pfb;
                out.summary[k + "ratio_fwd_bwd_kernel_bytes"] = row["ratio_fwd_bwd_kernel_bytes"];
              };
              put(pre);
              if (is_default) put("");
              if (is_default) {
                out.summary["default_variant"] = var.name;
                out.summary["predicted_fwd_us"] = pf * 1e6;
                out.summary["predicted_fwd_bwd_us"] = pfb * 1e6;
                out.summary["target_fwd_bwd_within_2x"] = tfb.median_s / pfb <= 2.0;
              }
            }
          } catch (const std::exception& e) {
            row["status"] = std::string("failed: ") + e.what();
            std::fprintf(stderr, "[scan_kernel_speed] %s L=%lld failed: %s\n", var.name, (long long)l, e.what());
          }
          out.rows.push_back(row);
        }
      }
      for (int vi = 0; vi < kNumVariants; ++vi) {
        if (vi != kSequentialIndex && target_fb_us[vi] > 0 && target_fb_us[kSequentialIndex] > 0)
          out.summary[std::string(variants[vi].name) + "_speedup_fwd_bwd_vs_sequential"] =
              target_fb_us[kSequentialIndex] / target_fb_us[vi];
        const std::string nm = variants[vi].name;
        out.arrays.push_back(rbk::make_array("sweep/" + nm + "_fwd_us", a_var_fwd[vi], "us",
                                             "selective-scan CUDA forward, " + nm + " variant, median"));
        out.arrays.push_back(rbk::make_array("sweep/" + nm + "_fwd_bwd_us", a_var_fb[vi], "us",
                                             "forward + backward, " + nm + " variant, median"));
      }
      out.arrays.push_back(rbk::make_array("sweep/len", a_len, "1", "sequence length of each sweep point"));
      out.arrays.push_back(rbk::make_array("sweep/fwd_us", a_fwd, "us", "selective-scan CUDA forward, default variant, median"));
      out.arrays.push_back(rbk::make_array("sweep/fwd_bwd_us", a_fb, "us", "forward + backward, default variant, median"));
      out.arrays.push_back(rbk::make_array("sweep/ratio_fwd_bwd", a_ratio, "1",
                                           "measured / predicted (minimal bytes at copy bandwidth), fwd + bwd, default variant"));

      // ---- upstream Mamba's own kernels, same inputs and bytes model (when built: upstream_mamba_scan.h) ----
#if defined(RBK_WITH_UPSTREAM_MAMBA)
      {
        namespace um = rbk::upstream_mamba;
        out.summary["upstream_mamba_commit"] = um::source_commit();
        // Accuracy against the fp64 reference at the check's batch and channels and upstream's
        // shortest built length, next to the fp32 reference's own error (as the check row above).
        {
          const int64_t cb = cfg.get_int("check_batch"), cd = cfg.get_int("check_dim"), cl = um::chunk_len();
          const CheckCase c = make_check_case(cb, cd, cl, N);
          json row = {{"path", "upstream_mamba_check"}, {"batch", cb}, {"dim", cd}, {"len", cl}, {"dstate", N},
                      {"source_commit", um::source_commit()}};
          try {
            UpstreamRig rig(c.in, c.w);
            rig.fwd();
            rig.bwd();
            rbk::cuda::throw_on_cuda_error(cudaStreamSynchronize(stream), "upstream check run");
            const double worst_ratio = record_check_errors(row, c, rig.results(), "upstream check");
            row["status"] = "ok";
            out.summary["upstream_mamba_check_rel_err_out"] = row["kernel_rel_err_out"];
            out.summary["upstream_mamba_check_worst_kernel_over_fp32_reference"] = worst_ratio;
          } catch (const std::exception& e) {
            row["status"] = std::string("failed: ") + e.what();
          }
          out.rows.push_back(row);
        }
        std::vector<double> u_fwd, u_fb;
        std::vector<int64_t> not_built;
        for (const int64_t l : lens) {
          json row = {{"path", "upstream_mamba"}, {"batch", Bt}, {"dim", Dm}, {"len", l}, {"dstate", N},
                      {"source_commit", um::source_commit()}};
          u_fwd.push_back(NAN);
          u_fb.push_back(NAN);
          if (!um::supports(l, N)) {  // no row: nothing was run (a row that is not ok marks the result partial)
            not_built.push_back(l);
            continue;
          }
          try {
            const auto o = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat);
            const UpstreamRig rig(draw(Bt, Dm, l, N, o), torch::randn({Bt, Dm, l}, o));
            const auto timed = check_and_time(rig, warmup, repeats, stream);
            const rbk::TimingStats &tf = timed.first, &tfb = timed.second;
            row.update(timed_row("upstream_mamba", false, Bt, Dm, l, N, copy_gbps, tf, tfb));
            u_fwd.back() = tf.median_s * 1e6;
            u_fb.back() = tfb.median_s * 1e6;
            if (l == L) {
              out.summary["upstream_mamba_fwd_us"] = tf.median_s * 1e6;
              out.summary["upstream_mamba_fwd_bwd_us"] = tfb.median_s * 1e6;
              out.summary["upstream_mamba_ratio_fwd"] = row["ratio_fwd"];
              out.summary["upstream_mamba_ratio_fwd_bwd"] = row["ratio_fwd_bwd"];
              if (out.summary.contains("fwd_bwd_us")) {
                out.summary["speedup_fwd_vs_upstream_mamba"] = tf.median_s * 1e6 / out.summary["fwd_us"].get<double>();
                out.summary["speedup_fwd_bwd_vs_upstream_mamba"] =
                    tfb.median_s * 1e6 / out.summary["fwd_bwd_us"].get<double>();
              }
            }
          } catch (const std::exception& e) {
            row["status"] = std::string("failed: ") + e.what();
            std::fprintf(stderr, "[scan_kernel_speed] upstream_mamba L=%lld failed: %s\n", (long long)l, e.what());
          }
          out.rows.push_back(row);
        }
        if (!not_built.empty()) {
          out.summary["upstream_mamba_lengths_not_built"] = not_built;
          out.summary["upstream_mamba_lengths_not_built_why"] =
              "only upstream's block configuration for lengths that are multiples of " + std::to_string(um::chunk_len()) +
              " is built (upstream_mamba_scan.h)";
        }
        out.arrays.push_back(rbk::make_array("sweep/upstream_mamba_fwd_us", u_fwd, "us",
                                             "upstream Mamba's selective-scan forward kernel, median (NaN: not built for that length)"));
        out.arrays.push_back(rbk::make_array("sweep/upstream_mamba_fwd_bwd_us", u_fb, "us",
                                             "upstream Mamba's forward + backward kernels, median (NaN: not built for that length)"));
      }
#else
      out.summary["upstream_mamba"] = "not built (configure with -DRBK_UPSTREAM_MAMBA_SRC=<checkout of state-spaces/mamba>)";
#endif

      // ---- the LibTorch reference on the GPU, for scale ----
      const int64_t rl = cfg.get_int("ref_len");
      if (rl > 0) {
        json row = {{"path", "reference_gpu"}, {"batch", Bt}, {"dim", Dm}, {"len", rl}, {"dstate", N}};
        try {
          const auto o = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat);
          auto in = draw(Bt, Dm, rl, N, o);
          for (auto& t : in) t.requires_grad_(true);
          const Tensor w = torch::randn({Bt, Dm, rl}, o);
          auto call = [&](bool bwd) {
            const Tensor y = rbk::selective_scan(in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], true,
                                                 rbk::SelectiveScanImpl::Reference);
            if (bwd) (y * w).sum().backward();
          };
          const int rr = static_cast<int>(cfg.get_int("ref_repeats"));
          const auto tf = rbk::cuda::time_cuda_events([&] { torch::NoGradGuard ng; call(false); }, 1, rr, stream);
          const auto tfb = rbk::cuda::time_cuda_events([&] { call(true); }, 1, rr, stream);
          Rig rig(Bt, Dm, rl, N, rbk::cuda::SsVariant::Auto);
          const auto kf = rbk::cuda::time_cuda_events([&] { rig.fwd(); rig.bwd(); }, warmup, repeats, stream);
          row.update({{"status", "ok"}, {"fwd", timing_json(tf)}, {"fwd_bwd", timing_json(tfb)},
                      {"kernel_fwd_bwd", timing_json(kf)}, {"speedup_kernel_vs_reference_fwd_bwd", tfb.median_s / kf.median_s}});
          out.summary["reference_gpu_len"] = rl;
          out.summary["reference_gpu_fwd_us"] = tf.median_s * 1e6;
          out.summary["reference_gpu_fwd_bwd_us"] = tfb.median_s * 1e6;
          out.summary["speedup_kernel_vs_reference_fwd_bwd"] = tfb.median_s / kf.median_s;
          std::fprintf(stderr, "[scan_kernel_speed] reference on GPU at L=%lld: fwd %.0f us, fwd+bwd %.0f us (kernel %.1f us)\n",
                       (long long)rl, tf.median_s * 1e6, tfb.median_s * 1e6, kf.median_s * 1e6);
        } catch (const std::exception& e) {
          row["status"] = std::string("failed: ") + e.what();
        }
        out.rows.push_back(row);
      }
      return;
    }
#endif
    for (const std::string p : {"copy_bandwidth", "scan_cuda", "reference_gpu"})
      out.rows.push_back({{"path", p}, {"batch", Bt}, {"dim", Dm}, {"len", L}, {"status", "skipped: no CUDA device"}});
    out.summary["gpu"] = "skipped: no CUDA device";
  });
}
