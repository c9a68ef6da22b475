// Google Benchmark, CPU, B = 16, N = 4096 (seed 001 Table 13's point): one training step of BK-Core
// (forward + backward) per path, side by side in one run:
//   stable_exact       our fp32 continued fractions + exact O(N) gradient
//   papertime_upstream upstream's paper-time path as upstream executes it: complex128 recursion
//                      one batched op per step (CompatExecution::TensorOps) + hybrid gradient
//   papertime_loops    the same compat arithmetic as plain loops: separates the algorithm from
//                      upstream's execution overhead
// Each path's output is checked finite and non-trivial before it is timed; a path whose output is
// all zeros (upstream's, at this N: audit §1.5) is still timed but labelled as such.
#include "rbk/bk_core.h"
#include "rbk/bk_core_autograd.h"
#include "rbk/torch_compat.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>

namespace {

using torch::Tensor;
constexpr int64_t kBatch = 16;
constexpr int64_t kN = 4096;

std::map<std::string, double>& medians() {
  static std::map<std::string, double> m;
  return m;
}

void step(const Tensor& v, const rbk::BkCoreOptions& o, const Tensor& w) {
  Tensor vv = v.detach().requires_grad_(true);
  const Tensor f = rbk::bk_core_features(vv, o);
  (f * w).sum().backward();
}

// Returns the zero fraction of the forward; throws if the output is non-finite.
double check_output(const Tensor& v, const rbk::BkCoreOptions& o) {
  const Tensor f = rbk::bk_core_features(v, o);
  if (!torch::isfinite(f).all().item<bool>()) throw std::runtime_error("non-finite BK-Core output");
  return (f.abs().sum(-1) == 0).to(torch::kDouble).mean().item<double>();
}

void run_path(benchmark::State& state, const rbk::BkCoreOptions& o) {
  torch::manual_seed(17);
  const Tensor v = torch::rand({kBatch, kN}) * 2 - 1;  // fp32 model inputs, v ~ U[-1, 1]
  const Tensor w = torch::randn({kBatch, kN, 2});
  double zero_fraction = 0;
  try {
    zero_fraction = check_output(v, o);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  for (auto _ : state) step(v, o, w);
  state.counters["zero_fraction"] = zero_fraction;
  state.counters["tokens_per_s"] = benchmark::Counter(double(kBatch * kN), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(zero_fraction == 1.0 ? "OUTPUT ALL ZEROS" : "output non-trivial");
}

void BM_StableExact(benchmark::State& s) { run_path(s, {}); }
void BM_PapertimeUpstream(benchmark::State& s) {
  rbk::BkCoreOptions o;
  o.forward = rbk::BkForwardMode::CompatPapertime;
  o.gradient = rbk::BkGradientMode::PapertimeHybrid;
  o.compat_execution = rbk::CompatExecution::TensorOps;
  run_path(s, o);
}
void BM_PapertimeLoops(benchmark::State& s) {
  rbk::BkCoreOptions o;
  o.forward = rbk::BkForwardMode::CompatPapertime;
  o.gradient = rbk::BkGradientMode::PapertimeHybrid;
  run_path(s, o);
}

BENCHMARK(BM_StableExact)->Unit(benchmark::kMicrosecond)->Repetitions(5)->ReportAggregatesOnly(true);
BENCHMARK(BM_PapertimeUpstream)->Unit(benchmark::kMillisecond)->Repetitions(3)->Iterations(1)->ReportAggregatesOnly(true);
BENCHMARK(BM_PapertimeLoops)->Unit(benchmark::kMicrosecond)->Repetitions(5)->ReportAggregatesOnly(true);

// Prints the ratios of the medians measured in this run.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs)
      if (r.aggregate_name == "median") medians()[r.run_name.function_name] = r.GetAdjustedRealTime() * unit_seconds(r.time_unit);
    ConsoleReporter::ReportRuns(runs);
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    auto& m = medians();
    if (m.count("BM_StableExact") && m.count("BM_PapertimeUpstream") && m.count("BM_PapertimeLoops")) {
      std::printf("\nB=%lld N=%lld forward+backward, medians measured in this run (%d threads):\n", (long long)kBatch,
                  (long long)kN, at::get_num_threads());
      std::printf("  paper-time (upstream execution) / stable+exact = %.1fx\n", m["BM_PapertimeUpstream"] / m["BM_StableExact"]);
      std::printf("  paper-time (plain loops)        / stable+exact = %.2fx\n", m["BM_PapertimeLoops"] / m["BM_StableExact"]);
    }
  }

 private:
  static double unit_seconds(benchmark::TimeUnit u) {
    switch (u) {
      case benchmark::kNanosecond: return 1e-9;
      case benchmark::kMicrosecond: return 1e-6;
      case benchmark::kMillisecond: return 1e-3;
      default: return 1.0;
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  rbk::configure_cpu_threads();
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
