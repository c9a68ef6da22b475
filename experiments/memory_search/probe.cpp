// One memory probe in a fresh process (probe.h).
#include "probe.h"

#include "rbk/lm_loss.h"
#include "rbk/language_model.h"
#include "rbk/memory_model.h"
#include "rbk/peak_memory.h"
#include "rbk/phase1_model.h"
#include "rbk/torch_compat.h"
#include "rbk/torch_compat_memory.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace memory_search {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// The model of one probe, whatever its family, as features + head.
struct ProbeModel {
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> features;
  std::function<torch::Tensor()> head_weight, head_bias;
  std::function<void(bool)> set_checkpoint;
};

// Any of the three families: each has forward_features, head_weight / head_bias and
// set_checkpoint_blocks, but no common base class.
template <class Lm>
ProbeModel probe_model_of(std::shared_ptr<Lm> p) {
  ProbeModel m;
  m.module = p;
  m.features = [p](const torch::Tensor& x) { return p->forward_features(x); };
  m.head_weight = [p] { return p->head_weight(); };
  m.head_bias = [p] { return p->head_bias(); };
  m.set_checkpoint = [p](bool on) { p->set_checkpoint_blocks(on); };
  return m;
}

ProbeModel build_model(const json& s) {
  const auto arch = rbk::parse_memory_arch(s.at("arch").get<std::string>());
  const int64_t V = s.at("vocab_size"), D = s.at("d_model"), L = s.at("n_layers"), N = s.at("seq_len");
  if (arch == rbk::MemoryArch::Phase1) {
    rbk::Phase1Config c;
    c.vocab_size = V;
    c.d_model = D;
    c.n_layers = L;
    c.htt_rank = s.value("htt_rank", int64_t{16});
    return probe_model_of(std::make_shared<rbk::Phase1Lm>(c));
  }
  if (arch == rbk::MemoryArch::Phase2Compat) {
    rbk::Phase2CompatConfig c;
    c.vocab_size = V;
    c.d_model = D;
    c.n_layers = L;
    return probe_model_of(std::make_shared<rbk::Phase2CompatLm>(c));
  }
  rbk::LmConfig c;
  c.arch = arch == rbk::MemoryArch::Transformer ? "transformer" : "resnet_bk";
  c.vocab_size = V;
  c.d_model = D;
  c.n_layers = L;
  c.n_seq = N;
  c.n_heads = 8;
  c.ffn_dim = 4 * D;
  c.num_experts = 4;
  c.top_k = 1;
  return probe_model_of(rbk::make_language_model(c));
}

torch::ScalarType weight_dtype(const std::string& name) {
  if (name == "bf16") return torch::kBFloat16;
  if (name == "fp16") return torch::kHalf;
  return torch::kFloat;
}

void write_json(const std::string& path, const json& j) {
  std::ofstream f(path);
  f << j.dump();
}

}  // namespace

