// exp_kernel_speed: claim C17 (seed 001 §6.6, Table 13: a fused BK-Core kernel "185x" faster than
// the PyTorch vmap path at B = 16, N = 4096, "MSE < 1e-10"). upstream-audit §1.3, §1.10, §10.1.
// GPU-only (spec.requires_cuda): without a CUDA device it exits 77 after validating its config.
//
// The deciding comparison (same_work.{h,cpp}; issue 16): on the 185x benchmark's own inputs
// (B = 16, N = 4096, a, b, c ~ N(0, 1) float32, independent off-diagonals, z = 0.1 + 0.1i; audit
// §10.1), rbk's CUDA kernel in its GENERAL tridiagonal mode (the parallel continued-fraction scan,
// fp32) against vmap_native, upstream's vmap path rebuilt with native complex128 LibTorch ops, one
// op per arithmetic step, on the stable ratio form of upstream's recursion (vmap_native_baseline.h
// says why that is the same work and the fair baseline). Both outputs are checked against fp64
// before any time is taken; both are timed with CUDA events, per repeat the median of
// same_work_calls calls, in same_work_repeats interleaved repeats (one ratio per repeat). Second,
// labelled row: the Laplacian fast path (H = Laplacian + v, z = i, the model's H) against the same
// baseline on those inputs. Compat face: vmap_literal (upstream's continuants op for op, zeros on
// these inputs) against the Triton-shaped compat kernel.
//
// Also, each with its time AND its correctness: the stable kernels on the model's inputs in every
// algorithm and block shape, forward + exact backward, causal variant, through the LibTorch entry;
// the Triton-shaped compat kernel (serial fp32 theta/phi per row + sanitiser) on both input sets;
// single launches between events and per call in a replayed CUDA graph; a sweep over N at B = 16 up
// to B N = 2^24 with effective GB/s (bytes model below) as a % of the device-to-device copy
// bandwidth measured in the same run, and tokens/s. Oracle: rbk's continued fractions in float64
// (accuracy.h), itself checked against the dense complex128 LU inverse (core/reference).
//
// Bytes model (fewest bytes any implementation must move, fp32): forward reads v (4 B) and writes
// (Re G, Im G) (8 B) per position = 12 B; backward reads v (4) and dL/dfeatures (8) and writes
// dL/dv (4) = 16 B; forward + backward = 28 B. Copy bandwidth counts bytes read + written.
//
// Summary keys (judged in validation/; times in microseconds):
//   same_work/ (the deciding comparison): inputs (the distribution, in words), batch, n, z;
//     speedup_general_vs_vmap_native [per repeat], general_fwd_us, vmap_native_fwd_us [per repeat];
//     general_fwd_algorithm, general_fwd_rel_err_vs_fp64, general_zero_fraction_benchmark_inputs,
//     vmap_native_rel_err_vs_fp64, vmap_native_zero_fraction_benchmark_inputs, both_outputs_match_fp64
//     (rule: match_rule, match_rel_err_tolerance = kMatchRelErr in same_work.h), oracle,
//     oracle_vs_dense_rel_err, oracle_dense_rows, oracle_agreement_tolerance;
//     laplacian_speedup_vs_vmap_native [per repeat], laplacian_fwd_us, vmap_native_laplacian_fwd_us
//     [per repeat], laplacian_inputs, laplacian_fwd_algorithm, laplacian_fwd_rel_err_vs_fp64,
//     vmap_native_laplacian_rel_err_vs_fp64, laplacian_both_outputs_match_fp64;
//     speedup_compat_triton_like_vs_vmap_literal [per repeat], compat_triton_like_fwd_us,
//     vmap_literal_fwd_us [per repeat], vmap_literal_over_vmap_native_time [per repeat],
//     vmap_literal_{rel_err_vs_fp64,zero_fraction_benchmark_inputs},
//     compat_triton_like_{rel_err_vs_fp64,zero_fraction_benchmark_inputs};
//     vmap_{native,literal}_ops_per_call {aten_calls, arithmetic, arithmetic_per_step_and_sweep};
//     general_torch_entry_fwd_us, speedup_general_torch_entry_vs_vmap_native [per repeat],
//     general_torch_entry_fwd_rel_err_vs_fp64 (the general kernel through rbk::bk_core_diagonal:
//     input checks, allocation, launch); fair_baseline, status, repeats, calls_per_repeat, timer.
//   Upstream-shaped compat pair (top level, Table 13): vmap_baseline_fwd_us (vmap_literal, median
//     over repeats), speedup_compat_triton_like_vs_vmap (median of the per-repeat ratios; the
//     paper's "185x" analogue), vmap_baseline_{rel_err,zero_fraction}_{benchmark_inputs,laplacian}
//     (vmap_literal on each input set), compat_triton_like_{rel_err,zero_fraction}_{benchmark_inputs,
//     laplacian}, compat_triton_like_fwd_us, compat_triton_like_fwd_graph_us.
//   Stable kernels on the model's inputs: paper_batch, paper_n; empty_kernel_us (launch floor of the
//     event timing), empty_kernel_graph_us; stable_fwd_algorithm; stable_fwd_us, stable_fwd_bwd_us
//     (+ _graph_us: per call in a graph), stable_fwd_<variant>_{us,graph_us,rel_err} for
//     scan_shape256/512, window_items4/16/32 (and stable_causal_*), stable_torch_entry_fwd_us,
//     speedup_stable_vs_compat_triton_like(_graph) (issue 3's target; different inputs, not C17's
//     ratio), stable_{scan,window}_fwd_us_large, stable_fwd_rel_err, stable_grad_rel_err,
//     stable_causal_fwd_rel_err, stable_causal_grad_rel_err, stable_zero_fraction (Laplacian inputs);
//     copy_bandwidth_GBps, copy_bytes; large_batch, large_n, stable_fwd_us_large, stable_fwd_GBps_large,
//     stable_fwd_pct_copy_bw_large, stable_fwd_bwd_us_large, stable_fwd_bwd_window_us_large (the
//     Window backward, issue 25), stable_fwd_bwd{,_window}_over_fwd_large,
//     stable_fwd_bwd_floor_over_fwd_large (fwd + a backward moving its 16 B at the copy bandwidth,
//     over fwd: the least any backward could reach), stable_fwd_algorithm_large,
//     stable_scan_fwd_pct_copy_bw_large, compat_triton_like_fwd_us_large; tokens_per_s_stable_fwd;
//     issue_targets {...} (issue 3's engineering targets, not paper numbers).
//   A build without the CUDA kernels (Torch without CUDA or no nvcc) on a CUDA machine: gpu =
//     "skipped: ...", every GPU row skipped.
//   parts_run: the GPU phases this run ran (config key `parts`, any of same_work, paper_point,
//     compat, sweep; default all). A run writes only its parts' keys; the derived keys
//     speedup_stable_vs_compat_triton_like(_graph) and issue_targets need paper_point and compat.
//     C17's ledger reads same_work, compat (compat_triton_like_*_benchmark_inputs,
//     vmap_baseline_zero_fraction_benchmark_inputs) and paper_point (tokens_per_s_stable_fwd); the
//     sweep is issue 3's context only.
//
// Time budget of the gpu preset (one device call is limited to 10 minutes). Measured here on the
// CPU (estimate_same_work_cost, 1 thread, B = 16, N = 4096): vmap_native 49158 LibTorch calls per
// call (24574 arithmetic), 0.044 s; vmap_literal 61455 (32763 arithmetic), 0.054 s; about 0.9 us
// per op. On CUDA every arithmetic op is a kernel launch through the dispatcher (~5-10 us of host
// time on an H200 host, views ~1 us), so about 0.15-0.3 s (native) and 0.2-0.4 s (literal) per
// call: the interleaved repeats cost same_work_repeats x same_work_calls x (2 native + 1 literal)
// = 7 x 10 x ~0.75 s ~ 55 s (up to ~80 s). The dense complex128 LU cross-check of the fp64 oracle
// is O(N^3): 0.29 s for one row at N = 1024 here, so ~19 s per row at N = 4096 single-threaded
// (a few s with 16 threads); the gpu preset checks 1 row. Per phase (estimate, H200):
//   CPU row + copy + empty kernel ~2 s; same_work ~75 s (prep ~20 s: dense row, 3 vmap check runs,
//   2 op counts); paper_point ~5 s (7 configurations x 200 calls + graphs of microsecond kernels,
//   fp64 oracle and exact VJP at 64k positions); compat ~5 s (2 input sets, serial compat kernel
//   ~1 ms per call, 2 literal vmap correctness calls); sweep ~40 s (per N 7 configurations x 210
//   calls, <= 0.2 s at 2^20; fp64 oracle + VJP on the CPU up to 2^24 positions, ~5 s at the largest;
//   the serial compat kernel 4 calls, ~0.2 s each at 2^20). Total ~2-3 minutes. Every phase prints
//   its progress on stderr (the same-work check runs their measured per-call time, a projected
//   total, and each repeat its ETA), so an overrun shows where its time went.

