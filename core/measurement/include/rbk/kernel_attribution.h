// Which host operators launched the kernels of a stretch of work (issue 25: gpu_busy.h says how much
// of a step is copies and elementwise kernels, not which operators of which layer issue them). One
// eager run under the profiler records the host's operators and the device's kernels together; each
// kernel is linked to the operator that launched it (the profiler's correlation id), and that
// operator to the operators enclosing it on its thread (a forward's module code, or the autograd
// node of a backward). The kernels' durations are then summed per (category, operator stack).
// A captured CUDA graph's replay launches its kernels without operators: attribute an eager run of
// the same step. Host recording slows the host, which does not change the kernels' durations.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rbk {

// How many (category, operator stack) rows KernelAttribution::top lists by default.
constexpr std::size_t kTopAttributedRows = 30;
// How many operators a stack names by default: the launching one and three enclosing ones.
constexpr std::size_t kAttributionDepth = 4;

// A host operator as the profiler records it: name ("aten::copy_"), input shapes, [start, end) in
// seconds from a common origin, the correlation id kernels link to, and the thread it ran on.
struct HostOp {
  std::string name, shapes;
  double start = 0.0, end = 0.0;
  uint64_t correlation = 0, thread = 0;
};

// A device activity and the correlation id of the host operator that launched it (0: none).
struct LaunchedKernel {
  std::string name;
  double start = 0.0, end = 0.0;
  uint64_t linked_correlation = 0;
};

struct AttributedKernelTime {
  std::string category;  // kernel_category of the kernels (gpu_busy.h)
  // Outermost first, " > " between operators, the launching operator last with its input shapes:
  // "autograd::engine::evaluate_function: ToCopyBackward0 > aten::to > aten::_to_copy > aten::copy_
  // [[8, 2048, 256], [8, 2048, 256], []]"; kNoHostOperator where the kernel links to no recorded one.
  std::string op_stack;
  std::string example_kernel;  // the name of the longest-running kernel in the row
  int64_t calls = 0;
  double seconds = 0.0;  // the sum of the kernels' durations
};

inline const char* const kNoHostOperator = "(no host operator)";

struct KernelAttribution {
  std::vector<AttributedKernelTime> top;  // largest seconds first (equal: by category, then stack)
  int64_t rest_rows = 0, rest_calls = 0;  // rows not in top
  double rest_seconds = 0.0;
  double total_seconds = 0.0;         // every kernel's duration (reversed ones count 0)
  double unattributed_seconds = 0.0;  // kernels that link to no recorded host operator
  std::string error;                  // non-empty: nothing was measured, and why
};

// Attributes kernels to operator stacks of at most `depth` (>= 1) operators and lists the top_k
// rows. Host operators whose names are CUDA runtime calls (cudaLaunchKernel, cuLaunchKernel, ...)
// are not operators here: they are recorded beside the operators with correlation ids of their own.
KernelAttribution attribute_kernels(const std::vector<HostOp>& ops, const std::vector<LaunchedKernel>& kernels,
                                    std::size_t depth = kAttributionDepth, std::size_t top_k = kTopAttributedRows);

// Runs work once under the profiler recording host operators (with input shapes) and CUDA
// activities, waits for the device, and attributes the kernels. Without a CUDA device work is not
// run; there, and where work throws (e.g. out of memory) or the profiler cannot record, error says why.
KernelAttribution measure_kernel_attribution(const std::function<void()>& work, std::size_t depth = kAttributionDepth,
                                             std::size_t top_k = kTopAttributedRows);

}  // namespace rbk
