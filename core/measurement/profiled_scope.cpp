// See profiled_scope.h. Compiled with NDEBUG and without the PCH, like flop_count.cpp
// (core/CMakeLists.txt): RecordFunction's members differ between NDEBUG and debug builds.
#include "rbk/profiled_scope.h"

#include <ATen/record_function.h>

namespace rbk {

// FUNCTION, an operator's scope, not USER_SCOPE: the profiler pushes a user range's correlation id
// as a separate "user" correlation, and a kernel's linked operator is the innermost non-user range
// around its launch. With USER_SCOPE the loss kernel stayed without an operator on an H100 (session
// 33, KernelAttributionCuda.OwnKernelsLandUnderTheirGlueScope). As an operator it is also counted
// by rbk::OperatorCallCounter, once per launch: the host calls it does stand for.
struct ProfiledScope::Range {
  at::RecordFunction guard{at::RecordScope::FUNCTION};
};

ProfiledScope::ProfiledScope(const char* name) {
  // No allocation unless a profiler (or another observer of user scopes) is listening.
  if (!at::hasCallbacks()) return;
  range_ = std::make_unique<Range>();
  if (range_->guard.isActive()) range_->guard.before(name);
}

ProfiledScope::~ProfiledScope() = default;

}  // namespace rbk
