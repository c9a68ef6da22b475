// The GPU busy fraction and where its time goes (gpu_busy.h; issue 25): the interval arithmetic,
// the kernel categories of real kernel names (PyTorch's, cuBLAS's, and every __global__ of
// core/kernels), the per-name and per-category sums, the version-guarded profiler call on this
// LibTorch (host activities, which every build records), and on a GPU a saturated stream against
// one left idle by the host.
#include "rbk/gpu_busy.h"
#include "rbk/options.h"
#include "rbk/torch_compat_profiler.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

TEST(GpuBusy, UnionOfIntervals) {
  EXPECT_DOUBLE_EQ(rbk::interval_union_length({{0.0, 1.0}, {0.5, 2.0}, {3.0, 4.0}, {5.0, 5.0}, {6.0, 5.5}}), 3.0);
  EXPECT_DOUBLE_EQ(rbk::interval_union_length({{3.0, 4.0}, {0.0, 1.0}, {1.0, 2.0}}), 3.0);  // touching ones merge
  EXPECT_DOUBLE_EQ(rbk::interval_union_length({}), 0.0);
  const rbk::GpuBusy b = rbk::gpu_busy_of({{0.0, 1.0}, {0.5, 2.0}, {3.0, 4.0}});
  EXPECT_TRUE(b.error.empty());
  EXPECT_EQ(b.activities, 3);
  EXPECT_DOUBLE_EQ(b.span_seconds, 4.0);
  EXPECT_DOUBLE_EQ(b.busy_seconds, 3.0);
  EXPECT_DOUBLE_EQ(b.busy_fraction, 0.75);
  EXPECT_FALSE(rbk::gpu_busy_of({}).error.empty());
}

TEST(GpuBusy, LargestGapAndWhereItStarts) {
  // Blocks [1, 2.5), [3, 4), [6.5, 7) (overlaps and touching intervals merged, an empty one dropped):
  // gaps of 0.5 at 1.5 and 2.5 at 3.0 after the span's start (1.0).
  const rbk::GpuBusy b = rbk::gpu_busy_of({{3.0, 4.0}, {1.0, 2.0}, {1.5, 2.5}, {6.5, 7.0}, {5.0, 5.0}, {2.5, 2.5}});
  EXPECT_DOUBLE_EQ(b.span_seconds, 6.0);
  EXPECT_DOUBLE_EQ(b.busy_seconds, 3.0);
  EXPECT_DOUBLE_EQ(b.largest_gap_seconds, 2.5);
  EXPECT_DOUBLE_EQ(b.largest_gap_start_seconds, 3.0);
  const rbk::GpuBusy solid = rbk::gpu_busy_of({{0.0, 1.0}, {1.0, 2.0}});  // touching: no gap
  EXPECT_DOUBLE_EQ(solid.largest_gap_seconds, 0.0);
  EXPECT_DOUBLE_EQ(solid.busy_fraction, 1.0);
}

TEST(GpuBusy, ProfilerRecordsHostOperatorsWithTheirNames) {
  const auto a = torch::randn({64, 64});
  const auto recorded = rbk::profiled_activities([&] { (void)torch::mm(a, a).sum(); }, false, nullptr);
  ASSERT_FALSE(recorded.empty());
  bool saw_mm = false;
  for (const auto& r : recorded) {
    EXPECT_LE(r.start_ns, r.end_ns) << r.name;
    saw_mm = saw_mm || r.name == "aten::mm";
  }
  EXPECT_TRUE(saw_mm) << "the events carry the operators' names";
}

