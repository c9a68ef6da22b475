// Claim C17's same-work comparison (same_work.h): rbk's general tridiagonal kernel vs the
// native-complex vmap baseline on the 185x benchmark's inputs; the Laplacian fast path vs the same
// baseline on the model's inputs; the upstream-shaped compat pair. upstream-audit §1.3, §1.10, §10.1.
#include "same_work.h"

#if defined(RBK_WITH_CUDA_KERNELS)
#include "accuracy.h"
#include "cuda_rigs.h"
#include "reference/bk_core_oracle.h"
#include "vmap_native_baseline.h"

#include "rbk/timing.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <functional>
#include <string>
#include <vector>

namespace rbk::kernel_speed {
namespace {

using torch::Tensor;

// One timed path: call() enqueues one forward on the current stream (no synchronisation inside).
struct TimedPath {
  std::string name;
  std::string inputs;
  std::function<void()> call;
  int warmup;
  Accuracy acc;
  std::vector<double> median_us;  // one per interleaved repeat
};

// num[i] / den[i]: one ratio per repeat (both sides timed in the same repeat).
std::vector<double> per_repeat_ratio(const std::vector<double>& num, const std::vector<double>& den) {
  std::vector<double> r(num.size());
  for (size_t i = 0; i < num.size(); ++i) r[i] = num[i] / den[i];
  return r;
}

Tensor dense_oracle_features(const rbk::Tridiagonal& h, c10::complex<double> z, int64_t rows) {
  const rbk::Tridiagonal sub{h.diag.narrow(0, 0, rows).to(torch::kDouble), h.upper.narrow(0, 0, rows).to(torch::kDouble),
                             h.lower.narrow(0, 0, rows).to(torch::kDouble)};
  return torch::view_as_real(rbk::reference::bk_core_diagonal_dense(sub, z, rbk::BkContext::Bidirectional)).contiguous();
}

bool finite_nontrivial(const Accuracy& a) { return a.finite_fraction == 1.0 && a.zero_fraction < 1.0; }
bool matches_fp64(const Accuracy& a) { return a.finite_fraction == 1.0 && a.rel_err <= kMatchRelErr; }

rbk::Tridiagonal on_cuda(const rbk::Tridiagonal& h) { return {h.diag.cuda(), h.upper.cuda(), h.lower.cuda()}; }

// Wall-clock seconds since construction, for the progress lines on stderr (a run that overruns its
// device call's limit must show where its time went).
struct Stopwatch {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double s() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
};

// Prints "still in <step>" every kHeartbeatS seconds while a step runs, so that a step that never
// returns (a CUDA kernel that does not finish, a CPU solve far slower than estimated) is named in
// the log of a run killed by its time limit. The step's name is set with step().
class Heartbeat {
 public:
  static constexpr double kHeartbeatS = 30.0;  // often enough to localise, rare enough to read
  explicit Heartbeat(const Stopwatch& clock) : clock_(clock), thread_([this] { loop(); }) {}
  ~Heartbeat() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void step(const char* name) { step_.store(name); }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::duration<double>(kHeartbeatS), [this] { return done_; }))
      std::fprintf(stderr, "[kernel_speed] same work +%.1f s: still in %s\n", clock_.s(), step_.load());
  }
  const Stopwatch& clock_;
  std::atomic<const char*> step_{"setup"};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: started after every other member is ready
};

// Runs fn once and synchronises the device: the wall time of one complete call (host dispatch and
// device work), which is what a vmap path's call costs in the timed repeats.
template <class F>
double timed_once_s(F&& fn) {
  const Stopwatch w;
  fn();
  rbk::cuda::throw_on_cuda_error(cudaDeviceSynchronize(), "same-work check run");
  return w.s();
}

}  // namespace

