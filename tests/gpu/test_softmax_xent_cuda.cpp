// The fused softmax cross-entropy kernel (issue 25; rbk/kernels/softmax_xent_launch.h) against an
// fp64 oracle on the GPU: per-row losses and the gradient, bf16 and fp32 logits, a row length that
// takes the 16-byte vectors (50,000, the LM's V) and one that cannot (1,001), each with the row kept
// in shared memory where it fits and with it read twice (and rows too long to keep), rows with large and
// spread logits; a target out of range gives that row a NaN loss; the head + loss through autograd
// (rbk::fused_linear_cross_entropy) against the plain autocast path, with an incoming gradient of 3.
// Skipped without CUDA.
#include "rbk/fused_cross_entropy.h"
#include "rbk/torch_compat.h"
#if defined(RBK_WITH_CUDA_KERNELS)
#include "rbk/cuda_glue/softmax_xent_cuda.h"
#endif

#include <gtest/gtest.h>

#include "gpu_test_support.h"

#include <cmath>
#include <cstdio>
#include <vector>

namespace {

using torch::Tensor;

bool have_fused() {
  return torch::cuda::is_available() &&
         rbk::fused_softmax_cross_entropy_applies(torch::zeros({1, 1}, torch::TensorOptions().device(torch::kCUDA)));
}

#if defined(RBK_WITH_CUDA_KERNELS)
// Logits whose rows differ in scale and offset (row r: N(0, 1 + r % 7) + 10 (r % 3)), one row near
// fp32's exp range (+80) and one with a single dominant entry; targets uniform.
std::pair<Tensor, Tensor> make_inputs(int64_t rows, int64_t cols, torch::ScalarType dtype, uint64_t seed) {
  torch::manual_seed(seed);
  auto x = torch::randn({rows, cols}, torch::kDouble);
  for (int64_t r = 0; r < rows; ++r) x[r].mul_(1.0 + static_cast<double>(r % 7)).add_(10.0 * static_cast<double>(r % 3));
  x[1].add_(80.0);
  x[2][cols / 2] = 60.0;
  const auto t = torch::randint(cols, {rows}, torch::kInt64);
  return {x.to(dtype).to(torch::kCUDA), t.to(torch::kCUDA)};
}

// Per-row losses within rbk::kSoftmaxXentLossTol and the gradient within its bound (fp32 rounding of
// p, plus for bf16 one rounding to bf16): rbk::softmax_xent_errors_vs_fp64.
// allow_staging false: the kernel that reads each row twice, whatever the row's length.
void check_against_fp64(int64_t rows, int64_t cols, torch::ScalarType dtype, bool allow_staging = true) {
  const uint64_t seed = rbk::gpu_test::fresh_seed();
  std::printf("seed %llu rows %lld cols %lld %s%s\n", static_cast<unsigned long long>(seed), (long long)rows, (long long)cols,
              c10::toString(dtype), allow_staging ? "" : " (never staged)");
  const auto [x, t] = make_inputs(rows, cols, dtype, seed);
  const double scale = 1.0 / static_cast<double>(rows);
  const auto [row_loss, grad] = rbk::cuda::softmax_xent_cuda(x, t, scale, allow_staging);
  const auto err = rbk::softmax_xent_errors_vs_fp64(x, t, scale, row_loss, grad);
  EXPECT_LE(err.loss, rbk::kSoftmaxXentLossTol);
  EXPECT_LE(err.gradient_excess, 0.0) << "largest |grad - fp64| beyond the bound: " << err.gradient_excess;
  std::printf("  max |loss - fp64| %.3g, max |grad - fp64| %.3g (scale %.3g)\n", err.loss, err.gradient_max_abs, scale);
}
#endif

TEST(SoftmaxXentCuda, MatchesFp64Oracle) {
  if (!have_fused()) GTEST_SKIP() << "no CUDA device (or no CUDA kernels in this build)";
#if defined(RBK_WITH_CUDA_KERNELS)
  // Which kernel each case runs (kSoftmaxXentMaxStagedBytes = 104 KB on an H100 / H200): a row in
  // shared memory for bf16 x 50,000 (100 KB) and both dtypes at 1,001; read twice for fp32 x 50,000
  // (200 KB), bf16 x 120,000 and fp32 x 60,001, and wherever staging is switched off.
  for (const auto dtype : {torch::kBFloat16, torch::kFloat}) {
    for (const bool staging : {true, false}) {
      check_against_fp64(37, 50000, dtype, staging);  // 16-byte vectors
      check_against_fp64(64, 1001, dtype, staging);   // single elements
    }
  }
  check_against_fp64(5, 120000, torch::kBFloat16);  // vectors, too long to stage
  check_against_fp64(5, 60001, torch::kFloat);      // single elements, too long to stage
#endif
}

TEST(SoftmaxXentCuda, TargetOutOfRangeIsANanLossNotACrash) {
  if (!have_fused()) GTEST_SKIP() << "no CUDA device (or no CUDA kernels in this build)";
#if defined(RBK_WITH_CUDA_KERNELS)
  auto [x, t] = make_inputs(4, 100, torch::kBFloat16, 3);
  t[2] = 100;  // == cols
  const auto [row_loss, grad] = rbk::cuda::softmax_xent_cuda(x, t, 1.0);
  const auto l = row_loss.cpu();
  EXPECT_TRUE(std::isnan(l[2].item<double>()));
  for (int r : {0, 1, 3}) EXPECT_TRUE(std::isfinite(l[r].item<double>())) << "row " << r;
#endif
}

// The fused head + loss through autograd against the plain path (autocast bf16 linear, then
// cross_entropy on the fp32 logits), both scaled by 3 before backward: the loss within 1e-4 (two
// summation orders of fp32 log-sum-exp), every gradient within 2^-6 relative of its largest entry
// (both paths round G and the GEMM outputs to bf16 once each, 2^-8 apiece, in different places; a
// missing or doubled incoming gradient is off by a factor 3 or 1.5).
TEST(SoftmaxXentCuda, FusedHeadLossMatchesThePlainPath) {
  if (!have_fused()) GTEST_SKIP() << "no CUDA device (or no CUDA kernels in this build)";
  torch::manual_seed(rbk::gpu_test::fresh_seed());
  const int64_t T = 256, D = 64, V = 50000;
  const auto opt = torch::TensorOptions().device(torch::kCUDA);
  const auto f0 = torch::randn({T, D}, opt) * 2.0, w0 = torch::randn({V, D}, opt) * 0.3, b0 = torch::randn({V}, opt);
  const auto y = torch::randint(V, {T}, opt.dtype(torch::kInt64));
  auto leaves = [&] {
    return std::vector<Tensor>{f0.clone().requires_grad_(true), w0.clone().requires_grad_(true),
                               b0.clone().requires_grad_(true)};
  };
  const auto fused = leaves(), plain = leaves();
  const auto loss_fused = rbk::fused_linear_cross_entropy(fused[0], fused[1], fused[2], y, /*bf16=*/true);
  Tensor loss_plain;
  {
    rbk::AutocastGuard autocast(true);
    loss_plain = torch::nn::functional::cross_entropy(torch::linear(plain[0], plain[1], plain[2]).to(torch::kFloat), y);
  }
  EXPECT_NEAR(loss_fused.item<double>(), loss_plain.item<double>(), 1e-4);
  (loss_fused * 3.0).backward();
  (loss_plain * 3.0).backward();
  const char* names[] = {"features", "weight", "bias"};
  for (int i = 0; i < 3; ++i) {
    const auto a = fused[i].grad().to(torch::kDouble), b = plain[i].grad().to(torch::kDouble);
    const double diff = (a - b).abs().max().item<double>(), ref = b.abs().max().item<double>();
    std::printf("  d%s: max |fused - plain| %.3g of max %.3g\n", names[i], diff, ref);
    EXPECT_LE(diff, std::ldexp(1.0, -6) * ref) << names[i];
  }
}

}  // namespace
