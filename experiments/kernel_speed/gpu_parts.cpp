// exp_kernel_speed's GPU parts other than the same-work comparison (gpu_parts.h).
#include "gpu_parts.h"

#if defined(RBK_WITH_CUDA_KERNELS)
#include "accuracy.h"
#include "cuda_rigs.h"

#include "rbk/bk_core.h"
#include "rbk/timing.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace rbk::kernel_speed {
namespace {

using torch::Tensor;

constexpr double kBytesFwd = 12.0;  // per position: main.cpp's bytes model
constexpr double kBytesBwd = 16.0;
constexpr double kBytesFwdBwd = kBytesFwd + kBytesBwd;

// One point of the sweep over N, timed after its outputs were checked.
struct SweepPoint {
  double n = 0, fwd_us = 0, fwd_bwd_us = 0, fwd_bwd_window_us = 0, compat_us = NAN, pct_copy = 0;
  double best_scan_us = INFINITY, best_window_us = INFINITY;
};

// Checks the stable kernels at (SB, n) (against fp64 where SB n <= oracle_max; elsewhere finite and
// non-trivial), then times them and the compat kernel (n <= compat_max_n); appends the row.
SweepPoint measure_sweep_point(const GpuPlan& plan, int64_t SB, int64_t n, int64_t oracle_max, int64_t compat_max_n,
                               bool is_large, rbk::ExperimentOutput& out) {
  const int warmup = plan.warmup, repeats = plan.repeats;
  const double copy_gbps = plan.copy_gbps;
  StableRig rig(SB, n, false);
  rig.fwd(current_stream());
  rig.bwd(current_stream());
  rbk::cuda::throw_on_cuda_error(cudaDeviceSynchronize(), "sweep check run");
  const Accuracy chk = accuracy(rig.out_f, torch::zeros({1}));  // finiteness / zero fraction only
  if (!(chk.finite_fraction == 1.0) || !(chk.zero_fraction < 1.0))
    throw std::runtime_error("stable output not finite and non-trivial at N = " + std::to_string(n));
  json extra = json::object();
  if (SB * n <= oracle_max) {
    const Tensor vc = rig.v.cpu();
    const rbk::Tridiagonal h64 = rbk::laplacian_with_potential(vc.to(torch::kDouble));
    const Tensor ref = torch::view_as_real(rbk::bk_core_diagonal(h64, kModelZ)).contiguous();
    const Tensor gref = rbk::bk_core_diagonal_vjp_exact(
        h64, kModelZ, torch::view_as_complex(rig.gfeat.cpu().to(torch::kDouble).contiguous()), rbk::BkContext::Bidirectional);
    extra["rel_err_vs_fp64"] = accuracy(rig.out_f, ref).rel_err;
    extra["grad_rel_err_vs_fp64"] = accuracy(rig.out_g, gref).rel_err;
    extra["grad_window_rel_err_vs_fp64"] = rig.checked_window_backward(gref).rel_err;
    for (const FwdVariant& fv : fwd_variants())
      extra["fwd_" + fv.name + "_rel_err_vs_fp64"] = rig.checked_variant(fv, ref).rel_err;
  } else {
    for (const FwdVariant& fv : fwd_variants()) (void)rig.checked_variant(fv, Tensor());
    (void)rig.checked_window_backward(Tensor());
  }
  const auto tf = time_cuda([&] { rig.fwd(current_stream()); }, warmup, repeats);
  const auto tfb = time_cuda([&] { rig.fwd(current_stream()); rig.bwd(current_stream()); }, warmup, repeats);
  const auto tfbw = time_cuda([&] { rig.fwd(current_stream()); rig.bwd_window(current_stream()); }, warmup, repeats);
  const double gbps = kBytesFwd * SB * n / tf.median_s / 1e9;
  json row = {{"path", "stable_cuda_sweep"}, {"inputs", "laplacian"}, {"batch", SB}, {"n", n}, {"status", "ok"},
              {"fwd_algorithm", algo_name(rig.default_algorithm())},
              {"fwd", timing_json(tf)}, {"fwd_bwd", timing_json(tfb)}, {"fwd_bwd_window", timing_json(tfbw)},
              {"fwd_GBps", gbps},
              {"fwd_pct_copy_bw", 100.0 * gbps / copy_gbps},
              {"fwd_bwd_GBps", kBytesFwdBwd * SB * n / tfb.median_s / 1e9},
              {"fwd_bwd_pct_copy_bw", 100.0 * kBytesFwdBwd * SB * n / tfb.median_s / 1e9 / copy_gbps},
              {"fwd_tokens_per_s", SB * n / tf.median_s}};
  SweepPoint p;
  p.n = static_cast<double>(n);
  p.fwd_us = tf.median_s * 1e6;
  p.fwd_bwd_us = tfb.median_s * 1e6;
  p.fwd_bwd_window_us = tfbw.median_s * 1e6;
  p.pct_copy = 100.0 * gbps / copy_gbps;
  for (const FwdVariant& fv : fwd_variants()) {
    const auto tv = time_cuda([&] { rig.fwd_variant(fv, current_stream()); }, warmup, repeats);
    row["fwd_" + fv.name + "_us"] = tv.median_s * 1e6;
    row["fwd_" + fv.name + "_pct_copy_bw"] = 100.0 * kBytesFwd * SB * n / tv.median_s / 1e9 / copy_gbps;
    double& best = fv.algorithm == Algo::Scan ? p.best_scan_us : p.best_window_us;
    best = std::min(best, tv.median_s * 1e6);
  }
  row.update(extra);
  if (n <= compat_max_n) {
    const rbk::Tridiagonal hb = draw_benchmark_inputs(SB, n);
    CompatRig crig(hb, kBenchmarkZ);
    const auto tc = time_cuda([&] { crig.run(current_stream()); }, 1, 3);
    p.compat_us = tc.median_s * 1e6;
    row["compat_triton_like_fwd"] = timing_json(tc);
    row["speedup_stable_vs_compat"] = tc.median_s / tf.median_s;
  }
  out.rows.push_back(row);
  if (is_large) {
    out.summary["large_batch"] = SB;
    out.summary["large_n"] = n;
    out.summary["stable_fwd_algorithm_large"] = algo_name(rig.default_algorithm());
    out.summary["stable_fwd_us_large"] = p.fwd_us;
    out.summary["stable_fwd_bwd_us_large"] = p.fwd_bwd_us;
    out.summary["stable_fwd_bwd_window_us_large"] = p.fwd_bwd_window_us;
    // Issue 25's target: forward + backward within 2x of the forward alone.
    out.summary["stable_fwd_bwd_over_fwd_large"] = tfb.median_s / tf.median_s;
    out.summary["stable_fwd_bwd_window_over_fwd_large"] = tfbw.median_s / tf.median_s;
    // The least fwd + bwd could take with this forward: the backward's 16 B per position moved at the
    // copy bandwidth measured in this run (the bytes model above), over the forward's time. The
    // issue-25 target (2x) is out of reach of any backward when this exceeds 2.
    out.summary["stable_fwd_bwd_floor_over_fwd_large"] = 1.0 + kBytesBwd * SB * n / (copy_gbps * 1e9) / tf.median_s;
    out.summary["stable_fwd_GBps_large"] = gbps;
    out.summary["stable_fwd_pct_copy_bw_large"] = p.pct_copy;
    out.summary["stable_scan_fwd_us_large"] = p.best_scan_us;
    out.summary["stable_scan_fwd_pct_copy_bw_large"] = 100.0 * kBytesFwd * SB * n / (p.best_scan_us * 1e-6) / 1e9 / copy_gbps;
    out.summary["stable_window_fwd_us_large"] = p.best_window_us;
    if (n <= compat_max_n) out.summary["compat_triton_like_fwd_us_large"] = p.compat_us;
  }
  std::fprintf(stderr, "[kernel_speed] sweep B=%lld N=%lld: fwd (%s) %.2f us (%.0f GB/s, %.1f%% of copy), scan %.2f, window %.2f, fwd+bwd %.2f us (window backward %.2f), compat %.1f us\n",
               (long long)SB, (long long)n, algo_name(rig.default_algorithm()), p.fwd_us, gbps, p.pct_copy, p.best_scan_us,
               p.best_window_us, p.fwd_bwd_us, p.fwd_bwd_window_us, p.compat_us);
  return p;
}

}  // namespace