void run_same_work(const rbk::Config& cfg, rbk::ExperimentOutput& out) {
  const int64_t B = cfg.get_int("batch"), N = cfg.get_int("n");
  const int repeats = static_cast<int>(cfg.get_int("same_work_repeats"));
  const int calls = static_cast<int>(cfg.get_int("same_work_calls"));
  const int warmup = static_cast<int>(cfg.get_int("warmup"));
  const int64_t dense_rows = std::min<int64_t>(cfg.get_int("dense_oracle_rows"), B);
  json sw = {{"inputs", benchmark_inputs_description(B, N)}, {"batch", B}, {"n", N},
             {"z", {kBenchmarkZ.real(), kBenchmarkZ.imag()}}};
  const Stopwatch clock;
  Heartbeat heartbeat(clock);
  // Prints what was done and names the next step for the heartbeat.
  auto progress = [&clock, &heartbeat](const char* done, const char* next) {
    std::fprintf(stderr, "[kernel_speed] same work +%.1f s: %s; next: %s\n", clock.s(), done, next);
    heartbeat.step(next);
  };
  heartbeat.step("drawing inputs and the fp64 oracle");

  // ---- inputs and their fp64 oracles ----
  const rbk::Tridiagonal hb = draw_benchmark_inputs(B, N);  // CPU float32
  const rbk::Tridiagonal hb_dev = on_cuda(hb);
  const Tensor ref_b = oracle_features(hb, kBenchmarkZ);
  progress("inputs and fp64 oracle ready", "dense LU cross-check (O(N^3) per row on the CPU)");
  const double oracle_vs_dense =
      accuracy(ref_b.narrow(0, 0, dense_rows), dense_oracle_features(hb, kBenchmarkZ, dense_rows)).rel_err;
  std::fprintf(stderr, "[kernel_speed] same work +%.1f s: dense LU cross-check done (%lld rows, %d CPU threads)\n",
               clock.s(), (long long)dense_rows, at::get_num_threads());
  heartbeat.step("Laplacian inputs, fp64 oracle, rigs");
  const Tensor v_lap = torch::randn({B, N});
  const rbk::Tridiagonal hl = rbk::laplacian_with_potential(v_lap);
  const rbk::Tridiagonal hl_dev = on_cuda(hl);
  // The oracle's H from v in float64 (a = -2 + v exactly, as the kernel forms it from v).
  const Tensor ref_l = oracle_features(rbk::laplacian_with_potential(v_lap.to(torch::kDouble)), kModelZ);

  // ---- every path run once on NaN-poisoned (kernels) or fresh (baselines) outputs and checked ----
  GeneralRig general(hb, kBenchmarkZ);
  StableRig lap(B, N, /*causal=*/false);
  lap.v.copy_(v_lap);  // the rig's pointers stay on v's storage
  CompatRig compat(hb, kBenchmarkZ);
  progress("rigs ready", "general kernel check run (benchmark inputs)");
  general.run(current_stream());
  rbk::cuda::throw_on_cuda_error(cudaDeviceSynchronize(), "same-work general check run");
  progress("general check run done", "laplacian kernel check run");
  lap.fwd(current_stream());
  rbk::cuda::throw_on_cuda_error(cudaDeviceSynchronize(), "same-work laplacian check run");
  progress("laplacian check run done", "compat kernel check run");
  compat.run(current_stream());
  rbk::cuda::throw_on_cuda_error(cudaDeviceSynchronize(), "same-work compat check run");
  progress("compat check run done", "vmap_native check run");
  auto vmap_call = [](const rbk::Tridiagonal& h, c10::complex<double> z, VmapRecurrence rec) {
    return [&h, z, rec] { (void)vmap_native_features(h, z, rec); };
  };
  // The vmap paths' check runs are timed (one complete call each, synchronised): their per-call
  // cost sets the section's duration (~5e4 LibTorch ops per call; main.cpp's top comment).
  Tensor f_native, f_native_lap, f_literal;
  const double native_s = timed_once_s([&] { f_native = vmap_native_features(hb_dev, kBenchmarkZ, VmapRecurrence::StableRatios); });
  std::fprintf(stderr, "[kernel_speed] same work +%.1f s: vmap_native check run %.3f s per call\n", clock.s(), native_s);
  heartbeat.step("vmap_native_laplacian check run");
  const double native_lap_s = timed_once_s([&] { f_native_lap = vmap_native_features(hl_dev, kModelZ, VmapRecurrence::StableRatios); });
  std::fprintf(stderr, "[kernel_speed] same work +%.1f s: vmap_native_laplacian check run %.3f s per call\n", clock.s(), native_lap_s);
  heartbeat.step("vmap_literal check run");
  const double literal_s =
      timed_once_s([&] { f_literal = vmap_native_features(hb_dev, kBenchmarkZ, VmapRecurrence::UpstreamContinuants); });
  std::fprintf(stderr, "[kernel_speed] same work +%.1f s: vmap_literal check run %.3f s per call\n", clock.s(), literal_s);
  heartbeat.step("torch entry check run");
  Tensor f_entry;
  const double entry_s = timed_once_s([&] { f_entry = rbk::bk_core_diagonal(hb_dev, kBenchmarkZ); });
  progress("torch entry check run done", "op counts of the vmap paths (count_aten_ops)");
  // The vmap paths are host-bound (one launch per op): their check run has already warmed the
  // allocator and every kernel they use, so they get no warm-up calls in the repeats.
  std::vector<TimedPath> paths = {
      {"general_fwd", "benchmark_inputs", [&] { general.run(current_stream()); }, warmup,
       accuracy(general.out, ref_b), {}},
      {"vmap_native_fwd", "benchmark_inputs", vmap_call(hb_dev, kBenchmarkZ, VmapRecurrence::StableRatios), 0,
       accuracy(f_native, ref_b), {}},
      {"laplacian_fwd", "laplacian", [&] { lap.fwd(current_stream()); }, warmup, accuracy(lap.out_f, ref_l), {}},
      {"vmap_native_laplacian_fwd", "laplacian", vmap_call(hl_dev, kModelZ, VmapRecurrence::StableRatios), 0,
       accuracy(f_native_lap, ref_l), {}},
      {"compat_triton_like_fwd", "benchmark_inputs", [&] { compat.run(current_stream()); }, std::min(warmup, 3),
       accuracy(compat.out, ref_b), {}},
      {"vmap_literal_fwd", "benchmark_inputs", vmap_call(hb_dev, kBenchmarkZ, VmapRecurrence::UpstreamContinuants), 0,
       accuracy(f_literal, ref_b), {}},
      // The general kernel through rbk's public entry, as a caller pays for it: input checks (they
      // read the inputs back: three reductions and synchronisations), allocation, launch.
      {"general_torch_entry_fwd", "benchmark_inputs", [&] { (void)rbk::bk_core_diagonal(hb_dev, kBenchmarkZ); }, warmup,
       accuracy(torch::view_as_real(f_entry), ref_b), {}},
  };
  enum { kGeneral, kVmapNative, kLaplacian, kVmapNativeLaplacian, kCompat, kVmapLiteral, kGeneralEntry };
  const AtenOpCount ops_native =
      count_aten_ops([&] { (void)vmap_native_features(hb_dev, kBenchmarkZ, VmapRecurrence::StableRatios); });
  const AtenOpCount ops_literal =
      count_aten_ops([&] { (void)vmap_native_features(hb_dev, kBenchmarkZ, VmapRecurrence::UpstreamContinuants); });
  rbk::cuda::throw_on_cuda_error(cudaDeviceSynchronize(), "same-work baselines");
  progress("op counts done", "accuracy checks");

  const bool oracle_ok = oracle_vs_dense <= kOracleAgreementTol;
  const bool both = oracle_ok && matches_fp64(paths[kGeneral].acc) && matches_fp64(paths[kVmapNative].acc);
  const bool both_lap = matches_fp64(paths[kLaplacian].acc) && matches_fp64(paths[kVmapNativeLaplacian].acc);
  sw["oracle"] = "rbk continued fractions in float64 on the CPU, cross-checked on the first oracle_dense_rows rows "
                 "against the dense complex128 LU inverse (core/reference)";
  sw["oracle_vs_dense_rel_err"] = oracle_vs_dense;
  sw["oracle_dense_rows"] = dense_rows;
  sw["oracle_agreement_tolerance"] = kOracleAgreementTol;
  sw["match_rel_err_tolerance"] = kMatchRelErr;
  sw["match_rule"] = "each timed output finite everywhere with relative L2 error vs the fp64 oracle <= "
                     "match_rel_err_tolerance (the accuracy threshold of exp_bk_numerics), and the oracle within "
                     "oracle_agreement_tolerance of the dense LU inverse";
  sw["general_fwd_algorithm"] = algo_name(general.algorithm());
  sw["general_fwd_rel_err_vs_fp64"] = paths[kGeneral].acc.rel_err;
  sw["general_zero_fraction_benchmark_inputs"] = paths[kGeneral].acc.zero_fraction;
  sw["vmap_native_rel_err_vs_fp64"] = paths[kVmapNative].acc.rel_err;
  sw["vmap_native_zero_fraction_benchmark_inputs"] = paths[kVmapNative].acc.zero_fraction;
  sw["both_outputs_match_fp64"] = both;
  sw["laplacian_inputs"] = "the model's H = Laplacian + diag(v), v ~ N(0, 1) (B, N) float32, z = i";
  sw["laplacian_fwd_algorithm"] = algo_name(lap.default_algorithm());
  sw["laplacian_fwd_rel_err_vs_fp64"] = paths[kLaplacian].acc.rel_err;
  sw["vmap_native_laplacian_rel_err_vs_fp64"] = paths[kVmapNativeLaplacian].acc.rel_err;
  sw["laplacian_both_outputs_match_fp64"] = both_lap;
  sw["vmap_literal_rel_err_vs_fp64"] = paths[kVmapLiteral].acc.rel_err;
  sw["vmap_literal_zero_fraction_benchmark_inputs"] = paths[kVmapLiteral].acc.zero_fraction;
  sw["compat_triton_like_rel_err_vs_fp64"] = paths[kCompat].acc.rel_err;
  sw["compat_triton_like_zero_fraction_benchmark_inputs"] = paths[kCompat].acc.zero_fraction;
  sw["vmap_native_ops_per_call"] = {{"aten_calls", ops_native.top_level}, {"arithmetic", ops_native.arithmetic},
                                    {"arithmetic_per_step_and_sweep", kStableOpsPerStep}};
  sw["vmap_literal_ops_per_call"] = {{"aten_calls", ops_literal.top_level}, {"arithmetic", ops_literal.arithmetic},
                                     {"arithmetic_per_step_and_sweep", kUpstreamOpsPerStep}};
  sw["fair_baseline"] =
      "vmap_native (stable ratios): the continued fractions rbk's kernel computes, in complex128, one native op per "
      "arithmetic step, on the same inputs; vmap_literal (upstream's continuants, op for op) returns zeros here and "
      "issues more ops per step, so it is timed only for the compat pair (see vmap_native_baseline.h)";
  std::fprintf(stderr,
               "[kernel_speed] same work B=%lld N=%lld: oracle vs dense %.2e; general (%s) err %.2e zeros %.3g; vmap native "
               "err %.2e; laplacian err %.2e / %.2e; vmap literal zeros %.4f; compat zeros %.4f; native %lld ops, literal "
               "%lld ops per call\n",
               (long long)B, (long long)N, oracle_vs_dense, algo_name(general.algorithm()), paths[kGeneral].acc.rel_err,
               paths[kGeneral].acc.zero_fraction, paths[kVmapNative].acc.rel_err, paths[kLaplacian].acc.rel_err,
               paths[kVmapNativeLaplacian].acc.rel_err, paths[kVmapLiteral].acc.zero_fraction,
               paths[kCompat].acc.zero_fraction, (long long)ops_native.top_level, (long long)ops_literal.top_level);

  // House rule: nothing is timed whose output is non-finite or all zeros, except the two compat
  // paths, whose zeros are what upstream's benchmark timed (they are labelled by their zero fraction).
  for (const int k : {kGeneral, kVmapNative, kLaplacian, kVmapNativeLaplacian, kGeneralEntry}) {
    if (finite_nontrivial(paths[k].acc)) continue;
    sw["status"] = "not timed: " + paths[k].name + " output not finite and non-trivial";
    for (const auto& p : paths) {
      json row = {{"path", "same_work_" + p.name}, {"inputs", p.inputs}, {"batch", B}, {"n", N},
                  {"status", "failed: " + sw["status"].get<std::string>()}};
      row.update(accuracy_json(p.acc));
      out.rows.push_back(row);
    }
    out.summary["same_work"] = sw;
    return;
  }

  // ---- interleaved repeats: every path once per repeat (order rotated), each the median of `calls` ----
  // Projected duration from the check runs (the kernels' calls are microseconds; the entry's a few
  // hundred, counted from its check run, which includes its first-use setup: an upper bound).
  const double per_repeat_s = calls * (native_s + native_lap_s + literal_s) + (calls + warmup) * entry_s;
  std::fprintf(stderr,
               "[kernel_speed] same work +%.1f s: timing %d repeats x %d calls; projected %.0f s (%.1f s per repeat: "
               "native %.3f + laplacian %.3f + literal %.3f s per call)\n",
               clock.s(), repeats, calls, repeats * per_repeat_s, per_repeat_s, native_s, native_lap_s, literal_s);
  const double timing_t0 = clock.s();
  heartbeat.step("interleaved timing repeats");
  for (int r = 0; r < repeats; ++r) {
    for (size_t k = 0; k < paths.size(); ++k) {
      TimedPath& p = paths[(k + static_cast<size_t>(r)) % paths.size()];
      p.median_us.push_back(time_cuda(p.call, p.warmup, calls).median_s * 1e6);
    }
    std::fprintf(stderr, "[kernel_speed] same work repeat %d/%d: general %.2f us, vmap native %.0f us, laplacian %.2f us, "
                 "compat %.1f us, vmap literal %.0f us\n", r + 1, repeats, paths[kGeneral].median_us.back(),
                 paths[kVmapNative].median_us.back(), paths[kLaplacian].median_us.back(), paths[kCompat].median_us.back(),
                 paths[kVmapLiteral].median_us.back());
    const double elapsed = clock.s() - timing_t0;
    std::fprintf(stderr, "[kernel_speed] same work repeat %d/%d done: %.1f s elapsed, ETA %.0f s\n", r + 1, repeats, elapsed,
                 elapsed / (r + 1) * (repeats - r - 1));
  }
  const auto speedup = per_repeat_ratio(paths[kVmapNative].median_us, paths[kGeneral].median_us);
  const auto speedup_lap = per_repeat_ratio(paths[kVmapNativeLaplacian].median_us, paths[kLaplacian].median_us);
  const auto speedup_compat = per_repeat_ratio(paths[kVmapLiteral].median_us, paths[kCompat].median_us);
  const auto literal_over_native = per_repeat_ratio(paths[kVmapLiteral].median_us, paths[kVmapNative].median_us);
  const auto speedup_entry = per_repeat_ratio(paths[kVmapNative].median_us, paths[kGeneralEntry].median_us);
  sw["status"] = "ok";
  sw["repeats"] = repeats;
  sw["calls_per_repeat"] = calls;
  sw["timer"] = "CUDA events on the current stream around each call; per repeat and path the median of calls_per_repeat "
                "calls after warm-up (kernels: `warmup` calls; vmap paths: none, their check run warmed them); "
                "every path once per repeat, the order rotated by one each repeat";
  sw["speedup_general_vs_vmap_native"] = speedup;
  sw["laplacian_speedup_vs_vmap_native"] = speedup_lap;
  sw["speedup_compat_triton_like_vs_vmap_literal"] = speedup_compat;
  sw["vmap_literal_over_vmap_native_time"] = literal_over_native;
  sw["speedup_general_torch_entry_vs_vmap_native"] = speedup_entry;
  sw["general_torch_entry_fwd_rel_err_vs_fp64"] = paths[kGeneralEntry].acc.rel_err;
  for (const auto& p : paths) sw[p.name + "_us"] = p.median_us;
  for (const auto& p : paths) {
    json row = {{"path", "same_work_" + p.name}, {"inputs", p.inputs}, {"batch", B}, {"n", N}, {"status", "ok"},
                {"median_us_per_repeat", p.median_us}, {"median_us", rbk::median(p.median_us)},
                {"calls_per_repeat", calls}, {"timer", "CUDA events"}};
    row.update(accuracy_json(p.acc));
    out.rows.push_back(row);
  }
  out.summary["same_work"] = sw;
  // The upstream-shaped compat pair's top-level keys (the paper's "185x" analogue, Table 13).
  out.summary["vmap_baseline_fwd_us"] = rbk::median(paths[kVmapLiteral].median_us);
  out.summary["speedup_compat_triton_like_vs_vmap"] = rbk::median(speedup_compat);
  std::fprintf(stderr, "[kernel_speed] same work: general vs vmap native %.0fx (median of %d repeats), laplacian %.0fx, "
               "compat pair %.0fx, literal/native time %.2f\n", rbk::median(speedup), repeats, rbk::median(speedup_lap),
               rbk::median(speedup_compat), rbk::median(literal_over_native));
}

}  // namespace rbk::kernel_speed

#endif  // RBK_WITH_CUDA_KERNELS
