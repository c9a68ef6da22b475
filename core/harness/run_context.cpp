// RunContext: provenance recorded in every result file (issue 16: a self-declared commit must be
// checkable, and a CPU timing must say which BLAS and how fast a GEMM was on that machine).
#include "rbk/run_context.h"
#include "rbk/shell_command.h"

#include "rbk/results.h"
#include "rbk/torch_compat.h"

#include <dlfcn.h>
#include <unistd.h>

#include <ATen/Version.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

namespace rbk {
namespace fs = std::filesystem;
namespace {

// Runs a shell command, returns its stdout trimmed of trailing space, and its exit status.
std::string run_capture(const std::string& cmd, int* status) {
  ShellCommandResult r = run_shell_command(cmd);
  *status = r.status;
  while (!r.output.empty() && (r.output.back() == '\n' || r.output.back() == ' ')) r.output.pop_back();
  return r.output;
}

bool is_hex40(const std::string& s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)); });
}

// `git -C dir <args>` with optional locks off, so that no command here refreshes (writes) the
// real index the way `git status` otherwise may; stderr is dropped, the status is returned.
std::string git_in(const std::string& dir, const std::string& args, int* status, const std::string& env = "") {
  return run_capture(env + "GIT_OPTIONAL_LOCKS=0 git -C " + shell_quote(dir) + " " + args + " 2>/dev/null", status);
}

// The tree hash of the tracked files as they are on disk. The temporary index starts as a copy
// of the real one (keeping its mtime, which git's racy-entry check compares file mtimes with),
// so its stat cache spares re-hashing unchanged files and files staged but not yet committed
// count as tracked; without a real index it starts from HEAD's tree.
std::string working_tree_hash(const std::string& dir, std::string* error) {
  char tmpl[] = "/tmp/rbk-git-index.XXXXXX";
  const char* tmp_dir = mkdtemp(tmpl);
  if (!tmp_dir) {
    *error = "cannot create a temporary directory for the index";
    return "";
  }
  const std::string tmp_index = std::string(tmp_dir) + "/index";
  const std::string env = "GIT_INDEX_FILE=" + shell_quote(tmp_index) + " ";
  std::string hash;
  int st = 0;
  std::string real_index = git_in(dir, "rev-parse --git-path index", &st);
  if (st == 0 && !real_index.empty() && fs::path(real_index).is_relative()) real_index = (fs::path(dir) / real_index).string();
  std::error_code ec;
  bool seeded = false;
  if (st == 0 && fs::is_regular_file(real_index, ec)) {
    fs::copy_file(real_index, tmp_index, fs::copy_options::overwrite_existing, ec);
    if (!ec) {
      fs::last_write_time(tmp_index, fs::last_write_time(real_index, ec), ec);
      seeded = !ec;
    }
  }
  if (!seeded) {
    git_in(dir, "read-tree HEAD", &st, env);
    seeded = st == 0;
  }
  if (seeded) {
    git_in(dir, "add -u", &st, env);
    if (st == 0) {
      const std::string out = git_in(dir, "write-tree", &st, env);
      if (st == 0 && is_hex40(out)) hash = out;
    }
  }
  if (hash.empty()) *error = "git write-tree of a temporary index failed";
  remove_directory_tree(tmp_dir);  // not fs::remove_all: it crashes with the LibTorch wheel (results.h)
  return hash;
}

std::string path_of_maps_line(const std::string& line) {
  // address perms offset dev inode pathname: the path starts at the first '/' after the inode.
  const auto slash = line.find('/');
  return slash == std::string::npos ? "" : line.substr(slash);
}

bool looks_like_blas(const std::string& path) {
  const std::string base = fs::path(path).filename().string();
  for (const char* prefix : {"libopenblas", "libblas", "libcblas", "libmkl", "libblis", "libflexiblas", "libatlas"})
    if (base.rfind(prefix, 0) == 0) return true;
  return false;
}

// A short name for a BLAS library from its path (Debian keeps each implementation in a folder).
std::string blas_name_of(const std::string& path) {
  const std::string base = fs::path(path).filename().string();
  for (const char* variant : {"openblas-pthread", "openblas-openmp", "openblas-serial"})
    if (path.find(std::string("/") + variant + "/") != std::string::npos) return variant;
  if (base.rfind("libopenblas", 0) == 0) return "openblas";
  if (base.rfind("libmkl", 0) == 0) return "mkl";
  if (base.rfind("libblis", 0) == 0 || path.find("/blis") != std::string::npos) return "blis";
  if (base.rfind("libflexiblas", 0) == 0) return "flexiblas";
  if (path.find("/atlas/") != std::string::npos || base.rfind("libatlas", 0) == 0) return "atlas";
  if (path.find("/blas/") != std::string::npos || base.rfind("libblas", 0) == 0) return "netlib-reference-blas";
  return "";
}

