#pragma once
// A named host operator in LibTorch's profiler (an operator-scope RecordFunction, not a user range:
// profiled_scope.cpp says why) around work that launches CUDA kernels without going through an ATen
// operator (rbk's own kernels, launched by their glue): without it the profiler links those kernels
// to no host operator, and kernel attribution (kernel_attribution.h) reports them as unattributed
// (session 32: the fused loss kernel, 2.5 of the 19.9 ms of a 32k step).
// Costs a check of the thread's profiler callbacks when no profiler runs.
#include <memory>

namespace rbk {

class ProfiledScope {
 public:
  // name: a string literal (the profiler keeps the pointer).
  explicit ProfiledScope(const char* name);
  ~ProfiledScope();
  ProfiledScope(const ProfiledScope&) = delete;
  ProfiledScope& operator=(const ProfiledScope&) = delete;

 private:
  // at::RecordFunction's layout depends on NDEBUG, so only profiled_scope.cpp, compiled as LibTorch
  // was, sees it.
  struct Range;
  std::unique_ptr<Range> range_;
};

}  // namespace rbk