#include "accuracy.h"
#include "gpu_parts.h"
#include "same_work.h"
#include "vmap_native_baseline.h"

#include "rbk/bk_core.h"
#include "rbk/experiment.h"
#include "rbk/timing.h"
#include "rbk/torch_compat.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace rbk::kernel_speed;  // Accuracy, oracles, z values, rigs, vmap baselines

namespace {

using torch::Tensor;
using json = nlohmann::json;

// The GPU phases, in the order they run. The CPU row, the copy bandwidth and the empty-kernel floor
// run in every part (a few seconds). A run writes the summary keys of the parts it ran only, and
// names them in summary/parts_run.
const std::vector<std::string>& all_parts() {
  static const std::vector<std::string> p = {"same_work", "paper_point", "compat", "sweep"};
  return p;
}

// Wall-clock seconds since the process started its GPU phases, for the progress lines.
[[maybe_unused]] double since_s(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

json skipped_row(const std::string& path, int64_t B, int64_t N) {
  return {{"path", path}, {"batch", B}, {"n", N}, {"status", "skipped: this build has no CUDA BK-Core kernels"}};
}

}  // namespace

int main(int argc, char** argv) {
  rbk::ExperimentSpec spec{"kernel_speed", {"C17"},
                           "fused BK-Core kernel speed: rbk's general tridiagonal CUDA kernel vs the native-complex vmap "
                           "baseline on the 185x benchmark's inputs (same work), the Laplacian fast path, the Triton-like "
                           "compat kernel vs upstream's literal vmap path; correctness (error vs fp64, zero fraction) for each",
                           {}};
  spec.requires_cuda = true;  // every deciding number is a GPU time
  spec.schema.add_int("batch", 1, 1 << 16, "batch of the paper point (Table 13: 16)")
      .add_int("n", 2, 1 << 22, "sequence length of the paper point (Table 13: 4096)")
      .add_int("sweep_batch", 1, 1 << 16, "batch of the N sweep")
      .add_int_list("sweep_n", 1, 1 << 26, "sequence lengths of the sweep (B N up to 2^24 in the gpu preset)")
      .add_int("large_n", 1, 1 << 26, "N of the bandwidth point (issue 3: 2^20 at B = sweep_batch)")
      .add_int("compat_max_n", 1, 1 << 26, "largest N at which the serial compat kernel is timed in the sweep")
      .add_int("warmup", 0, 1000, "untimed calls before timing (kernels)")
      .add_int("repeats", 1, 100000, "timed calls per point (kernels); the median is reported")
      .add_int("same_work_repeats", 5, 1000, "interleaved repeats of the same-work comparison (one ratio each; >= 5)")
      .add_int("same_work_calls", 10, 100000, "calls per path and repeat, the median taken (>= 10; a vmap call is ~0.1 s)")
      .add_int("dense_oracle_rows", 1, 1 << 16, "rows of the benchmark inputs whose fp64 oracle is checked against the dense "
               "LU inverse (O(N^3) each)")
      .add_int("oracle_max_elems", 1, int64_t(1) << 28, "largest B N checked against the fp64 CPU oracle in the sweep")
      .add_int("copy_bytes", 1 << 20, int64_t(1) << 34, "bytes of the device-to-device copy that sets the bandwidth ceiling")
      .add_int("cpu_repeats", 1, 1000, "timed calls of the CPU rows")
      .add_string_list("parts", all_parts(), "GPU phases to run, in this order whatever the list's order (see the "
                       "file comment); the run's summary names them in parts_run");

  return rbk::run_experiment(argc, argv, spec, [](const rbk::Config& cfg, rbk::ExperimentOutput& out) {
    const int64_t B = cfg.get_int("batch"), N = cfg.get_int("n");
    [[maybe_unused]] const int warmup = static_cast<int>(cfg.get_int("warmup")),
                               repeats = static_cast<int>(cfg.get_int("repeats"));  // the CUDA parts' only
    const std::vector<std::string> parts_asked = cfg.get_string_list("parts");
    auto part = [&parts_asked](const char* name) {
      return std::find(parts_asked.begin(), parts_asked.end(), name) != parts_asked.end();
    };
    json parts_run = json::array();
    for (const auto& p : all_parts())
      if (part(p.c_str())) parts_run.push_back(p);
    out.summary["parts_run"] = parts_run;
    out.summary["paper_batch"] = B;
    out.summary["paper_n"] = N;

    // ---- CPU rows (every machine): the fp64 oracle's own cost and the fp32 CPU stable path ----
    {
      const Tensor v = torch::randn({B, N});
      const rbk::Tridiagonal h = rbk::laplacian_with_potential(v);
      const Tensor ref = oracle_features(h, kModelZ, rbk::BkContext::Bidirectional);
      Tensor G;
      const auto t = rbk::time_repeated([&] { G = rbk::bk_core_diagonal(h, kModelZ); }, 1,
                                        static_cast<int>(cfg.get_int("cpu_repeats")));
      const Accuracy acc = accuracy(torch::view_as_real(G), ref);
      json row = {{"path", "stable_cpu_fp32"}, {"inputs", "laplacian"}, {"batch", B}, {"n", N}, {"median_us", t.median_s * 1e6},
                  {"threads", rbk::configure_cpu_threads()}, {"status", "ok"}};
      row.update(accuracy_json(acc));
      out.rows.push_back(row);
      std::fprintf(stderr, "[kernel_speed] cpu stable fp32 B=%lld N=%lld: %.1f us, rel err %.2e\n", (long long)B, (long long)N,
                   t.median_s * 1e6, acc.rel_err);
    }

#if defined(RBK_WITH_CUDA_KERNELS)
    if (rbk::cuda_available()) {
      GpuPlan plan;
      plan.batch = B;
      plan.n = N;
      plan.warmup = warmup;
      plan.repeats = repeats;
      plan.copy_gbps = measure_floors(cfg, warmup, repeats, out);
      const auto t_gpu = std::chrono::steady_clock::now();
      auto run_part = [&](const char* name, const std::function<void()>& measure) {
        if (!part(name)) return;
        measure();
        std::fprintf(stderr, "[kernel_speed] +%.1f s: %s done\n", since_s(t_gpu), name);
      };
      run_part("same_work", [&] { run_same_work(cfg, out); });  // claim C17's deciding comparison
      run_part("paper_point", [&] { run_paper_point(plan, out); });
      run_part("compat", [&] { run_compat(plan, out); });
      run_part("sweep", [&] { run_sweep(cfg, plan, out); });
      if (part("paper_point") && part("compat")) summarise_paper_point_and_compat(out);
      return;
    }
#endif
    // Reached only on a CUDA machine whose build lacks the kernels (requires_cuda exits 77 earlier
    // where no device is visible).
    for (const std::string p : {"same_work_general_fwd", "same_work_vmap_native_fwd", "stable_cuda_fwd", "stable_cuda_fwd_bwd",
                                "compat_triton_like_cuda_fwd", "vmap_baseline_fwd"})
      out.rows.push_back(skipped_row(p, B, N));
    out.summary["gpu"] = "skipped: this build has no CUDA BK-Core kernels (Torch without CUDA or no nvcc)";
  });
}