// What LibTorch says it was built with ("BLAS_INFO=mkl"), for a BLAS linked into libtorch itself.
std::string torch_blas_info() {
  const std::string cfg = at::show_config();
  constexpr size_t kKeyLength = 10;  // strlen("BLAS_INFO=")
  const auto pos = cfg.find("BLAS_INFO=");
  if (pos == std::string::npos) return "";
  const auto end = cfg.find_first_of(", \n", pos);
  return cfg.substr(pos + kKeyLength, end == std::string::npos ? std::string::npos : end - pos - kKeyLength);
}

}  // namespace

GitState capture_git_state(const std::string& dir) {
  GitState g;
  std::error_code ec;
  const fs::path want = fs::weakly_canonical(dir, ec);
  int st = 0;
  const std::string top = git_in(dir, "rev-parse --show-toplevel", &st);
  if (st != 0 || top.empty()) {
    g.error = "no git work tree at " + dir;
    return g;
  }
  // A copied tree inside another repository (a home directory under git) must not borrow it.
  if (fs::weakly_canonical(top, ec) != want) {
    g.error = dir + " is not the top level of its git work tree (" + top + ")";
    return g;
  }
  g.commit = git_in(dir, "rev-parse --verify HEAD", &st);
  if (st != 0 || !is_hex40(g.commit)) {
    g.commit.clear();
    g.error = "git rev-parse HEAD failed in " + dir + " (no commit yet?)";
    return g;
  }
  g.is_repo = true;
  g.head_tree = git_in(dir, "rev-parse --verify 'HEAD^{tree}'", &st);
  if (st != 0 || !is_hex40(g.head_tree)) g.head_tree.clear();
  g.tree_hash = working_tree_hash(dir, &g.error);
  // --directory: an untracked folder is one line, not a walk of everything in it.
  const std::string others = git_in(dir, "ls-files --others --exclude-standard --directory --no-empty-directory", &st);
  if (st == 0) g.untracked_present = !others.empty();
  if (!g.tree_hash.empty() && !g.head_tree.empty()) {
    g.dirty = g.tree_hash == g.head_tree ? "false" : "true";
  } else {
    const std::string porcelain = git_in(dir, "status --porcelain --untracked-files=no", &st);
    if (st == 0) g.dirty = porcelain.empty() ? "false" : "true";
  }
  return g;
}

std::string loaded_blas_library(std::vector<std::string>* mapped) {
  // Make sure the GEMM path has run once (a BLAS loaded lazily shows up only then).
  {
    torch::NoGradGuard no_grad;
    (void)torch::mm(torch::ones({8, 8}), torch::ones({8, 8}));
  }
  std::vector<std::string> found;
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> seen;
  for (std::string line; std::getline(maps, line);) {
    const std::string path = path_of_maps_line(line);
    if (!path.empty() && looks_like_blas(path) && seen.insert(path).second) found.push_back(path);
  }
  if (mapped) *mapped = found;
  // The library the dynamic linker resolves sgemm_ to is the one LibTorch's calls reach.
  std::string provider;
  if (void* sym = dlsym(RTLD_DEFAULT, "sgemm_")) {
    Dl_info info{};
    if (dladdr(sym, &info) && info.dli_fname) provider = fs::weakly_canonical(info.dli_fname).string();
  }
  if (!provider.empty()) {
    const std::string name = blas_name_of(provider);
    if (!name.empty()) return name + " (" + provider + ")";
  }
  for (const auto& path : found) {
    const std::string name = blas_name_of(path);
    if (!name.empty()) return name + " (" + path + ")";
  }
  // The Python wheel links MKL statically into libtorch_cpu: nothing to see in the maps.
  const std::string info = torch_blas_info();
  if (!info.empty()) return info + " (linked into LibTorch" + (provider.empty() ? "" : ": " + provider) + ")";
  return "unknown";
}

int set_blas_threads(int threads) {
  using SetFn = void (*)(int);
  using GetFn = int (*)();
  auto set_fn = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  auto get_fn = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (!set_fn || !get_fn) return -1;
  set_fn(std::max(1, threads));
  return get_fn();
}