// Names as LibTorch's profiler reports them on an H100 (demangled by Kineto; template arguments
// shortened where they do not matter), one or more per category, including those that match
// several rules and are settled by the rules' order.
TEST(GpuBusy, KernelCategoryOfRealKernelNames) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cublas",
       "matmul"},
      {"nvjet_tst_128x256_64x4_2x1_v_bz_coopA_NTN", "matmul"},
      {"ampere_bf16_s16816gemm_bf16_128x64_ldg8_f2f_stages_64x4_tn", "matmul"},
      {"void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x2_tn_align8>(cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x2_tn_align8::Params)",
       "matmul"},
      {"void cublasLt::splitKreduce_kernel<32, 16, int, float, __nv_bfloat16, float, false, __nv_bfloat16, __nv_bfloat16, "
       "true, false, false>(cublasLt::cublasSplitKParams<float>, float const*, __nv_bfloat16 const*, __nv_bfloat16*, float "
       "const*, float const*, __nv_bfloat16 const*, float const*, __nv_bfloat16*, void*, long, float*, int*)",
       "matmul"},
      {"void gemv2T_kernel_val<int, int, float, float, float, float, 128, 16, 4, 4, false, false, "
       "cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<float const>, cublasGemvTensorStridedBatched<float const>, "
       "cublasGemvTensorStridedBatched<float>, float> >(cublasGemvParamsEx<...>, float, float)",
       "matmul"},
      {"flash_fwd_kernel", "attention"},
      {"void pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<pytorch_flash::Flash_bwd_kernel_traits<64, 128, 128, "
       "8, 2, 4, 2, false, false, cutlass::bfloat16_t, pytorch_flash::Flash_kernel_traits<64, 128, 128, 8, "
       "cutlass::bfloat16_t> >, false, true, false, false, false, false, false, false>(pytorch_flash::Flash_bwd_params)",
       "attention"},
      {"fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel<cutlass::bfloat16_t, "
       "cutlass::arch::Sm80, true, 64, 64, 64, true, true>::Params)",
       "attention"},
      {"void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::BFloat16>, "
       "at::detail::Array<char*, 3> >(int, at::native::CUDAFunctor_add<c10::BFloat16>, at::detail::Array<char*, 3>)",
       "elementwise"},
      {"void at::native::unrolled_elementwise_kernel<at::native::BinaryFunctor<float, float, float, "
       "at::native::binary_internal::MulFunctor<float> >, at::detail::Array<char*, 3>, TrivialOffsetCalculator<2, "
       "unsigned int>, TrivialOffsetCalculator<1, unsigned int>, at::native::memory::LoadWithCast<2>, "
       "at::native::memory::StoreWithCast<1> >(int, ...)",
       "elementwise"},
      {"void at::native::elementwise_kernel<128, 2, at::native::gpu_kernel_impl_nocast<at::native::BinaryFunctor<float, "
       "float, float, at::native::binary_internal::MulFunctor<float> > >(at::TensorIteratorBase&, ...)::{lambda(int)#1}>(int, ...)",
       "elementwise"},
      {"void at::native::vectorized_elementwise_kernel<4, at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::"
       "{lambda()#3}::operator()() const::{lambda()#7}::operator()() const::{lambda(float)#1}, at::detail::Array<char*, 2> "
       ">(int, ...)",
       "copy"},
      {"void at::native::bfloat16_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda(float)#2}", "copy"},
      {"Memcpy DtoD (Device -> Device)", "copy"},
      {"Memcpy HtoD (Pageable -> Device)", "copy"},
      {"Memset (Device)", "copy"},
      {"void at::native::(anonymous namespace)::CatArrayBatchedCopy_aligned16_contig<at::native::(anonymous "
       "namespace)::OpaqueType<2u>, unsigned int, 3, 64, 64>(...)",
       "copy"},
      {"void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float, float, float, "
       "at::native::(anonymous namespace)::LogSoftMaxForwardEpilogue>(float*, float const*, int)",
       "softmax_loss"},
      {"void at::native::(anonymous namespace)::cunn_SoftMaxBackward<4, float, float, float, "
       "at::native::(anonymous namespace)::LogSoftMaxBackwardEpilogue>(float*, float const*, float const*, long)",
       "softmax_loss"},
      {"void at::native::(anonymous namespace)::nll_loss_forward_reduce_cuda_kernel_2d<float, float, long>(float*, float*, "
       "float const*, long const*, float const*, bool, long, long, long, long)",
       "softmax_loss"},
      {"void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::func_wrapper_t<float, "
       "at::native::sum_functor<float, float, float>::operator()(at::TensorIterator&)::{lambda(float, float)#1}>, "
       "unsigned int, float, 4, 4> >(at::native::ReduceOp<...>)",
       "reduction"},
      {"void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::native::(anonymous "
       "namespace)::TensorListMetadata<2>, at::native::(anonymous namespace)::BinaryOpListAlphaFunctor<float, 2, 2, 0>, "
       "std::plus<float>, float>(...)",
       "optimizer"},
      {"void at::native::lpnorm_cleanup<float, (at::native::NormType)1, float, float>(float const*, "
       "at::native::TensorListAddresses, int)",
       "optimizer"},
      {"void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float, float>(int, float, float const*, "
       "float const*, float const*, float*, float*, float*)",
       "normalization"},
      {"void at::native::(anonymous namespace)::GammaBetaBackwardCUDAKernel_32x32<float, float>(long, long, float "
       "const*, float const*, float const*, float const*, float*, float*)",
       "normalization"},
      {"void at::native::(anonymous namespace)::indexSelectLargeIndex<float, long, unsigned int, 2, 2, -2, true>(...)",
       "other"},
      {"void at_cuda_detail::cub::DeviceRadixSortOnesweepKernel<...>(...)", "other"},
  };
  for (const auto& [name, want] : cases) EXPECT_EQ(rbk::kernel_category(name), want) << name;
}

