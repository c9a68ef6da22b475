// Google Benchmark: one training step (forward + backward) of the ResNet-BK LM's MoE layer as
// exp_lm_throughput runs it (D 256, 4 experts, hidden 2 D, top-1) by each dispatch, side by side in
// one run (issue 25's lever for the 32k step):
//   dense    every expert on every token, one batched GEMM per projection (the model's GPU option)
//   gather   the routed tokens only, after one host synchronisation per layer (the model's default)
//   grouped  the routed tokens only, expert-aligned tiles of static shape (rbk::grouped_expert_mlp)
// each through rbk::Moe's forward, so every timed step includes the routing.
// On CUDA under bf16 autocast at T = 16,384 and 32,768 tokens (lm_throughput's 2k and 32k steps:
// B N = 16,384 and 32,768), on the CPU in fp32 at 4,096. Before a dispatch is timed, its output and
// input gradient are checked against the fp64 sum over slots on the CPU (same weights and
// routing): relative L2 errors under bf16 below moe_grouped.h's bounds (the output's, and the
// gradient's, which passes through the ReLU's mask) and below 1e-5 in fp32; a dispatch that fails
// is reported as an error, not timed.
#include "rbk/moe.h"
#include "rbk/moe_grouped.h"
#include "rbk/torch_compat.h"

#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

constexpr int64_t kModel = 256, kExperts = 4;

struct Layer {
  rbk::Moe moe{nullptr};
  torch::Tensor x, target, idx, w;
};

Layer make_layer(rbk::MoeDispatch d, int64_t tokens, const torch::Device& device, bool bf16) {
  rbk::MoeOptions o;
  o.d_model = kModel;
  o.num_experts = kExperts;
  o.top_k = 1;
  o.router = rbk::RouterKind::LearnedTopK;  // lm_throughput's router
  o.dispatch = d;
  torch::manual_seed(29);  // the same weights and tokens for every dispatch
  Layer l;
  l.moe = rbk::Moe(o);
  l.moe->to(device);
  l.x = torch::randn({tokens, kModel}, torch::TensorOptions().device(device));
  l.target = torch::randn({tokens, kModel}, torch::TensorOptions().device(device));
  // The routing as the module's forward computes it (under autocast when the step runs under it,
  // the same kernels on the same inputs), so that the reference and the grouped call use the
  // routing the dense and gather forwards choose: a bf16 gate flips near-tied tokens.
  torch::NoGradGuard ng;
  rbk::AutocastGuard autocast(bf16);
  const auto r = l.moe->route(l.x);
  l.idx = r.idx;
  l.w = r.w.to(torch::kFloat);
  return l;
}

// One step: the layer's output and its input gradient for a fixed upstream gradient.
std::pair<torch::Tensor, torch::Tensor> step(Layer& l, bool bf16) {
  const auto x = l.x.detach().requires_grad_(true);
  torch::Tensor out;
  {
    rbk::AutocastGuard autocast(bf16);
    out = l.moe->forward(x);
  }
  (out.to(torch::kFloat) * l.target).sum().backward();
  return {out, x.grad()};
}

double rel_l2(const torch::Tensor& a, const torch::Tensor& ref) {
  return (a.to(torch::kCPU, torch::kDouble) - ref).norm().item<double>() / ref.norm().item<double>();
}

struct Errors {
  double output, input_gradient;
};

// The relative errors of output and input gradient against fp64 on the CPU.
Errors errors_against_fp64(Layer& l, bool bf16) {
  const auto got = step(l, bf16);
  const auto s = rbk::stack_experts(*l.moe);
  rbk::StackedExperts s64{s.up_weight.detach().cpu().to(torch::kDouble), s.up_bias.detach().cpu().to(torch::kDouble),
                          s.down_weight.detach().cpu().to(torch::kDouble), s.down_bias.detach().cpu().to(torch::kDouble)};
  const auto x64 = l.x.cpu().to(torch::kDouble).requires_grad_(true);
  const auto ref = rbk::expert_mlp_reference(x64, l.idx.cpu(), l.w.detach().cpu().to(torch::kDouble), s64);
  (ref * l.target.cpu().to(torch::kDouble)).sum().backward();
  return {rel_l2(got.first, ref.detach()), rel_l2(got.second, x64.grad())};
}

void run(benchmark::State& state, rbk::MoeDispatch d, int64_t tokens, bool cuda) {
  const torch::Device device = cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  const bool bf16 = cuda;
  Layer l = make_layer(d, tokens, device, bf16);
  const Errors err = errors_against_fp64(l, bf16);
  const double out_tol = bf16 ? rbk::kBf16MoeOutputRelTol : 1e-5, grad_tol = bf16 ? rbk::kBf16MoeGradientRelTol : 1e-5;
  state.counters["rel_err_vs_fp64"] = err.output;
  state.counters["grad_rel_err_vs_fp64"] = err.input_gradient;
  if (!(err.output < out_tol) || !(err.input_gradient < grad_tol)) {
    state.SkipWithError(("error against fp64: output " + std::to_string(err.output) + " (bound " + std::to_string(out_tol) +
                         "), input gradient " + std::to_string(err.input_gradient) + " (bound " + std::to_string(grad_tol) + ")")
                            .c_str());
    return;
  }
  for (int i = 0; i < 2; ++i) step(l, bf16);  // warm-up: allocator, cuBLAS handles
  for (auto _ : state) {
    if (cuda) torch::cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    step(l, bf16);
    if (cuda) torch::cuda::synchronize();
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["tokens_per_s"] = benchmark::Counter(static_cast<double>(tokens) * state.iterations(), benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const bool cuda = torch::cuda::is_available();
  const std::vector<int64_t> sizes = cuda ? std::vector<int64_t>{16384, 32768} : std::vector<int64_t>{4096};
  for (const int64_t tokens : sizes)
    for (const rbk::MoeDispatch d : {rbk::MoeDispatch::Dense, rbk::MoeDispatch::Gather, rbk::MoeDispatch::Grouped})
      benchmark::RegisterBenchmark((std::string(cuda ? "cuda_bf16/" : "cpu_fp32/") + rbk::to_string(d) + "/T" + std::to_string(tokens)).c_str(),
                                   [=](benchmark::State& s) { run(s, d, tokens, cuda); })
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