namespace {
// The x86 and Arm vector extensions that change which kernels a BLAS or LibTorch picks.
const char* const kVectorExtensions[] = {"sse4_2",     "avx",         "avx2",     "fma",        "avx512f",
                                         "avx512bw",   "avx512_vnni", "avx512_bf16", "amx_tile", "asimd",
                                         "sve",        "sve2"};
}  // namespace

CpuIdentity parse_cpuinfo(const std::string& text) {
  CpuIdentity id;
  std::istringstream in(text);
  std::string line, flags;
  auto value_of = [](const std::string& l) {
    const auto colon = l.find(':');
    std::string v = colon == std::string::npos ? "" : l.substr(colon + 1);
    const auto b = v.find_first_not_of(" \t"), e = v.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : v.substr(b, e - b + 1);
  };
  while (std::getline(in, line)) {
    const std::string key = line.substr(0, line.find(':'));
    const auto key_end = key.find_last_not_of(" \t");
    const std::string k = key_end == std::string::npos ? "" : key.substr(0, key_end + 1);
    if (id.model.empty() && k == "model name") id.model = value_of(line);
    if (flags.empty() && (k == "flags" || k == "Features")) flags = " " + value_of(line) + " ";
  }
  for (const char* ext : kVectorExtensions)
    if (flags.find(" " + std::string(ext) + " ") != std::string::npos) id.vector_extensions.emplace_back(ext);
  return id;
}

CpuIdentity this_cpu() {
  std::ifstream f("/proc/cpuinfo");
  if (!f) return {};
  std::stringstream text;
  text << f.rdbuf();
  return parse_cpuinfo(text.str());
}