// Every __global__ of core/kernels, as Kineto names it: the selective-scan and wkv files' kernels
// are "scan", the fused loss's (softmax_xent.cu) "softmax_loss", the others "bk_core". Read from the sources, so that a new kernel which the rules do
// not know fails here.
TEST(GpuBusy, KernelCategoryOfEveryRbkKernel) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(rbk::resolve_repo_path("core/kernels/bk_stable_scan.cu")).parent_path();
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  // `__global__ void [__launch_bounds__(...)] name(`: the kernels' declarations in this tree.
  const std::regex kernel_re(R"(__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\()");
  std::set<std::string> seen;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (entry.path().extension() != ".cu" && entry.path().extension() != ".cuh") continue;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    const std::string src = text.str();
    const bool scan_file = file.rfind("selective_scan", 0) == 0 || file.rfind("wkv", 0) == 0;
    for (std::sregex_iterator it(src.begin(), src.end(), kernel_re), end; it != end; ++it) {
      const std::string kernel = (*it)[1];
      seen.insert(kernel);
      const std::string want = scan_file ? "scan" : file.rfind("softmax_xent", 0) == 0 ? "softmax_loss" : "bk_core";
      const std::string demangled = "void rbk::cuda::(anonymous namespace)::" + kernel + "<256, 4>(rbk::cuda::KParams)";
      EXPECT_EQ(rbk::kernel_category(demangled), want) << file << ": " << demangled;
    }
  }
  // The kernels the rules name (see gpu_busy.cpp): a parse that finds none of them fails here.
  for (const char* k : {"bk_tile_kernel", "bk_tile_aggregate_kernel", "bk_tile_state_scan", "bk_window_forward_kernel",
                        "bk_window_backward_kernel", "compat_theta_kernel", "selective_scan_fwd_kernel", "wkv_forward_kernel",
                        "softmax_xent_kernel"})
    EXPECT_TRUE(seen.count(k)) << k << " not found among the __global__ functions of " << dir;
  // Where the profiler gives a mangled name, the rbk::cuda namespace still decides.
  EXPECT_EQ(rbk::kernel_category("_ZN3rbk4cuda12_GLOBAL__N_112empty_kernelEv"), "bk_core");
  EXPECT_EQ(rbk::kernel_category("_ZN3rbk4cuda12_GLOBAL__N_118wkv_forward_kernelENS0_9WkvParamsE"), "scan");
}

