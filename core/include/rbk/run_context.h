// Provenance of every result file: which code, built how, ran where, when, with which seed.
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace rbk {

struct RunContext {
  std::string git_commit;     // 40-hex sha, or "unknown"
  std::string git_dirty;      // "true" / "false" / "unknown"
  std::string git_source;     // how git_commit was found: "git", "env", "configure-time"
  std::string build_type;     // CMAKE_BUILD_TYPE
  std::string compiler;       // "GNU 12.2.0"
  std::string torch_version;
  std::string cuda_version;   // torch's CUDA runtime, "none" on CPU builds
  std::string cuda_compiler;  // nvcc version the kernels were built with, "" if none
  std::string device;         // GPU name or "cpu"
  std::string host;
  int cpu_threads = 1;
  uint64_t seed = 0;
  std::vector<std::string> argv;
  std::string started_at;     // ISO-8601 UTC
  std::string finished_at;

  // Captures everything except finished_at (see finish()).
  static RunContext capture(int argc, char** argv, uint64_t seed);
  void finish();
  nlohmann::json to_json() const;
};

// Current UTC time, ISO-8601 with seconds ("2026-11-23T15:51:02Z").
std::string utc_now_iso8601();

}  // namespace rbk