int run_probe_child(const std::string& spec_path, const std::string& result_path) {
  json spec, result;
  {
    std::ifstream f(spec_path);
    spec = json::parse(f);
  }
  const auto t0 = Clock::now();
  const torch::Device device(spec.value("device", std::string("cpu")));
  torch::set_num_threads(static_cast<int>(spec.value("threads", int64_t{1})));
  const int64_t budget = spec.value("budget_bytes", int64_t{0});
  // OpenBLAS allocates its GEMM buffers (128 MB each here) on the first GEMM and, when that
  // allocation fails, retries forever instead of failing: run one multi-threaded GEMM before the
  // cap so the buffers are part of the runtime the budget excludes (as the CUDA context is on GPUs).
  if (!device.is_cuda()) {
    const auto a = torch::randn({512, 512});
    (void)torch::matmul(a, a).sum().item<float>();
  } else {
    // LibTorch 2.x initialises the CUDA caching allocator lazily, on the first device tensor:
    // before it, setMemoryFraction throws "Allocator not initialized" and the peak-stat calls
    // "Invalid device argument" (every probe of the first gpu run, 9e02061, died so). One tiny
    // tensor brings up the context and the allocator, which belong to the runtime the budget excludes.
    (void)torch::empty({1}, torch::TensorOptions().device(device));
  }
  result["start_rss_bytes"] = rbk::cpu_current_rss_bytes();
  result["start_data_bytes"] = rbk::proc_status_bytes("VmData");
  if (budget > 0) {
    if (device.is_cuda()) {
      const int64_t total = rbk::cuda_total_memory_bytes(device);
      result["device_total_bytes"] = total;
      if (total <= 0 || !rbk::cuda_set_memory_fraction(static_cast<double>(budget) / static_cast<double>(total), device)) {
        result["status"] = "error";
        result["message"] = "could not cap the CUDA allocator (no CUDA in this build?)";
        write_json(result_path, result);
        return 0;
      }
    } else {
      const int64_t limit = result["start_data_bytes"].get<int64_t>() + budget;
      struct rlimit rl;
      rl.rlim_cur = static_cast<rlim_t>(limit);
      rl.rlim_max = static_cast<rlim_t>(limit);
      if (setrlimit(RLIMIT_DATA, &rl) != 0) {
        result["status"] = "error";
        result["message"] = "setrlimit(RLIMIT_DATA) failed";
        write_json(result_path, result);
        return 0;
      }
      result["rlimit_data_bytes"] = limit;
    }
  }
  if (device.is_cuda()) rbk::cuda_reset_peak_memory(device);
  try {
    torch::manual_seed(spec.value("seed", int64_t{0}));
    ProbeModel m = build_model(spec);
    int64_t params = 0, largest = 0;
    for (const auto& p : m.module->parameters()) {
      params += p.numel();
      largest = std::max<int64_t>(largest, p.numel());
    }
    result["parameters"] = params;
    result["largest_parameter"] = largest;
    const bool training = spec.at("training");
    if (!training) m.module->to(weight_dtype(spec.value("weight_dtype", std::string("fp32"))));
    m.module->to(device);
    const int64_t B = spec.at("batch"), N = spec.at("seq_len"), V = spec.at("vocab_size");
    const int64_t chunk_cfg = spec.value("loss_chunk_tokens", int64_t{128});
    const int64_t chunk = chunk_cfg > 0 ? chunk_cfg : B * N;
    const auto ids = torch::randint(V, {B, N + 1}, torch::TensorOptions().dtype(torch::kInt64)).to(device);
    const auto x = ids.narrow(1, 0, N), y = ids.narrow(1, 1, N).reshape({-1});
    // Training probes on CUDA run under bf16 autocast unless the spec says otherwise (the C16 probes
    // measure fp32 peaks, which the compat row then halves: autocast would make that half of a
    // mixed-precision peak). CPU probes never use autocast.
    const bool use_autocast = device.is_cuda() && training && spec.value("autocast", true);
    result["autocast"] = use_autocast;
    auto loss_of = [&]() {
      rbk::AutocastGuard autocast(use_autocast);
      auto f = m.features(x);
      f = f.reshape({B * N, f.size(-1)});
      return rbk::chunked_linear_cross_entropy(f, m.head_weight(), m.head_bias(), y, chunk);
    };
    double loss_value = 0.0;
    if (training) {
      m.set_checkpoint(spec.value("checkpoint_blocks", false));
      m.module->train();
      auto params_list = m.module->parameters();
      torch::optim::AdamW optim(params_list, torch::optim::AdamWOptions(1e-4).weight_decay(0.01));
      const int64_t steps = spec.value("steps", int64_t{2});
      for (int64_t s = 0; s < steps; ++s) {
        // Gradients are zeroed in place (never freed), so from the second step on the forward
        // runs with weights, gradients and both AdamW moments resident: the steady state.
        for (auto& p : params_list)
          if (p.grad().defined()) p.mutable_grad().zero_();
        auto loss = loss_of();
        loss.backward();
        optim.step();
        loss_value = loss.item<double>();
      }
    } else {
      torch::NoGradGuard ng;
      m.module->eval();
      loss_value = loss_of().item<double>();
    }
    rbk::synchronize_device(device);
    result["loss"] = loss_value;
    result["status"] = std::isfinite(loss_value) ? "ok" : "error";
    if (!std::isfinite(loss_value)) result["message"] = "non-finite loss";
  } catch (const std::exception& e) {
    const bool oom = rbk::is_out_of_memory(e);
    result["status"] = oom ? "oom" : "error";
    std::string msg = e.what();
    msg = msg.substr(0, msg.find('\n'));  // LibTorch appends a stack trace after the first line
    result["message"] = msg.substr(0, std::min<size_t>(msg.size(), 300));
  }
  result["peak_rss_bytes"] = rbk::cpu_peak_rss_bytes();
  if (device.is_cuda()) {
    result["peak_bytes"] = rbk::cuda_peak_allocated_bytes(device);
    result["peak_source"] = "cuda_caching_allocator_peak_allocated";
  } else {
    result["peak_bytes"] = result["peak_rss_bytes"].get<int64_t>() - result["start_rss_bytes"].get<int64_t>();
    result["peak_source"] = "VmHWM - VmRSS at probe start";
  }
  result["child_seconds"] = std::chrono::duration<double>(Clock::now() - t0).count();
  write_json(result_path, result);
  return 0;
}

