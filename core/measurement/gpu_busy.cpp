// The GPU busy fraction and where its time goes (gpu_busy.h). Compiled like flop_count.cpp (NDEBUG,
// no precompiled header): the profiler's headers are LibTorch's, built with NDEBUG.
#include "rbk/gpu_busy.h"

#include "rbk/torch_compat_profiler.h"

#include <algorithm>
#include <cctype>
#include <exception>
#include <tuple>

namespace rbk {

namespace {

struct CategoryRule {
  const char* category;
  std::vector<const char*> substrings;  // lower case; any one of them matches
};

// First match wins, so a name that matches several rules goes to the earliest; the order is chosen
// for the names that do (examples in tests/lm/test_gpu_busy.cpp):
//   scan          rbk's Mamba selective scan and RWKV wkv kernels (core/kernels/selective_scan*.cu,
//                 wkv.cu); before bk_core, whose namespace rule would take them too.
//   softmax_loss  softmax and log-softmax forward and backward (cunn_SoftMax*, softmax_warp_*),
//                 nll_loss, cross_entropy, and rbk's fused softmax_xent_kernel
//                 (core/kernels/softmax_xent.cu): the LM head's loss. Before bk_core, for rbk's
//                 kernel; no BK-Core kernel name says softmax.
//   bk_core       rbk's BK-Core kernels (core/kernels/bk_*.cu: bk_tile_*, bk_window_*, the compat
//                 path's compat_{theta,phi,assemble}_kernel), and any other kernel of namespace
//                 rbk::cuda (demangled "rbk::cuda::", mangled "3rbk4cuda"): all of rbk's kernels
//                 that are not a scan's or the loss's serve the BK-Core. Before the library rules,
//                 so that a library type in an rbk kernel's template arguments cannot claim it.
//   attention     flash attention (flash_fwd/bwd_*), memory-efficient attention (fmha_cutlass*,
//                 AttentionKernel), cuDNN's SDPA; before matmul, since fmha_cutlass* and flash's
//                 cutlass:: template arguments say "cutlass".
//   matmul        cuBLAS / cuBLASLt / CUTLASS matrix products: gemm, gemv, cutlass, cublas, nvjet
//                 (cuBLASLt's Hopper kernels), xmma (sm80_/sm90_xmma_gemm_*), splitKreduce (cuBLAS's
//                 split-K reduction, which the reduction rule would otherwise take).
//   optimizer     multi_tensor_apply (the _foreach_* operations of rbk::MultiTensorAdamW and of
//                 gradient clipping), adam (fused AdamW), lpnorm (_foreach_norm's second kernel).
//   normalization layer_norm / layernorm / gammabeta (LayerNorm forward and backward), rms_norm,
//                 batch_norm: not in the list, but every model's blocks run them.
//   copy          Memcpy and Memset activities, copy_kernel (direct_copy_kernel_cuda: dtype casts and
//                 .contiguous(), launched as an elementwise kernel, hence before elementwise),
//                 CatArrayBatchedCopy (torch.cat).
//   reduction     reduce_kernel (at::native's sum / mean / norm / max), cub's DeviceReduce and
//                 DeviceSegmentedReduce.
//   elementwise   elementwise: TensorIterator's pointwise kernels (vectorized_elementwise_kernel,
//                 unrolled_elementwise_kernel, elementwise_kernel all say it; "vectorized" alone
//                 would also take gathers such as vectorized_gather_kernel).
//   other         everything else (embedding lookups and their backward, sorts, index kernels, ...).
const std::vector<CategoryRule>& category_rules() {
  static const std::vector<CategoryRule> rules{
      {"scan", {"selective_scan", "wkv_"}},
      {"softmax_loss", {"softmax", "nll_loss", "cross_entropy"}},
      {"bk_core", {"bk_tile", "bk_window", "compat_theta", "compat_phi", "compat_assemble", "rbk::cuda::", "3rbk4cuda"}},
      {"attention", {"flash", "fmha", "attention", "sdpa"}},
      {"matmul", {"gemm", "gemv", "cutlass", "cublas", "nvjet", "xmma", "splitkreduce"}},
      {"optimizer", {"multi_tensor_apply", "adam", "lpnorm"}},
      {"normalization", {"layer_norm", "layernorm", "gammabeta", "rms_norm", "rmsnorm", "batch_norm", "batchnorm"}},
      {"copy", {"memcpy", "memset", "copy_kernel", "catarraybatchedcopy"}},
      {"reduction", {"reduce_kernel", "devicereduce", "devicesegmentedreduce"}},
      {"elementwise", {"elementwise"}},
  };
  return rules;
}

constexpr const char* kOtherCategory = "other";

}  // namespace

const std::vector<std::string>& kernel_categories() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& r : category_rules()) v.emplace_back(r.category);
    v.emplace_back(kOtherCategory);
    return v;
  }();
  return names;
}

