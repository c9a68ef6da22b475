// Google Benchmark: one forward + backward of the semiseparable term's tridiagonal solve
// (rbk::tridiagonal_solve_shifted) at the ablations' gpu preset shape (B 16, N 256, rank 8, so 2r = 16
// right-hand sides), side by side in one run:
//   host       the solve as one autograd node, recurrences on the host (the model's path)
//   reference  the same recurrences as torch ops under autograd (its fp64 oracle)
// The reference costs ~30 kernel launches per position with its backward; on a GPU the host path
// trades them for a few copies (session 34: the gpu preset ran ~0.6 s a step, ~7k tokens/s).
// Before a row is timed, its output and both input gradients are checked against the reference's
// in fp64 on the CPU (relative max error under 1e-11, test_ablations.cpp's bound); a row that fails
// is reported as an error, not timed. On CUDA v and the factors live on the device, as in the model.
#include "rbk/lowrank_resolvent.h"

#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

constexpr int64_t kBatch = 16, kLength = 256, kRhs = 16;
constexpr double kRelTol = 1e-11;
const c10::complex<double> kZ(0.0, 1.0);  // the model's default z

struct Outputs {
  torch::Tensor x, grad_v, grad_rhs;
};

Outputs step(bool host, const torch::Tensor& v0, const torch::Tensor& r0, const torch::Tensor& w) {
  auto v = v0.detach().clone().requires_grad_(true), r = r0.detach().clone().requires_grad_(true);
  auto x = host ? rbk::tridiagonal_solve_shifted(v, r, kZ) : rbk::tridiagonal_solve_shifted_reference(v, r, kZ);
  torch::real((x * w).sum()).backward();
  return {x.detach(), v.grad(), r.grad()};
}

double rel_max(const torch::Tensor& a, const torch::Tensor& b) {
  const auto a64 = a.to(torch::kCPU).to(b.scalar_type());
  return ((a64 - b).abs().max() / b.abs().max()).item<double>();
}

void run(benchmark::State& state, bool host, bool cuda) {
  const torch::Device device = cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  torch::manual_seed(34);
  const auto v64 = torch::rand({kBatch, kLength}, torch::kFloat64) * 6.0 - 3.0;
  const auto r64 = torch::randn({kLength, kRhs}, torch::kFloat64) * 0.01;
  const auto w64 = torch::complex(torch::randn({kBatch, kLength, kRhs}, torch::kFloat64),
                                  torch::randn({kBatch, kLength, kRhs}, torch::kFloat64));
  const Outputs ref = step(false, v64, r64, w64);
  // The model's inputs: fp32 potential and factors on its device.
  const auto v = v64.to(device, torch::kFloat32), r = r64.to(device, torch::kFloat32), w = w64.to(device);
  const Outputs got = step(host, v64.to(device), r64.to(device), w);
  const double err = std::max({rel_max(got.x, ref.x), rel_max(got.grad_v, ref.grad_v), rel_max(got.grad_rhs, ref.grad_rhs)});
  state.counters["rel_err_vs_fp64"] = err;
  if (!(err < kRelTol)) {
    state.SkipWithError(("error against the fp64 reference " + std::to_string(err) + " (bound 1e-11)").c_str());
    return;
  }
  for (int i = 0; i < 2; ++i) step(host, v, r, w);  // warm-up: allocator, first launches
  for (auto _ : state) {
    if (cuda) torch::cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    step(host, v, r, w);
    if (cuda) torch::cuda::synchronize();
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::vector<bool> devices{false};
  if (torch::cuda::is_available()) devices.push_back(true);
  for (const bool cuda : devices)
    for (const bool host : {true, false}) {
      const std::string name = std::string(cuda ? "cuda/" : "cpu/") + (host ? "host" : "reference") + "/B16_N256_rhs16";
      benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) { run(s, host, cuda); })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