double measure_floors(const rbk::Config& cfg, int warmup, int repeats, rbk::ExperimentOutput& out) {
  const int64_t copy_bytes = cfg.get_int("copy_bytes");
  const double copy_gbps = copy_bandwidth_gbps(copy_bytes, 3, 20);
  out.summary["copy_bandwidth_GBps"] = copy_gbps;
  out.summary["copy_bytes"] = copy_bytes;
  std::fprintf(stderr, "[kernel_speed] device-to-device copy: %.0f GB/s (read + write)\n", copy_gbps);
  const TwoTimings te = time_both(
      [](cudaStream_t st) { rbk::cuda::throw_on_cuda_error(rbk::cuda::launch_empty_kernel(st), "empty"); }, warmup, repeats);
  out.rows.push_back({{"path", "empty_kernel"}, {"status", "ok"}, {"timing", te.to_json()}, {"median_us", te.single.median_s * 1e6}});
  out.summary["empty_kernel_us"] = te.single.median_s * 1e6;
  out.summary["empty_kernel_graph_us"] = te.graph.median_s * 1e6;
  std::fprintf(stderr, "[kernel_speed] empty kernel: %.2f us single launch (launch floor of event timing), %.2f us in a graph\n",
               te.single.median_s * 1e6, te.graph.median_s * 1e6);
  return copy_gbps;
}