TEST(GpuBusy, KernelCategoriesAreTheFixedSet) {
  const auto& all = rbk::kernel_categories();
  EXPECT_EQ(all.back(), "other");
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), all.size()) << "no category twice";
  for (const char* c : {"matmul", "attention", "bk_core", "scan", "softmax_loss", "optimizer", "copy", "reduction",
                        "elementwise", "other"})
    EXPECT_NE(std::find(all.begin(), all.end(), c), all.end()) << c;
  EXPECT_EQ(rbk::kernel_category(""), "other");
  EXPECT_EQ(rbk::kernel_category("some_new_kernel"), "other");
}

// Durations that are sums of powers of two, so that every sum below is exact in a double and the
// checks are equalities: a wrong count, duration, order or category changes one of them.
TEST(GpuBusy, KernelBreakdownSumsPerNameAndCategory) {
  const std::string gemm = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_cublas";
  const std::string bk = "void rbk::cuda::(anonymous namespace)::bk_tile_kernel<256, 4>(rbk::cuda::KParams)";
  const std::string copy = "Memcpy DtoD (Device -> Device)";
  const std::string add = "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float> >(int)";
  const std::string mul = "void at::native::vectorized_elementwise_kernel<4, at::native::MulFunctor<float> >(int)";
  const std::vector<rbk::DeviceActivity> acts{
      {gemm, 0.0, 0.25},  {bk, 0.25, 1.25},   {gemm, 1.25, 1.5},  {copy, 1.25, 1.375},  // the copy overlaps a gemm
      {add, 1.5, 1.75},   {gemm, 1.75, 2.0},  {mul, 2.0, 2.25},   {copy, 2.5, 2.625},   // a gap at 2.25..2.5
      {add, 3.0, 2.875},                                                               // reversed: counted, 0 s
  };
  const rbk::KernelBreakdown k = rbk::kernel_breakdown_of(acts, 2);
  EXPECT_DOUBLE_EQ(k.total_seconds, 0.75 + 1.0 + 0.25 + 0.25 + 0.25);
  ASSERT_EQ(k.top.size(), 2u);
  EXPECT_EQ(k.top[0].name, bk);
  EXPECT_EQ(k.top[0].category, "bk_core");
  EXPECT_EQ(k.top[0].count, 1);
  EXPECT_DOUBLE_EQ(k.top[0].seconds, 1.0);
  EXPECT_EQ(k.top[1].name, gemm);
  EXPECT_EQ(k.top[1].category, "matmul");
  EXPECT_EQ(k.top[1].count, 3);
  EXPECT_DOUBLE_EQ(k.top[1].seconds, 0.75);
  // The rest: add (2 activities, 0.25 s), copy (2, 0.25 s), mul (1, 0.25 s).
  EXPECT_EQ(k.rest_names, 3);
  EXPECT_EQ(k.rest_count, 5);
  EXPECT_DOUBLE_EQ(k.rest_seconds, 0.75);
  EXPECT_EQ(k.seconds_by_category.size(), rbk::kernel_categories().size()) << "every category, 0 where none ran";
  EXPECT_DOUBLE_EQ(k.seconds_by_category.at("matmul"), 0.75);
  EXPECT_DOUBLE_EQ(k.seconds_by_category.at("bk_core"), 1.0);
  EXPECT_DOUBLE_EQ(k.seconds_by_category.at("copy"), 0.25);
  EXPECT_DOUBLE_EQ(k.seconds_by_category.at("elementwise"), 0.5);
  EXPECT_DOUBLE_EQ(k.seconds_by_category.at("attention"), 0.0);
  double categories = 0.0, top = 0.0;
  for (const auto& [c, sec] : k.seconds_by_category) categories += sec;
  for (const auto& t : k.top) top += t.seconds;
  EXPECT_DOUBLE_EQ(categories, k.total_seconds) << "the categories partition the kernel time";
  EXPECT_DOUBLE_EQ(top + k.rest_seconds, k.total_seconds);

  // Equal seconds are listed by name; top_k beyond the names lists all, with no rest.
  const rbk::KernelBreakdown all = rbk::kernel_breakdown_of(acts, 10);
  ASSERT_EQ(all.top.size(), 5u);
  EXPECT_EQ(all.rest_names, 0);
  EXPECT_EQ(all.rest_count, 0);
  EXPECT_DOUBLE_EQ(all.rest_seconds, 0.0);
  EXPECT_EQ(all.top[2].name, copy);  // the three 0.25 s names in byte order: "M" < "v...C" < "v...M"
  EXPECT_EQ(all.top[3].name, add);
  EXPECT_EQ(all.top[4].name, mul);
  EXPECT_EQ(all.top[3].count, 2);

  // The same activities through gpu_busy_with_kernels_of: the busy numbers are those of the bare
  // intervals (the union, where the overlapping copy counts once), so the kernel total exceeds
  // busy_seconds.
  std::vector<std::pair<double, double>> intervals;
  for (const auto& a : acts) intervals.emplace_back(a.start, a.end);
  const rbk::GpuBusy plain = rbk::gpu_busy_of(intervals), named = rbk::gpu_busy_with_kernels_of(acts, 2);
  ASSERT_TRUE(named.error.empty());
  EXPECT_EQ(named.activities, plain.activities);
  EXPECT_DOUBLE_EQ(named.busy_seconds, plain.busy_seconds);
  EXPECT_DOUBLE_EQ(named.span_seconds, plain.span_seconds);
  EXPECT_DOUBLE_EQ(named.busy_fraction, plain.busy_fraction);
  EXPECT_DOUBLE_EQ(named.busy_seconds, 2.25 + 0.125);
  EXPECT_DOUBLE_EQ(named.kernels.total_seconds, k.total_seconds);
  EXPECT_GT(named.kernels.total_seconds, named.busy_seconds);
  const rbk::GpuBusy none = rbk::gpu_busy_with_kernels_of({});
  EXPECT_FALSE(none.error.empty());
  EXPECT_TRUE(none.kernels.top.empty());
  EXPECT_TRUE(none.kernels.seconds_by_category.empty());
}