json run_probe_process(const json& spec, const std::string& scratch_dir, double timeout_s) {
  static int counter = 0;
  const std::string stem = scratch_dir + "/probe_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
  const std::string spec_path = stem + ".spec.json", result_path = stem + ".result.json";
  write_json(spec_path, spec);
  std::remove(result_path.c_str());
  const auto t0 = Clock::now();
  json result;
  std::fflush(nullptr);
  // OpenBLAS's threaded GEMM driver exits the process (not an error LibTorch could catch) when
  // its per-call malloc fails under the cap; one BLAS thread per probe (as LibTorch's) avoids it.
  setenv("OPENBLAS_NUM_THREADS", std::to_string(spec.value("threads", int64_t{1})).c_str(), 1);
  const pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec (the parent has LibTorch's threads).
    const char* argv[] = {"/proc/self/exe", kProbeFlag, spec_path.c_str(), result_path.c_str(), nullptr};
    execv("/proc/self/exe", const_cast<char* const*>(argv));
    _exit(127);
  }
  if (pid < 0) return {{"status", "error"}, {"message", "fork failed"}};
  int wstatus = 0;
  bool timed_out = false;
  while (true) {
    const pid_t w = waitpid(pid, &wstatus, WNOHANG);
    if (w == pid) break;
    if (std::chrono::duration<double>(Clock::now() - t0).count() > timeout_s) {
      kill(pid, SIGKILL);
      waitpid(pid, &wstatus, 0);
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::ifstream f(result_path);
  if (f) {
    try {
      result = json::parse(f);
    } catch (const std::exception&) {
      result = json::object();
    }
  }
  if (timed_out) {
    result["status"] = "timeout";
  } else if (WIFSIGNALED(wstatus)) {
    // A child killed by a signal under the cap (e.g. an abort in a library that could not
    // allocate) did not fit either; the signal is recorded.
    result["status"] = "killed";
    result["signal"] = WTERMSIG(wstatus);
  } else if (!result.contains("status")) {
    result["status"] = "error";
    result["message"] = "the probe process wrote no result (exit code " + std::to_string(WEXITSTATUS(wstatus)) + ")";
  }
  result["seconds"] = std::chrono::duration<double>(Clock::now() - t0).count();
  std::remove(spec_path.c_str());
  std::remove(result_path.c_str());
  return result;
}

}  // namespace memory_search