// The paper point on the model's inputs: every stable path, its time and its correctness.
void run_paper_point(const GpuPlan& plan, rbk::ExperimentOutput& out) {
  const int64_t B = plan.batch, N = plan.n;
  const int warmup = plan.warmup, repeats = plan.repeats;
  for (const bool causal : {false, true}) {
    StableRig rig(B, N, causal);
    rig.fwd(current_stream());
    rig.bwd(current_stream());
    rbk::cuda::throw_on_cuda_error(cudaDeviceSynchronize(), "stable check run");
    const rbk::BkContext ctx = causal ? rbk::BkContext::Causal : rbk::BkContext::Bidirectional;
    const Tensor vc = rig.v.cpu();
    const rbk::Tridiagonal h64 = rbk::laplacian_with_potential(vc.to(torch::kDouble));
    const Tensor ref = torch::view_as_real(rbk::bk_core_diagonal(h64, kModelZ, rbk::BkForwardMode::Stable, ctx)).contiguous();
    const Tensor gref = rbk::bk_core_diagonal_vjp_exact(
        h64, kModelZ, torch::view_as_complex(rig.gfeat.cpu().to(torch::kDouble).contiguous()), ctx);
    const Accuracy af = accuracy(rig.out_f, ref), ag = accuracy(rig.out_g, gref);
    if (!(af.finite_fraction == 1.0) || !(af.zero_fraction < 1.0))
      throw std::runtime_error("stable kernel output not finite and non-trivial; refusing to time it");
    const std::string tag = causal ? "stable_causal" : "stable";
    const TwoTimings tf = time_both([&](cudaStream_t st) { rig.fwd(st); }, warmup, repeats);
    const TwoTimings tfb = time_both([&](cudaStream_t st) { rig.fwd(st); rig.bwd(st); }, warmup, repeats);
    // Every forward algorithm and shape, each checked against the oracle before it is timed.
    for (const FwdVariant& fv : fwd_variants()) {
      const Accuracy av = rig.checked_variant(fv, ref);
      const TwoTimings tv = time_both([&](cudaStream_t st) { rig.fwd_variant(fv, st); }, warmup, repeats);
      json row = {{"path", tag + "_cuda_fwd_" + fv.name}, {"inputs", "laplacian"}, {"batch", B}, {"n", N}, {"status", "ok"},
                  {"timing", tv.to_json()}, {"median_us", tv.single.median_s * 1e6}, {"graph_median_us", tv.graph.median_s * 1e6}};
      row.update(accuracy_json(av));
      out.rows.push_back(row);
      out.summary[tag + "_fwd_" + fv.name + "_us"] = tv.single.median_s * 1e6;
      out.summary[tag + "_fwd_" + fv.name + "_graph_us"] = tv.graph.median_s * 1e6;
      out.summary[tag + "_fwd_" + fv.name + "_rel_err"] = av.rel_err;
      std::fprintf(stderr, "[kernel_speed] %s fwd %-14s: %.2f us single, %.2f us graph, err %.2e\n", tag.c_str(),
                   fv.name.c_str(), tv.single.median_s * 1e6, tv.graph.median_s * 1e6, av.rel_err);
    }
    json rf = {{"path", tag + "_cuda_fwd"}, {"algorithm", algo_name(rig.default_algorithm())}, {"inputs", "laplacian"},
               {"batch", B}, {"n", N}, {"status", "ok"}, {"timing", tf.to_json()}, {"median_us", tf.single.median_s * 1e6},
               {"graph_median_us", tf.graph.median_s * 1e6}, {"GBps", kBytesFwd * B * N / tf.single.median_s / 1e9},
               {"tokens_per_s", B * N / tf.single.median_s}};
    rf.update(accuracy_json(af));
    json rb = {{"path", tag + "_cuda_fwd_bwd"}, {"algorithm", algo_name(rig.default_algorithm())}, {"inputs", "laplacian"},
               {"batch", B}, {"n", N}, {"status", "ok"}, {"timing", tfb.to_json()}, {"median_us", tfb.single.median_s * 1e6},
               {"graph_median_us", tfb.graph.median_s * 1e6}, {"GBps", kBytesFwdBwd * B * N / tfb.single.median_s / 1e9},
               {"grad_rel_err_vs_fp64", ag.rel_err}, {"grad_finite_fraction", ag.finite_fraction}};
    out.rows.push_back(rf);
    out.rows.push_back(rb);
    out.summary[tag + "_fwd_algorithm"] = algo_name(rig.default_algorithm());
    out.summary[tag + "_fwd_us"] = tf.single.median_s * 1e6;
    out.summary[tag + "_fwd_graph_us"] = tf.graph.median_s * 1e6;
    out.summary[tag + "_fwd_bwd_us"] = tfb.single.median_s * 1e6;
    out.summary[tag + "_fwd_bwd_graph_us"] = tfb.graph.median_s * 1e6;
    out.summary[tag + "_fwd_rel_err"] = af.rel_err;
    out.summary[tag + "_grad_rel_err"] = ag.rel_err;
    if (!causal) {
      out.summary["stable_zero_fraction"] = af.zero_fraction;
      out.summary["tokens_per_s_stable_fwd"] = B * N / tf.single.median_s;
    }
    std::fprintf(stderr, "[kernel_speed] %s (%s) B=%lld N=%lld: fwd %.2f us (graph %.2f, err %.2e), fwd+bwd %.2f us (graph %.2f, grad err %.2e)\n",
                 tag.c_str(), algo_name(rig.default_algorithm()), (long long)B, (long long)N, tf.single.median_s * 1e6,
                 tf.graph.median_s * 1e6, af.rel_err, tfb.single.median_s * 1e6, tfb.graph.median_s * 1e6, ag.rel_err);
  }
  {
    // Through the LibTorch entry (allocation + launch), as a model layer would call it.
    const Tensor v = torch::randn({B, N}, torch::TensorOptions().device(torch::kCUDA));
    const auto t = time_cuda([&] { (void)rbk::cuda::bk_core_features_cuda(v, kModelZ, rbk::BkContext::Bidirectional); }, warmup, repeats);
    out.rows.push_back({{"path", "stable_cuda_torch_entry_fwd"}, {"inputs", "laplacian"}, {"batch", B}, {"n", N},
                        {"status", "ok"}, {"timing", timing_json(t)}, {"median_us", t.median_s * 1e6}});
    out.summary["stable_torch_entry_fwd_us"] = t.median_s * 1e6;
  }
}