TEST(GpuBusy, SaturatedStreamIsBusyAndAnIdleHostIsNot) {
  if (!torch::cuda::is_available()) {
    bool ran = false;
    const rbk::GpuBusy b = rbk::measure_gpu_busy([&] { ran = true; });
    EXPECT_FALSE(b.error.empty());
    EXPECT_FALSE(ran) << "without a device the work is not run";
    EXPECT_TRUE(b.kernels.top.empty() && b.kernels.seconds_by_category.empty()) << "and nothing is broken down";
    EXPECT_EQ(b.kernels.total_seconds, 0.0);
    GTEST_SKIP() << "no CUDA device";
  }
  const auto a = torch::randn({2048, 2048}, torch::kCUDA);
  const rbk::GpuBusy busy = rbk::measure_gpu_busy([&] {
    for (int i = 0; i < 20; ++i) (void)torch::mm(a, a);
  });
  ASSERT_TRUE(busy.error.empty()) << busy.error;
  EXPECT_GE(busy.activities, 20);
  EXPECT_GT(busy.busy_fraction, 0.9) << "back-to-back large matmuls";
  // Where the time went: the products' kernels, named and categorised from the same recording.
  ASSERT_FALSE(busy.kernels.top.empty());
  EXPECT_EQ(busy.kernels.top[0].category, "matmul") << busy.kernels.top[0].name;
  EXPECT_GE(busy.kernels.top[0].count, 20) << busy.kernels.top[0].name;
  EXPECT_GT(busy.kernels.seconds_by_category.at("matmul"), 0.9 * busy.kernels.total_seconds);
  double categories = 0.0;
  for (const auto& [c, sec] : busy.kernels.seconds_by_category) categories += sec;
  EXPECT_NEAR(categories, busy.kernels.total_seconds, 1e-9 * busy.kernels.total_seconds);
  const auto small = torch::randn({16, 16}, torch::kCUDA);
  const rbk::GpuBusy idle = rbk::measure_gpu_busy([&] {
    for (int i = 0; i < 5; ++i) {
      (void)torch::mm(small, small);
      torch::cuda::synchronize();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  ASSERT_TRUE(idle.error.empty()) << idle.error;
  EXPECT_LT(idle.busy_fraction, 0.5) << "tiny kernels 2 ms apart";
}
