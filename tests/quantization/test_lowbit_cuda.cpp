// The real low-bit matmuls of torch_compat_lowbit.h (issue 20, claim C13): on a CUDA device with a
// LibTorch that has them, INT8 (_int_mm) and INT4 (_weight_int4pack_mm) match their references
// built from the same integers before any time is reported (the CPU case, "skipped" with the
// reason, is in test_quantization.cpp).
#include "rbk/torch_compat_lowbit.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <random>

namespace {

uint64_t fresh_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

TEST(LowbitMatmul, Int8AndInt4MatchTheirReferencesOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto dev = torch::Device(torch::kCUDA);
  if (!rbk::int4_matmul_unavailable_reason(dev).empty()) GTEST_SKIP() << rbk::int4_matmul_unavailable_reason(dev);
  const uint64_t seed = fresh_seed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  torch::manual_seed(seed);
  // K 512 (inner K tiles 8), group 128 and 64; N 256; M 96 (> 16, as _int_mm needs).
  const auto x = torch::randn({96, 512}, torch::TensorOptions().device(dev));
  const auto w = torch::randn({256, 512}, torch::TensorOptions().device(dev)) * 0.05;
  const auto i8 = rbk::time_int8_matmul(x, w, 3);
  EXPECT_EQ(i8.at("status"), "ok") << i8.dump();
  for (int64_t group : {128, 64}) {
    const auto i4 = rbk::time_int4_matmul(x, w, group, 3);
    EXPECT_EQ(i4.at("status"), "ok") << i4.dump();
    std::printf("int4 group %lld: %s\n", static_cast<long long>(group), i4.dump().c_str());
  }
  // A group size the kernel does not take is refused with the reason, never run.
  EXPECT_EQ(rbk::time_int4_matmul(x, w, 48, 1).at("status"), "skipped");
}

}  // namespace