// The Triton-like compat kernel and upstream's literal vmap path on the benchmark's inputs and on
// the model's.
void run_compat(const GpuPlan& plan, rbk::ExperimentOutput& out) {
  const int64_t B = plan.batch, N = plan.n;
  const int warmup = plan.warmup, repeats = plan.repeats;
  // Compat Triton-like kernel and vmap baseline on the benchmark's inputs and on the model's.
  struct InputSet {
    std::string name;
    rbk::Tridiagonal h;
    c10::complex<double> z;
  };
  std::vector<InputSet> sets;
  sets.push_back({"benchmark_inputs", draw_benchmark_inputs(B, N), kBenchmarkZ});
  sets.push_back({"laplacian", rbk::laplacian_with_potential(torch::randn({B, N})), kModelZ});
  for (const auto& s : sets) {
    const Tensor ref = oracle_features(s.h, s.z, rbk::BkContext::Bidirectional);
    const bool ref_ok = torch::isfinite(ref).all().item<bool>();
    CompatRig rig(s.h, s.z);
    rig.run(current_stream());
    rbk::cuda::throw_on_cuda_error(cudaDeviceSynchronize(), "compat check run");
    const Accuracy ac = accuracy(rig.out, ref);
    const TwoTimings tcc = time_both([&](cudaStream_t st) { rig.run(st); }, std::min(warmup, 3),
                                     std::max(3, std::min(repeats, 20)), 3);
    const rbk::TimingStats& tc = tcc.single;
    json rc = {{"path", "compat_triton_like_cuda_fwd"}, {"inputs", s.name}, {"batch", B}, {"n", N}, {"status", "ok"},
               {"z", {s.z.real(), s.z.imag()}}, {"timing", tcc.to_json()}, {"median_us", tc.median_s * 1e6},
               {"graph_median_us", tcc.graph.median_s * 1e6}, {"oracle_finite", ref_ok}};
    rc.update(accuracy_json(ac));
    out.rows.push_back(rc);
    out.summary["compat_triton_like_rel_err_" + s.name] = ac.rel_err;
    out.summary["compat_triton_like_zero_fraction_" + s.name] = ac.zero_fraction;
    if (s.name == "benchmark_inputs") {
      out.summary["compat_triton_like_fwd_us"] = tc.median_s * 1e6;
      out.summary["compat_triton_like_fwd_graph_us"] = tcc.graph.median_s * 1e6;
    }
    std::fprintf(stderr, "[kernel_speed] compat triton-like (%s): %.1f us, rel err %.3g, zeros %.4f\n", s.name.c_str(),
                 tc.median_s * 1e6, ac.rel_err, ac.zero_fraction);

    // Upstream's literal vmap path (native complex ops; vmap_native_baseline.h) on the same set,
    // for the compat face's correctness columns; it is timed in the same-work section.
    const rbk::Tridiagonal hc{s.h.diag.cuda(), s.h.upper.cuda(), s.h.lower.cuda()};
    const Accuracy av = accuracy(vmap_native_features(hc, s.z, VmapRecurrence::UpstreamContinuants), ref);
    json rv = {{"path", "vmap_baseline_fwd"}, {"recurrence", to_string(VmapRecurrence::UpstreamContinuants)},
               {"inputs", s.name}, {"batch", B}, {"n", N}, {"status", "ok"}, {"z", {s.z.real(), s.z.imag()}},
               {"timing", "same_work rows (same_work_vmap_literal_fwd)"}};
    rv.update(accuracy_json(av));
    out.rows.push_back(rv);
    out.summary["vmap_baseline_rel_err_" + s.name] = av.rel_err;
    out.summary["vmap_baseline_zero_fraction_" + s.name] = av.zero_fraction;
    std::fprintf(stderr, "[kernel_speed] vmap literal (%s): rel err %.3g, zeros %.4f\n", s.name.c_str(), av.rel_err,
                 av.zero_fraction);
  }
}

