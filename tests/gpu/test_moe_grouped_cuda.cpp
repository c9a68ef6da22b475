// The tiled sparse MoE dispatch (rbk::grouped_expert_mlp, issue 25) on the GPU under bf16 autocast,
// as exp_lm_throughput's ResNet-BK runs its MoE (D 256, 4 experts, top-1), against the fp64 sum over
// slots on the CPU, beside the dense dispatch it would replace; and captured in a CUDA graph (a
// dispatch that read a size back to the host could not be captured). Skipped without a CUDA device.
#include "rbk/moe.h"
#include "rbk/moe_grouped.h"
#include "rbk/torch_compat.h"
#include "rbk/torch_compat_cuda_graph.h"

#include <gtest/gtest.h>

#include "gpu_test_support.h"

#include <cstdio>
#include <utility>
#include <vector>

namespace {

double rel_l2(const torch::Tensor& a, const torch::Tensor& ref) {
  const auto r = ref.to(torch::kCPU, torch::kDouble);
  return (a.to(torch::kCPU, torch::kDouble) - r).norm().item<double>() / r.norm().item<double>();
}

// Pass rule for a bf16 path (the GPU tests' rule): its error against fp64 within 2x the dense
// dispatch's error (the same GEMMs in the same precision, so equal accuracy is expected) plus a
// floor of 1e-3 (~ a quarter of bf16's 2^-8, for errors that are both tiny), and below the bound
// of its kind (moe_grouped.h: outputs, and gradients through the ReLU's mask).
void expect_as_accurate_as_dense(const char* what, double grouped, double dense, double bound) {
  std::printf("%s: rel L2 error against fp64: grouped %.3g, dense %.3g (bound %.3g)\n", what, grouped, dense, bound);
  EXPECT_LE(grouped, 2.0 * dense + 1e-3) << what;
  EXPECT_LT(grouped, bound) << what;
}

struct MoeCase {
  rbk::Moe moe{nullptr};
  torch::Tensor x, idx, w, target;
};

MoeCase make_case(int64_t T, uint64_t seed) {
  const torch::Device cuda(torch::kCUDA, 0);
  rbk::MoeOptions o;
  o.d_model = 256;
  o.num_experts = 4;
  o.top_k = 1;
  // lm_throughput's router. Its top-1 weight is exactly 1 with no gradient, so the dense forward's
  // input gradient has only the experts' path, like the grouped call with the routing held fixed
  // (weights < 1 are covered in fp64 by MoeGrouped.*).
  o.router = rbk::RouterKind::LearnedTopK;
  o.dispatch = rbk::MoeDispatch::Dense;
  torch::manual_seed(seed);
  MoeCase s;
  s.moe = rbk::Moe(o);
  s.moe->to(cuda);
  s.x = torch::randn({T, o.d_model}, torch::TensorOptions().device(cuda));
  s.target = torch::randn({T, o.d_model}, torch::TensorOptions().device(cuda));
  // Routed as the module's forward routes under autocast (the same kernels on the same inputs), so
  // that the dense forward, the grouped call and the fp64 reference share one routing.
  torch::NoGradGuard ng;
  rbk::AutocastGuard autocast(true);
  const auto r = s.moe->route(s.x);
  s.idx = r.idx;
  s.w = r.w.to(torch::kFloat);
  return s;
}

TEST(MoeGroupedCuda, AsAccurateAsDenseUnderAutocast) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (or no CUDA in this LibTorch)";
  const uint64_t seed = rbk::gpu_test::fresh_seed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  MoeCase s = make_case(8192, seed);
  const auto experts = rbk::stack_experts(*s.moe);
  // fp64 reference on the CPU, same weights and routing.
  rbk::StackedExperts e64{experts.up_weight.detach().cpu().to(torch::kDouble).requires_grad_(true),
                          experts.up_bias.detach().cpu().to(torch::kDouble), experts.down_weight.detach().cpu().to(torch::kDouble),
                          experts.down_bias.detach().cpu().to(torch::kDouble)};
  const auto x64 = s.x.cpu().to(torch::kDouble).requires_grad_(true);
  const auto idx64 = s.idx.cpu(), w64 = s.w.cpu().to(torch::kDouble), target64 = s.target.cpu().to(torch::kDouble);
  const auto ref = rbk::expert_mlp_reference(x64, idx64, w64, e64);
  (ref * target64).sum().backward();

