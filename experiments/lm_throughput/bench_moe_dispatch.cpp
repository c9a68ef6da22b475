// Google Benchmark: one training step (forward + backward) of the ResNet-BK LM's MoE layer as
// exp_lm_throughput runs it (D 256, 4 experts, hidden 2 D, top-1) by each dispatch, side by side in
// one run (issue 25's lever for the 32k step):
//   dense    every expert on every token, one batched GEMM per projection (the model's GPU option)
//   gather   the routed tokens only, after one host synchronisation per layer (the model's default)
//   grouped  the routed tokens only, expert-aligned tiles of static shape (rbk::grouped_expert_mlp)
// each through rbk::Moe's forward, so every timed step includes the routing.
// On CUDA each dispatch is timed twice: eager (operator by operator, its host issuing every launch)
// and, for the dispatches with no host synchronisation (dense, grouped), as one captured CUDA graph
// replayed per step, as exp_lm_throughput's cuda_graph step runs the layer. The eager rows alone
// had grouped 1.59x slower than dense at 32k while the captured model step was faster with grouped
// (NOTES.md, session 29): the launches between its small kernels are what the eager rows time.
// On CUDA under bf16 autocast at T = 16,384 and 32,768 tokens (lm_throughput's 2k and 32k steps:
// B N = 16,384 and 32,768), on the CPU in fp32 at 4,096. Before a dispatch is timed, its output and
// input gradient are checked against the fp64 sum over slots on the CPU (same weights and
// routing): relative L2 errors under bf16 below moe_grouped.h's bounds (the output's, and the
// gradient's, which passes through the ReLU's mask) and below 1e-5 in fp32; a dispatch that fails
// is reported as an error, not timed.
#include "rbk/moe.h"
#include "rbk/moe_grouped.h"
#include "rbk/torch_compat.h"
#include "rbk/torch_compat_cuda_graph.h"

#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
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

// The fp64 reference on the CPU: the layer's output and input gradient by the sum over slots, with
// the same weights and routing.
std::pair<torch::Tensor, torch::Tensor> fp64_reference(Layer& l) {
  const auto s = rbk::stack_experts(*l.moe);
  rbk::StackedExperts s64{s.up_weight.detach().cpu().to(torch::kDouble), s.up_bias.detach().cpu().to(torch::kDouble),
                          s.down_weight.detach().cpu().to(torch::kDouble), s.down_bias.detach().cpu().to(torch::kDouble)};
  const auto x64 = l.x.cpu().to(torch::kDouble).requires_grad_(true);
  const auto ref = rbk::expert_mlp_reference(x64, l.idx.cpu(), l.w.detach().cpu().to(torch::kDouble), s64);
  (ref * l.target.cpu().to(torch::kDouble)).sum().backward();
  return {ref.detach(), x64.grad()};
}

// Records the errors of one step's output and input gradient against the reference, and refuses
// the row (returns false) when either is over its bound.
bool checked(benchmark::State& state, const std::pair<torch::Tensor, torch::Tensor>& got,
             const std::pair<torch::Tensor, torch::Tensor>& ref, bool bf16) {
  const Errors err{rel_l2(got.first, ref.first), rel_l2(got.second, ref.second)};
  const double out_tol = bf16 ? rbk::kBf16MoeOutputRelTol : 1e-5, grad_tol = bf16 ? rbk::kBf16MoeGradientRelTol : 1e-5;
  state.counters["rel_err_vs_fp64"] = err.output;
  state.counters["grad_rel_err_vs_fp64"] = err.input_gradient;
  if (err.output < out_tol && err.input_gradient < grad_tol) return true;
  state.SkipWithError(("error against fp64: output " + std::to_string(err.output) + " (bound " + std::to_string(out_tol) +
                       "), input gradient " + std::to_string(err.input_gradient) + " (bound " + std::to_string(grad_tol) + ")")
                          .c_str());
  return false;
}

void run(benchmark::State& state, rbk::MoeDispatch d, int64_t tokens, bool cuda, bool captured) {
  const torch::Device device = cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  const bool bf16 = cuda;
  Layer l = make_layer(d, tokens, device, bf16);
  const auto ref = fp64_reference(l);
  if (!checked(state, step(l, bf16), ref, bf16)) return;
  for (int i = 0; i < 2; ++i) step(l, bf16);  // warm-up: allocator, cuBLAS handles
  // The captured step: the same step() recorded once (after its own warm-up on the capture's
  // stream) and replayed; the parameters' gradients accumulate in place, as in the eager rows. Its
  // first replay's output and input gradient (the graph's tensors, rewritten by every replay) are
  // checked like the eager step's before any replay is timed.
  std::unique_ptr<rbk::CudaGraph> graph;
  if (captured) {
    std::pair<torch::Tensor, torch::Tensor> replayed;
    graph = std::make_unique<rbk::CudaGraph>([&] { replayed = step(l, bf16); }, device, 2);
    graph->replay();
    torch::cuda::synchronize();
    if (!checked(state, replayed, ref, bf16)) return;
  }
  for (auto _ : state) {
    if (cuda) torch::cuda::synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    if (graph)
      graph->replay();
    else
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
  // Captured rows where the build can capture; the gather dispatch reads its expert sizes back to
  // the host, which a capture cannot hold, so it has eager rows only.
  const bool graphs = cuda && rbk::cuda_graphs_available();
  for (const bool captured : {false, true}) {
    if (captured && !graphs) continue;
    for (const int64_t tokens : sizes)
      for (const rbk::MoeDispatch d : {rbk::MoeDispatch::Dense, rbk::MoeDispatch::Gather, rbk::MoeDispatch::Grouped}) {
        if (captured && d == rbk::MoeDispatch::Gather) continue;
        const std::string mode = cuda ? (captured ? "cuda_bf16_graph/" : "cuda_bf16/") : "cpu_fp32/";
        benchmark::RegisterBenchmark((mode + rbk::to_string(d) + "/T" + std::to_string(tokens)).c_str(),
                                     [=](benchmark::State& s) { run(s, d, tokens, cuda, captured); })
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
      }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
