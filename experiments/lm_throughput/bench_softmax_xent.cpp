// Google Benchmark: the fused softmax cross-entropy kernel (rbk/kernels/softmax_xent_launch.h) on
// the LM head's logits as exp_lm_throughput's steps give them (bf16, V = 50,000; T = 16,384 and
// 32,768 rows: the 2k and 32k steps), with each row kept in shared memory between the kernel's two
// passes (`staged`, one read of the logits) and without (`two_pass`, two reads), side by side in
// one run: issue 25's lever on a kernel both models' steps run. Before a row is timed, both kernels'
// losses and gradients on 256 rows spread over the matrix are checked against an fp64 oracle on the
// CPU, with the GPU test's bounds (rbk::softmax_xent_errors_vs_fp64); a
// kernel that fails is reported as an error, not timed. Also reported: the bytes each kernel must
// move (logits read once or twice, the gradient written once) over its median time. GPU only: with
// no CUDA kernels or no device it prints why and exits 77.
#include "rbk/fused_cross_entropy.h"
#include "rbk/torch_compat.h"
#if defined(RBK_WITH_CUDA_KERNELS)
#include "rbk/cuda_glue/softmax_xent_cuda.h"
#endif

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace {

#if defined(RBK_WITH_CUDA_KERNELS)
constexpr int64_t kVocab = 50000, kCheckedRows = 256;

// Returns the reason the kernel's output on (x, t) is outside the bounds of the fp64 oracle on
// kCheckedRows rows spread over the matrix, or "" when it is inside them.
std::string fp64_mismatch(const torch::Tensor& x, const torch::Tensor& t, double scale, bool staging) {
  const auto [row_loss, grad] = rbk::cuda::softmax_xent_cuda(x, t, scale, staging);
  const auto rows = torch::linspace(0, static_cast<double>(x.size(0) - 1), kCheckedRows, torch::kDouble).round().to(torch::kLong);
  const auto pick = [&](const torch::Tensor& a) { return a.index_select(0, rows.to(a.device())); };
  const auto err = rbk::softmax_xent_errors_vs_fp64(pick(x), pick(t), scale, pick(row_loss), pick(grad));
  if (err.loss <= rbk::kSoftmaxXentLossTol && err.gradient_excess <= 0.0) return "";
  return "against fp64: loss error " + std::to_string(err.loss) + " (bound " + std::to_string(rbk::kSoftmaxXentLossTol) +
         "), gradient beyond its bound by " + std::to_string(err.gradient_excess);
}

void run(benchmark::State& state, int64_t rows, bool staging) {
  torch::manual_seed(25);
  const auto opt = torch::TensorOptions().device(torch::kCUDA);
  const auto x = (torch::randn({rows, kVocab}, opt) * 3.0).to(torch::kBFloat16);
  const auto t = torch::randint(kVocab, {rows}, opt.dtype(torch::kLong));
  const double scale = 1.0 / static_cast<double>(rows);
  // A staged row that this device cannot stage would time the two-pass kernel under the wrong name.
  if (staging && !rbk::cuda::softmax_xent_cuda_stages_rows(x)) {
    state.SkipWithError("this device cannot keep a row of V = 50,000 bf16 in shared memory");
    return;
  }
  if (const auto why = fp64_mismatch(x, t, scale, staging); !why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  for (int i = 0; i < 2; ++i) rbk::cuda::softmax_xent_cuda(x, t, scale, staging);
  for (auto _ : state) {
    torch::cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(rbk::cuda::softmax_xent_cuda(x, t, scale, staging));
    torch::cuda::synchronize();
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  // The traffic each kernel cannot avoid: the logits read once (staged) or twice, the gradient written.
  const double bytes = static_cast<double>(rows * kVocab * 2) * (staging ? 2.0 : 3.0);
  state.counters["bytes_per_s"] = benchmark::Counter(bytes * state.iterations(), benchmark::Counter::kIsRate);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
#if defined(RBK_WITH_CUDA_KERNELS)
  if (!torch::cuda::is_available()) {
    std::printf("bench_softmax_xent: no CUDA device; nothing to time\n");
    return 77;
  }
  for (const int64_t rows : {16384, 32768})
    for (const bool staging : {true, false})
      benchmark::RegisterBenchmark(
          (std::string("cuda_bf16/") + (staging ? "staged" : "two_pass") + "/T" + std::to_string(rows)).c_str(),
          [=](benchmark::State& s) { run(s, rows, staging); })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
#else
  std::printf("bench_softmax_xent: this build has no CUDA kernels; nothing to time\n");
  return 77;
#endif
}
