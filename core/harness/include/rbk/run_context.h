// Provenance of every result file: which code, built how, ran where, when, with which seed, and
// what the machine could do (the BLAS in use and a measured fp32 GEMM rate).
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rbk {

// The state of one git working tree, read with git itself (never touching its real index).
struct GitState {
  bool is_repo = false;            // git ran and `dir` is the top level of a work tree
  std::string commit;              // HEAD, 40 hex
  std::string head_tree;           // HEAD^{tree}
  // The tree hash git would give the tracked files as they are on disk: `git add -u` +
  // `git write-tree` into a temporary index (a copy of the real one). "" when that failed.
  std::string tree_hash;
  std::optional<bool> untracked_present;  // `git ls-files --others --exclude-standard` non-empty
  std::string dirty = "unknown";   // "true" / "false" (tree_hash vs head_tree) / "unknown"
  std::string error;               // why is_repo is false or a field is missing, for messages
};

// Reads the git state of the work tree whose top level is `dir`. A directory that is not a
// work tree's top level (no .git, git missing, or a copied tree inside some other repository)
// gives is_repo = false. Fast (a few git calls) and never throws.
GitState capture_git_state(const std::string& dir);

// Which BLAS library provides sgemm_ in this process, from /proc/self/maps and the dynamic
// linker: "openblas-pthread (/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3)", ...,
// or "unknown". `mapped` receives every BLAS-like library mapped into the process.
std::string loaded_blas_library(std::vector<std::string>* mapped = nullptr);

// Sets OpenBLAS's own thread pool to `threads` (at::set_num_threads does not reach a pthread
// OpenBLAS); returns OpenBLAS's thread count afterwards, or -1 when no OpenBLAS is loaded.
int set_blas_threads(int threads);

// The fp32 GEMM size and sampling that measure_sgemm_gflops uses; see run_context.cpp for why.
constexpr int64_t kSgemmProbeSize = 512;

// Measured fp32 GEMM rate of torch::mm on the CPU at the current LibTorch/BLAS thread count, in
// GFLOP/s (2 n^3 flops per product): the best of `samples` samples of >= 30 ms each.
double measure_sgemm_gflops(int64_t n = kSgemmProbeSize, int samples = 3);

// The CPU a result ran on, from /proc/cpuinfo's text: fp32 results move in their last bits and CPU
// speed ratios by up to 4.5x between CPUs (NOTES.md, session 15), and sgemm_gflops alone does not
// say which CPU it was. vector_extensions: those of kVectorExtensions the CPU flags, in that order.
struct CpuIdentity {
  std::string model;                           // first "model name" ("" where absent)
  std::vector<std::string> vector_extensions;  // e.g. {"sse4_2", "avx", "avx2", "fma", "avx512f"}
};
CpuIdentity parse_cpuinfo(const std::string& cpuinfo_text);
CpuIdentity this_cpu();  // parse_cpuinfo of /proc/cpuinfo; empty where unreadable

struct RunContext {
  std::string git_commit;        // 40-hex sha, or "unknown"
  std::string git_dirty;         // "true" / "false" / "unknown"
  std::string git_source;        // how git_commit was found: "git", "env", "configure-time"
  std::string git_dirty_source;  // how git_dirty was found: "git", "env", "configure-time"
  // GitState::tree_hash where git exists; where it does not, RBK_GIT_TREE_HASH when that is a
  // 40-hex hash (run_device.sh: scripts/tree_hash.py over the files sent); else "" (JSON null).
  // The ledger checks it against the recorded commit's tree either way.
  std::string git_tree_hash;
  std::string git_tree_hash_source;  // "git", "env" or "" (none recorded)
  std::optional<bool> git_untracked_present;  // null where git does not exist
  // Where RBK_GIT_COMMIT / RBK_GIT_DIRTY are set and git exists, the disagreement between them
  // and git ("" = none); git's values are recorded, the environment's are quoted here.
  std::string git_env_mismatch;
  std::string build_type;        // CMAKE_BUILD_TYPE
  std::string compiler;          // "GNU 12.2.0"
  std::string torch_version;
  std::string cuda_version;      // torch's CUDA runtime, "none" on CPU builds
  std::string cuda_compiler;     // nvcc version the kernels were built with, "" if none
  std::string device;            // GPU name or "cpu"
  std::string host;
  int cpu_threads = 1;
  CpuIdentity cpu;               // this_cpu()
  // Filled by probe_compute() (experiments call it once their thread count is set).
  std::string blas = "not probed";     // loaded_blas_library()
  std::vector<std::string> blas_mapped;
  int blas_threads = -1;               // OpenBLAS's pool, -1 (null) where not OpenBLAS
  double sgemm_gflops = -1;            // measure_sgemm_gflops(), -1 (null) when not probed
  uint64_t seed = 0;
  std::vector<std::string> argv;
  std::string started_at;        // ISO-8601 UTC
  std::string finished_at;

  // Captures everything except finished_at (see finish()) and the compute probe.
  static RunContext capture(int argc, char** argv, uint64_t seed);
  // The git fields from a GitState and the RBK_GIT_COMMIT / RBK_GIT_DIRTY / RBK_GIT_TREE_HASH
  // values (nullptr = unset): git wins where it exists (a mismatch is recorded and warned about),
  // the environment where it does not, configure-time values last.
  void set_git_provenance(const GitState& git, const char* env_commit, const char* env_dirty,
                          const char* env_tree_hash = nullptr);
  // BLAS in use, its thread count and the sgemm rate, at the current thread count (~0.1-0.3 s).
  void probe_compute();
  void finish();
  nlohmann::json to_json() const;
};

// Current UTC time, ISO-8601 with seconds ("2026-11-23T15:51:02Z").
std::string utc_now_iso8601();

}  // namespace rbk