// The sweep over N at sweep_batch (with large_n, the bandwidth point, added if absent).
void run_sweep(const rbk::Config& cfg, const GpuPlan& plan, rbk::ExperimentOutput& out) {
  const int64_t SB = cfg.get_int("sweep_batch");
  const int64_t oracle_max = cfg.get_int("oracle_max_elems"), compat_max_n = cfg.get_int("compat_max_n");
  std::vector<int64_t> sweep = cfg.get_int_list("sweep_n");
  const int64_t large_n = cfg.get_int("large_n");
  if (std::find(sweep.begin(), sweep.end(), large_n) == sweep.end()) sweep.push_back(large_n);
  std::vector<SweepPoint> points;
  for (size_t i = 0; i < sweep.size(); ++i) {
    std::fprintf(stderr, "[kernel_speed] sweep N=%lld starting (point %zu of %zu)\n", (long long)sweep[i], i + 1, sweep.size());
    points.push_back(measure_sweep_point(plan, SB, sweep[i], oracle_max, compat_max_n, sweep[i] == large_n, out));
  }
  auto column = [&points](double SweepPoint::*field) {
    std::vector<double> v;
    for (const SweepPoint& p : points) v.push_back(p.*field);
    return v;
  };
  out.arrays.push_back(rbk::make_array("sweep/n", column(&SweepPoint::n), "1", "sequence length N of each sweep point"));
  out.arrays.push_back(rbk::make_array("sweep/stable_fwd_us", column(&SweepPoint::fwd_us), "us",
                                       "stable CUDA forward (default algorithm), median"));
  out.arrays.push_back(rbk::make_array("sweep/stable_scan_fwd_us", column(&SweepPoint::best_scan_us), "us",
                                       "scan forward, faster block shape, median"));
  out.arrays.push_back(rbk::make_array("sweep/stable_window_fwd_us", column(&SweepPoint::best_window_us), "us",
                                       "window forward, faster positions-per-thread, median"));
  out.arrays.push_back(rbk::make_array("sweep/stable_fwd_bwd_us", column(&SweepPoint::fwd_bwd_us), "us",
                                       "stable CUDA forward + exact backward, median"));
  out.arrays.push_back(rbk::make_array("sweep/stable_fwd_bwd_window_us", column(&SweepPoint::fwd_bwd_window_us), "us",
                                       "stable CUDA forward + Window exact backward, median"));
  out.arrays.push_back(rbk::make_array("sweep/compat_triton_like_fwd_us", column(&SweepPoint::compat_us), "us",
                                       "Triton-like compat kernel on the benchmark inputs (NaN: not run)"));
  out.arrays.push_back(rbk::make_array("sweep/stable_fwd_pct_copy_bw", column(&SweepPoint::pct_copy), "%",
                                       "forward effective bandwidth (12 B/position) as % of measured D2D copy"));
}

