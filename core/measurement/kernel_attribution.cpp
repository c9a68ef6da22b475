// Kernels attributed to the host operators that launched them (kernel_attribution.h). Compiled like
// gpu_busy.cpp (NDEBUG, no precompiled header): it includes LibTorch's profiler headers.
#include "rbk/kernel_attribution.h"

#include "rbk/gpu_busy.h"
#include "rbk/torch_compat_profiler.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <stdexcept>
#include <tuple>
#include <unordered_map>

namespace rbk {

namespace {

// cudaLaunchKernel, cudaMemcpyAsync, cuLaunchKernelEx, ...: the runtime's and driver's calls.
bool is_cuda_api_call(const std::string& name) {
  if (name.rfind("cuda", 0) == 0) return true;
  return name.size() > 2 && name[0] == 'c' && name[1] == 'u' && std::isupper(static_cast<unsigned char>(name[2]));
}

// The operator stack of the operator at index `launcher` of `ops` (sorted by start, then longer
// first): the operators of its thread whose [start, end) contains its own, outermost first, the
// innermost depth - 1 of them kept, then the launcher with its input shapes.
std::string stack_of(const std::vector<HostOp>& ops, std::size_t launcher, std::size_t depth) {
  const HostOp& op = ops[launcher];
  std::vector<const HostOp*> enclosing;
  for (std::size_t i = 0; i < launcher; ++i) {
    const HostOp& o = ops[i];
    if (o.thread == op.thread && o.start <= op.start && o.end >= op.end) enclosing.push_back(&o);
  }
  const std::size_t keep = std::min(enclosing.size(), depth - 1);
  std::string s;
  for (std::size_t i = enclosing.size() - keep; i < enclosing.size(); ++i) s += enclosing[i]->name + " > ";
  s += op.name;
  if (!op.shapes.empty()) s += " [" + op.shapes + "]";
  return s;
}

}  // namespace

KernelAttribution attribute_kernels(const std::vector<HostOp>& ops_in, const std::vector<LaunchedKernel>& kernels,
                                    std::size_t depth, std::size_t top_k) {
  if (depth == 0) throw std::invalid_argument("attribute_kernels: depth must be >= 1 (the launching operator)");
  KernelAttribution r;
  if (kernels.empty()) {
    r.error = "no device activity was recorded";
    return r;
  }
  std::vector<HostOp> ops;
  ops.reserve(ops_in.size());
  for (const auto& o : ops_in)
    if (!is_cuda_api_call(o.name)) ops.push_back(o);
  // Enclosing operators come before the operators they enclose (equal starts: the longer first).
  std::stable_sort(ops.begin(), ops.end(), [](const HostOp& a, const HostOp& b) {
    return std::tie(a.start, b.end) < std::tie(b.start, a.end);
  });
  std::unordered_map<uint64_t, std::size_t> op_of_correlation;
  for (std::size_t i = 0; i < ops.size(); ++i)
    if (ops[i].correlation != 0) op_of_correlation.emplace(ops[i].correlation, i);

  struct Row {
    AttributedKernelTime t;
    double longest = -1.0;
  };
  std::map<std::pair<std::string, std::string>, Row> rows;
  std::unordered_map<std::size_t, std::string> stack_cache;
  for (const auto& k : kernels) {
    const double seconds = std::max(0.0, k.end - k.start);
    r.total_seconds += seconds;
    std::string stack = kNoHostOperator;
    const auto found = k.linked_correlation != 0 ? op_of_correlation.find(k.linked_correlation) : op_of_correlation.end();
    if (found != op_of_correlation.end()) {
      auto cached = stack_cache.find(found->second);
      if (cached == stack_cache.end()) cached = stack_cache.emplace(found->second, stack_of(ops, found->second, depth)).first;
      stack = cached->second;
    } else {
      r.unattributed_seconds += seconds;
    }
    const std::string category = kernel_category(k.name);
    Row& row = rows[{category, stack}];
    row.t.category = category;
    row.t.op_stack = stack;
    row.t.calls += 1;
    row.t.seconds += seconds;
    if (seconds > row.longest) {
      row.longest = seconds;
      row.t.example_kernel = k.name;
    }
  }
  std::vector<AttributedKernelTime> all;
  all.reserve(rows.size());
  for (auto& [key, row] : rows) all.push_back(std::move(row.t));
  std::sort(all.begin(), all.end(), [](const AttributedKernelTime& a, const AttributedKernelTime& b) {
    return std::tie(b.seconds, a.category, a.op_stack) < std::tie(a.seconds, b.category, b.op_stack);
  });
  const std::size_t shown = std::min(top_k, all.size());
  r.top.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(shown));
  for (std::size_t i = shown; i < all.size(); ++i) {
    r.rest_rows += 1;
    r.rest_calls += all[i].calls;
    r.rest_seconds += all[i].seconds;
  }
  return r;
}

KernelAttribution measure_kernel_attribution(const std::function<void()>& work, std::size_t depth, std::size_t top_k) {
  KernelAttribution r;
  if (!torch::cuda::is_available()) {
    r.error = "no CUDA device";
    return r;
  }
  std::vector<ProfiledActivity> recorded;
  try {
    recorded = profiled_ops_and_kernels(work, [] { torch::cuda::synchronize(); });
  } catch (const std::exception& e) {
    r.error = std::string("the work or the profiler failed (host operators and CUDA activities): ") + e.what();
    return r;
  }
  const int64_t origin = earliest_start_ns(recorded);
  const auto sec = [origin](int64_t ns) { return 1e-9 * static_cast<double>(ns - origin); };
  std::vector<HostOp> ops;
  std::vector<LaunchedKernel> kernels;
  for (auto& a : recorded) {
    if (a.on_device)
      kernels.push_back({std::move(a.name), sec(a.start_ns), sec(a.end_ns), a.linked_correlation});
    else
      ops.push_back({std::move(a.name), std::move(a.shapes), sec(a.start_ns), sec(a.end_ns), a.correlation, a.thread});
  }
  return attribute_kernels(ops, kernels, depth, top_k);
}

}  // namespace rbk