std::string kernel_category(const std::string& name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const auto& rule : category_rules())
    for (const char* s : rule.substrings)
      if (lower.find(s) != std::string::npos) return rule.category;
  return kOtherCategory;
}

KernelBreakdown kernel_breakdown_of(const std::vector<DeviceActivity>& activities, std::size_t top_k) {
  std::map<std::string, KernelTime> by_name;
  for (const auto& a : activities) {
    KernelTime& k = by_name[a.name];
    k.count += 1;
    k.seconds += std::max(0.0, a.end - a.start);
  }
  KernelBreakdown r;
  for (const auto& c : kernel_categories()) r.seconds_by_category[c] = 0.0;
  std::vector<KernelTime> all;
  all.reserve(by_name.size());
  for (auto& [name, k] : by_name) {
    k.name = name;
    k.category = kernel_category(name);
    r.seconds_by_category[k.category] += k.seconds;
    r.total_seconds += k.seconds;
    all.push_back(std::move(k));
  }
  // Ties by name: the same recording always lists the same names.
  std::sort(all.begin(), all.end(), [](const KernelTime& a, const KernelTime& b) {
    return std::tie(b.seconds, a.name) < std::tie(a.seconds, b.name);
  });
  const std::size_t shown = std::min(top_k, all.size());
  r.top.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(shown));
  for (std::size_t i = shown; i < all.size(); ++i) {
    r.rest_names += 1;
    r.rest_count += all[i].count;
    r.rest_seconds += all[i].seconds;
  }
  return r;
}

namespace {

// The union of [start, end) intervals as disjoint, sorted blocks (empty and reversed ones dropped).
std::vector<std::pair<double, double>> union_blocks(std::vector<std::pair<double, double>> intervals) {
  std::sort(intervals.begin(), intervals.end());
  std::vector<std::pair<double, double>> blocks;
  for (const auto& [s, e] : intervals) {
    if (!(e > s)) continue;
    if (!blocks.empty() && s <= blocks.back().second) {
      blocks.back().second = std::max(blocks.back().second, e);
      continue;
    }
    blocks.emplace_back(s, e);
  }
  return blocks;
}

}  // namespace

double interval_union_length(std::vector<std::pair<double, double>> intervals) {
  double total = 0.0;
  for (const auto& [s, e] : union_blocks(std::move(intervals))) total += e - s;
  return total;
}

GpuBusy gpu_busy_of(const std::vector<std::pair<double, double>>& intervals) {
  GpuBusy r;
  r.activities = static_cast<int64_t>(intervals.size());
  if (intervals.empty()) {
    r.error = "no device activity was recorded";
    return r;
  }
  double first = intervals.front().first, last = intervals.front().second;
  for (const auto& [s, e] : intervals) {
    first = std::min(first, s);
    last = std::max(last, e);
  }
  r.span_seconds = last - first;
  const auto blocks = union_blocks(intervals);
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    r.busy_seconds += blocks[i].second - blocks[i].first;
    if (i == 0) continue;
    const double gap = blocks[i].first - blocks[i - 1].second;
    if (gap > r.largest_gap_seconds) {
      r.largest_gap_seconds = gap;
      r.largest_gap_start_seconds = blocks[i - 1].second - first;
    }
  }
  r.busy_fraction = r.span_seconds > 0 ? r.busy_seconds / r.span_seconds : 1.0;
  return r;
}

GpuBusy gpu_busy_with_kernels_of(const std::vector<DeviceActivity>& activities, std::size_t top_k) {
  std::vector<std::pair<double, double>> intervals;
  intervals.reserve(activities.size());
  for (const auto& a : activities) intervals.emplace_back(a.start, a.end);
  GpuBusy r = gpu_busy_of(intervals);
  if (r.error.empty()) r.kernels = kernel_breakdown_of(activities, top_k);
  return r;
}

GpuBusy measure_gpu_busy(const std::function<void()>& work, std::size_t top_k) {
  GpuBusy r;
  if (!torch::cuda::is_available()) {
    r.error = "no CUDA device";
    return r;
  }
  try {
    auto recorded = profiled_activities(work, true, [] { torch::cuda::synchronize(); });
    const int64_t origin = earliest_start_ns(recorded);
    std::vector<DeviceActivity> seconds;
    seconds.reserve(recorded.size());
    for (auto& a : recorded)
      seconds.push_back({std::move(a.name), 1e-9 * static_cast<double>(a.start_ns - origin),
                         1e-9 * static_cast<double>(a.end_ns - origin)});
    return gpu_busy_with_kernels_of(seconds, top_k);
  } catch (const std::exception& e) {
    r.error = std::string("the profiler could not record CUDA activities: ") + e.what();
    return r;
  }
}

}  // namespace rbk