void summarise_paper_point_and_compat(rbk::ExperimentOutput& out) {
  json& s = out.summary;
  s["speedup_stable_vs_compat_triton_like"] = s["compat_triton_like_fwd_us"].get<double>() / s["stable_fwd_us"].get<double>();
  s["speedup_stable_vs_compat_triton_like_graph"] =
      s["compat_triton_like_fwd_graph_us"].get<double>() / s["stable_fwd_graph_us"].get<double>();
  // Issue 3's targets, judged on both timings (the graph replay is the per-call cost inside a step).
  json targets = {{"fwd_le_10us", s["stable_fwd_us"].get<double>() <= 10.0},
                  {"fwd_le_10us_graph", s["stable_fwd_graph_us"].get<double>() <= 10.0},
                  {"fwd_bwd_le_25us", s["stable_fwd_bwd_us"].get<double>() <= 25.0},
                  {"fwd_bwd_le_25us_graph", s["stable_fwd_bwd_graph_us"].get<double>() <= 25.0},
                  {"speedup_vs_compat_ge_100", s["speedup_stable_vs_compat_triton_like"].get<double>() >= 100.0},
                  {"speedup_vs_compat_ge_100_graph", s["speedup_stable_vs_compat_triton_like_graph"].get<double>() >= 100.0}};
  if (s.contains("stable_fwd_pct_copy_bw_large"))
    targets["large_fwd_ge_70pct_copy_bw"] = s["stable_fwd_pct_copy_bw_large"].get<double>() >= 70.0;
  s["issue_targets"] = targets;
}

}  // namespace rbk::kernel_speed

#endif  // RBK_WITH_CUDA_KERNELS
