// RunContext: provenance recorded in every result file.
#include "rbk/run_context.h"

#include "rbk/torch_compat.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>

namespace rbk {
namespace {

// Runs a shell command, returns its stdout and exit status (output trimmed of trailing space).
std::string run_capture(const std::string& cmd, int* status) {
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) {
    *status = -1;
    return out;
  }
  std::array<char, 512> buf{};
  while (fgets(buf.data(), buf.size(), pipe)) out += buf.data();
  *status = pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

std::string utc_now_iso8601() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

RunContext RunContext::capture(int argc, char** argv, uint64_t seed) {
  RunContext c;
  // Git: the environment wins (a copied tree on the GPU machine has no .git), then git itself
  // on the source tree, then what configure saw.
  if (const char* env = std::getenv("RBK_GIT_COMMIT")) {
    c.git_commit = env;
    const char* dirty = std::getenv("RBK_GIT_DIRTY");
    c.git_dirty = dirty ? dirty : "unknown";
    c.git_source = "env";
  } else {
    int st = 0;
    const std::string src = RBK_SOURCE_DIR;
    const std::string sha = run_capture("git -C '" + src + "' rev-parse HEAD 2>/dev/null", &st);
    if (st == 0 && sha.size() == 40) {
      c.git_commit = sha;
      int st2 = 0;
      const std::string porcelain =
          run_capture("git -C '" + src + "' status --porcelain --untracked-files=no 2>/dev/null", &st2);
      c.git_dirty = st2 != 0 ? "unknown" : (porcelain.empty() ? "false" : "true");
      c.git_source = "git";
    } else {
      c.git_commit = RBK_BUILD_GIT_COMMIT;
      c.git_dirty = RBK_BUILD_GIT_DIRTY;
      c.git_source = "configure-time";
    }
  }
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
  c.seed = seed;
  for (int i = 0; i < argc; ++i) c.argv.emplace_back(argv[i]);
  c.started_at = utc_now_iso8601();
  return c;
}

void RunContext::finish() { finished_at = utc_now_iso8601(); }

nlohmann::json RunContext::to_json() const {
  return {{"git_commit", git_commit},   {"git_dirty", git_dirty},         {"git_source", git_source},
          {"build_type", build_type},   {"compiler", compiler},           {"torch_version", torch_version},
          {"cuda_version", cuda_version}, {"cuda_compiler", cuda_compiler}, {"device", device},
          {"host", host},               {"cpu_threads", cpu_threads},     {"seed", seed},
          {"argv", argv},               {"started_at", started_at},       {"finished_at", finished_at}};
}

}  // namespace rbk