double measure_sgemm_gflops(int64_t n, int samples) {
  // 512^3 (0.27 GFLOP a product): large enough for a BLAS to reach its blocked-kernel rate on a
  // few cores, small enough that the probe stays ~0.1 s with OpenBLAS and ~0.3 s with netlib
  // (~5 GFLOP/s). Each sample repeats the product for >= 30 ms so that one scheduler hiccup on
  // a shared machine cannot set the rate; the best sample is the machine's rate.
  constexpr double kMinSampleSeconds = 0.03;
  torch::NoGradGuard no_grad;
  // Deterministic, non-zero inputs: the probe must not consume the run's random stream.
  const auto a = torch::linspace(-1.0, 1.0, n * n, torch::kFloat32).reshape({n, n});
  const auto b = torch::linspace(1.0, -1.0, n * n, torch::kFloat32).reshape({n, n}).t().contiguous();
  auto c = torch::mm(a, b);  // warm-up: thread pools, page faults
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  double best = 0;
  for (int s = 0; s < std::max(1, samples); ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    int count = 0;
    double elapsed = 0;
    do {
      c = torch::mm(a, b);
      ++count;
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (elapsed < kMinSampleSeconds);
    best = std::max(best, flops * count / elapsed / 1e9);
  }
  if (!std::isfinite(c.sum().item<double>())) return -1;  // a broken BLAS reports no rate
  return best;
}

std::string utc_now_iso8601() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void RunContext::set_git_provenance(const GitState& git, const char* env_commit, const char* env_dirty,
                                    const char* env_tree_hash) {
  git_env_mismatch.clear();
  if (git.is_repo) {
    git_commit = git.commit;
    git_dirty = git.dirty;
    git_source = "git";
    git_dirty_source = "git";
    git_tree_hash = git.tree_hash;
    git_tree_hash_source = git.tree_hash.empty() ? "" : "git";
    git_untracked_present = git.untracked_present;
    // The environment is a claim made by whoever started the run; where git can check it, it is
    // checked (a short sha matches as a prefix; "unknown" claims nothing).
    std::vector<std::string> diffs;
    if (env_commit && *env_commit) {
      const std::string claimed = env_commit;
      if (claimed.size() < 7 || git.commit.rfind(claimed, 0) != 0)
        diffs.push_back("RBK_GIT_COMMIT=" + claimed + " but git HEAD is " + git.commit);
    }
    if (env_dirty && *env_dirty) {
      const std::string claimed = env_dirty;
      if ((claimed == "true" || claimed == "false") && git.dirty != "unknown" && claimed != git.dirty)
        diffs.push_back("RBK_GIT_DIRTY=" + claimed + " but git says the tracked tree is " +
                        (git.dirty == "true" ? "dirty" : "clean"));
    }
    for (size_t i = 0; i < diffs.size(); ++i) git_env_mismatch += (i ? "; " : "") + diffs[i];
    return;
  }
  git_tree_hash.clear();
  git_tree_hash_source.clear();
  git_untracked_present.reset();
  if (env_commit && *env_commit) {
    git_commit = env_commit;
    git_dirty = env_dirty && *env_dirty ? env_dirty : "unknown";
    git_source = "env";
    git_dirty_source = "env";
    // The content hash of the files the run was built from, computed where it ran; whether it is
    // the named commit's tree is for the reader with git to check (the ledger does).
    if (env_tree_hash && is_hex40(env_tree_hash)) {
      git_tree_hash = env_tree_hash;
      git_tree_hash_source = "env";
    }
  } else {
    git_commit = RBK_BUILD_GIT_COMMIT;
    git_dirty = RBK_BUILD_GIT_DIRTY;
    git_source = "configure-time";
    git_dirty_source = "configure-time";
  }
}

RunContext RunContext::capture(int argc, char** argv, uint64_t seed) {
  RunContext c;
  // Git where the source tree has it (checking RBK_GIT_* against it), else the environment (a
  // copied tree on the GPU machine has no .git), else what configure saw.
  c.set_git_provenance(capture_git_state(RBK_SOURCE_DIR), std::getenv("RBK_GIT_COMMIT"), std::getenv("RBK_GIT_DIRTY"),
                       std::getenv("RBK_GIT_TREE_HASH"));
  if (!c.git_env_mismatch.empty())
    std::cerr << "warning: provenance: " << c.git_env_mismatch << " (recording git's values)\n";
  c.build_type = RBK_BUILD_TYPE;
  c.compiler = RBK_COMPILER;
  c.cuda_compiler = RBK_CUDA_COMPILER_VERSION;
  c.torch_version = torch_version_string();
  c.cuda_version = cuda_version_string();
  c.device = device_name();
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  c.host = host;
  c.cpu_threads = configure_cpu_threads();
  c.cpu = this_cpu();
  c.seed = seed;
  for (int i = 0; i < argc; ++i) c.argv.emplace_back(argv[i]);
  c.started_at = utc_now_iso8601();
  return c;
}

void RunContext::probe_compute() {
  blas_threads = set_blas_threads(cpu_threads);
  blas = loaded_blas_library(&blas_mapped);
  sgemm_gflops = measure_sgemm_gflops();
}

void RunContext::finish() { finished_at = utc_now_iso8601(); }

nlohmann::json RunContext::to_json() const {
  using nlohmann::json;
  json j = {{"git_commit", git_commit},   {"git_dirty", git_dirty},         {"git_source", git_source},
            {"git_dirty_source", git_dirty_source},
            {"build_type", build_type},   {"compiler", compiler},           {"torch_version", torch_version},
            {"cuda_version", cuda_version}, {"cuda_compiler", cuda_compiler}, {"device", device},
            {"host", host},               {"cpu_threads", cpu_threads},     {"seed", seed},
            {"argv", argv},               {"started_at", started_at},       {"finished_at", finished_at}};
  j["git_tree_hash"] = git_tree_hash.empty() ? json(nullptr) : json(git_tree_hash);
  j["git_tree_hash_source"] = git_tree_hash_source.empty() ? json(nullptr) : json(git_tree_hash_source);
  j["git_untracked_present"] = git_untracked_present ? json(*git_untracked_present) : json(nullptr);
  j["git_env_mismatch"] = git_env_mismatch.empty() ? json(nullptr) : json(git_env_mismatch);
  j["cpu_model"] = cpu.model.empty() ? json(nullptr) : json(cpu.model);
  j["cpu_vector_extensions"] = cpu.vector_extensions;
  j["blas"] = blas;
  j["blas_mapped"] = blas_mapped;
  j["blas_threads"] = blas_threads > 0 ? json(blas_threads) : json(nullptr);
  j["sgemm_gflops"] = sgemm_gflops > 0 ? json(sgemm_gflops) : json(nullptr);
  j["sgemm_probe"] = sgemm_gflops <= 0 ? json(nullptr) : json("torch::mm fp32 " + std::to_string(kSgemmProbeSize) + "^3 on the CPU at cpu_threads, best of 3 samples of >= 30 ms");
  return j;
}

}  // namespace rbk