  double out_err[2], dx_err[2], dw_err[2];
  for (const bool grouped : {false, true}) {
    s.moe->zero_grad();
    const auto x = s.x.detach().clone().requires_grad_(true);
    torch::Tensor out;
    {
      rbk::AutocastGuard autocast(true);
      out = grouped ? rbk::grouped_expert_mlp(x, s.idx, s.w, rbk::stack_experts(*s.moe), 0.0, true)
                    : s.moe->forward(x);
    }
    (out.to(torch::kFloat) * s.target).sum().backward();
    const auto up0 = s.moe->named_parameters()["up.0.weight"].grad();
    out_err[grouped] = rel_l2(out, ref);
    dx_err[grouped] = rel_l2(x.grad(), x64.grad());
    dw_err[grouped] = rel_l2(up0, e64.up_weight.grad()[0]);
  }
  expect_as_accurate_as_dense("output", out_err[1], out_err[0], rbk::kBf16MoeOutputRelTol);
  expect_as_accurate_as_dense("input gradient", dx_err[1], dx_err[0], rbk::kBf16MoeGradientRelTol);
  expect_as_accurate_as_dense("expert 0 up-projection gradient", dw_err[1], dw_err[0], rbk::kBf16MoeGradientRelTol);
}

// Captured forward and backward, replayed on a new input copied into the captured tensor: equal to
// the eager call on that input (the same kernels on the same data; 1e-6 allows for nothing more
// than a reordered reduction).
TEST(MoeGroupedCuda, CapturedEqualsEagerOnNewInputs) {
  if (!rbk::cuda_graphs_available()) GTEST_SKIP() << "no CUDA device (or no CUDA in this LibTorch)";
  const uint64_t seed = rbk::gpu_test::fresh_seed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  MoeCase s = make_case(4096, seed);
  const auto x_static = s.x.detach().clone().requires_grad_(true);
  const auto idx_static = s.idx.clone(), w_static = s.w.clone();
  auto out_static = torch::empty_like(s.x), grad_static = torch::empty_like(s.x);
  auto call = [&](const torch::Tensor& x, const torch::Tensor& idx, const torch::Tensor& w) {
    rbk::AutocastGuard autocast(true);
    const auto out = rbk::grouped_expert_mlp(x, idx, w, rbk::stack_experts(*s.moe), 0.0, true);
    const auto g = torch::autograd::grad(std::vector<torch::Tensor>{(out.to(torch::kFloat) * s.target).sum()},
                                         std::vector<torch::Tensor>{x});
    return std::make_pair(out.to(torch::kFloat), g[0]);
  };
  rbk::CudaGraph graph(
      [&] {
        const auto r = call(x_static, idx_static, w_static);
        out_static.copy_(r.first);
        grad_static.copy_(r.second);
      },
      torch::Device(torch::kCUDA, 0), /*warmup_calls=*/2);
  // New tokens and a new routing (every token moved to the next expert: new segment sizes).
  const auto x_new = torch::randn_like(s.x);
  const auto idx_new = (s.idx + 1).remainder(4);
  {
    torch::NoGradGuard ng;
    x_static.copy_(x_new);
    idx_static.copy_(idx_new);
  }
  graph.replay();
  torch::cuda::synchronize();
  const auto x_eager = x_new.clone().requires_grad_(true);
  const auto eager = call(x_eager, idx_new, w_static);
  const double d_out = (out_static - eager.first).abs().max().item<double>() / eager.first.abs().max().item<double>();
  const double d_grad = (grad_static - eager.second).abs().max().item<double>() / eager.second.abs().max().item<double>();
  const auto stale = call(s.x.detach().clone().requires_grad_(true), s.idx, w_static);
  const double d_stale = (out_static - stale.first).abs().max().item<double>() / stale.first.abs().max().item<double>();
  std::printf("replay vs eager on the new input: output %.3g, gradient %.3g; vs the captured input: %.3g\n", d_out,
              d_grad, d_stale);
  EXPECT_LE(d_out, 1e-6);
  EXPECT_LE(d_grad, 1e-6);
  EXPECT_GT(d_stale, 0.1);  // the replay followed the new input
}

}  // namespace
