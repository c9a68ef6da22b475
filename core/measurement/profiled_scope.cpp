// See profiled_scope.h. Compiled with NDEBUG and without the PCH, like flop_count.cpp
// (core/CMakeLists.txt): RecordFunction's members differ between NDEBUG and debug builds.
#include "rbk/profiled_scope.h"

#include <ATen/record_function.h>

namespace rbk {

struct ProfiledScope::Range {
  at::RecordFunction guard{at::RecordScope::USER_SCOPE};
};

ProfiledScope::ProfiledScope(const char* name) {
  // No allocation unless a profiler (or another observer of user scopes) is listening.
  if (!at::hasCallbacks()) return;
  range_ = std::make_unique<Range>();
  if (range_->guard.isActive()) range_->guard.before(name);
}

ProfiledScope::~ProfiledScope() = default;

}  // namespace rbk
