// Launch variables, rendezvous, the per-rank shard of the train stream and the trainer's hook slot
// (distributed.h; issue 23). The gradient reducer is in distributed_reducer.cpp, c10d itself behind
// torch_compat_distributed.h.
#include "rbk/distributed.h"
#include "rbk/trainer.h"

#include <cerrno>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <thread>

namespace rbk {
namespace {

// A whole decimal integer in [lo, hi], or an error naming the variable.
int parse_int_var(const char* name, const char* text, int lo, int hi, const std::string& expected) {
  const std::string s = text;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || end == nullptr || *end != '\0' || errno == ERANGE || v < lo || v > hi)
    throw DistributedConfigError(std::string(name) + " = '" + s + "': expected " + expected);
  return static_cast<int>(v);
}

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

TrainSync*& train_sync_slot() {
  static TrainSync* slot = nullptr;
  return slot;
}

}  // namespace

nlohmann::json LaunchEnv::to_json() const {
  return {{"rank", rank}, {"world_size", world_size}, {"local_rank", local_rank}, {"master_addr", master_addr},
          {"master_port", master_port}};
}

LaunchEnv parse_launch_env(const char* rank, const char* world_size, const char* local_rank, const char* master_addr,
                           const char* master_port) {
  const std::vector<std::pair<const char*, const char*>> vars{
      {"RANK", rank}, {"WORLD_SIZE", world_size}, {"LOCAL_RANK", local_rank}, {"MASTER_ADDR", master_addr},
      {"MASTER_PORT", master_port}};
  std::string missing, present;
  for (const auto& [name, value] : vars) {
    std::string& list = value == nullptr ? missing : present;
    list += (list.empty() ? "" : ", ") + std::string(name);
  }
  LaunchEnv env;
  if (present.empty()) return env;  // single process
  if (!missing.empty())
    throw DistributedConfigError("distributed launch: " + present + " set but " + missing +
                                 " missing; a launcher (torchrun, scripts/launch_local.sh) sets all five, or none "
                                 "for a single process");
  env.world_size = parse_int_var("WORLD_SIZE", world_size, 1, 1 << 20, "an integer >= 1");
  env.rank = parse_int_var("RANK", rank, 0, env.world_size - 1, "an integer in [0, WORLD_SIZE-1 = " +
                                                                     std::to_string(env.world_size - 1) + "]");
  env.local_rank = parse_int_var("LOCAL_RANK", local_rank, 0, env.world_size - 1,
                                 "an integer in [0, WORLD_SIZE-1 = " + std::to_string(env.world_size - 1) + "]");
  env.master_port = parse_int_var("MASTER_PORT", master_port, 1, 65535, "a TCP port in [1, 65535]");
  env.master_addr = master_addr;
  if (env.master_addr.empty()) throw DistributedConfigError("MASTER_ADDR = '': expected a host name or address of rank 0");
  env.active = true;
  return env;
}

LaunchEnv read_launch_env() {
  return parse_launch_env(std::getenv("RANK"), std::getenv("WORLD_SIZE"), std::getenv("LOCAL_RANK"),
                          std::getenv("MASTER_ADDR"), std::getenv("MASTER_PORT"));
}

nlohmann::json DistributedOptions::to_json() const {
  return {{"backend", backend}, {"timeout_s", timeout_s}, {"bucket_mib", bucket_mib}, {"overlap", overlap}};
}

std::string resolve_backend(const std::string& requested, const torch::Device& device) {
  std::string b = requested;
  if (b == "auto") b = device.is_cuda() ? "nccl" : "gloo";
  if (b != "gloo" && b != "nccl")
    throw DistributedConfigError("dist.backend = '" + requested + "': expected gloo, nccl or auto");
  if (b == "nccl" && !device.is_cuda())
    throw DistributedConfigError("dist.backend = nccl needs a CUDA device (this run's device is " + device.str() +
                                 "); use gloo on the CPU");
  if (!c10d_backend_compiled(b))
    throw DistributedConfigError("dist.backend = " + b + (requested == "auto" ? " (auto)" : "") +
                                 ": this build has no c10d " + b +
                                 " (its headers were not found or did not compile with this LibTorch; see the "
                                 "'rbk: c10d' line of the CMake configure output)");
  return b;
}

std::shared_ptr<DistributedContext> DistributedContext::connect(const LaunchEnv& env, const DistributedOptions& options,
                                                                const std::string& backend) {
  if (!env.active) throw DistributedConfigError("DistributedContext::connect: no distributed launch variables set");
  if (!(options.timeout_s > 0)) throw DistributedConfigError("dist.timeout_s = " + std::to_string(options.timeout_s) + ": expected > 0");
  auto ctx = std::shared_ptr<DistributedContext>(new DistributedContext());
  ctx->env_ = env;
  ctx->options_ = options;
  ctx->backend_ = backend;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000.0));
  try {
    ctx->store_ = connect_tcp_store(env.master_addr, env.master_port, env.rank == 0, env.world_size, timeout);
    if (!backend.empty())
      ctx->group_ = make_comm_group(backend, ctx->store_, env.rank, env.world_size, timeout, is_loopback(env.master_addr));
  } catch (const std::invalid_argument& e) {
    throw DistributedConfigError(e.what());
  } catch (const std::exception& e) {
    throw DistributedError("rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
                           ": rendezvous at " + env.master_addr + ":" + std::to_string(env.master_port) +
                           " failed within the c10d timeout of " + std::to_string(static_cast<int64_t>(options.timeout_s)) +
                           " s: " + e.what());
  }
  return ctx;
}

CommGroup& DistributedContext::group() {
  if (!group_) throw DistributedError("rank " + std::to_string(env_.rank) + ": no process group (connected for the store only)");
  return *group_;
}

torch::Device DistributedContext::comm_device(const torch::Device& compute) const {
  return backend_ == "nccl" ? compute : torch::Device(torch::kCPU);
}

void DistributedContext::heartbeat(int64_t step) { store_->set("rbk/step/" + std::to_string(env_.rank), std::to_string(step)); }

std::string DistributedContext::peer_report() {
  std::ostringstream out;
  try {
    // A dead store host (rank 0) must not add another full timeout to the failure.
    store_->set_timeout(std::chrono::milliseconds(5000));
    std::vector<int64_t> steps(env_.world_size, -1);
    int64_t newest = -1;
    for (int r = 0; r < env_.world_size; ++r) {
      const auto v = store_->try_get("rbk/step/" + std::to_string(r));
      if (v) steps[r] = std::stoll(*v);
      newest = std::max(newest, steps[r]);
    }
    // A live rank's collective fails too and it reports here; whoever stays silent for
    // kSilenceSeconds is the dead or hung one (steps alone cannot tell: all may have reached it).
    constexpr double kSilenceSeconds = 2.0;
    store_->set("rbk/failed/" + std::to_string(env_.rank), "1");
    std::vector<int> silent;
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      silent.clear();
      for (int r = 0; r < env_.world_size; ++r)
        if (!store_->try_get("rbk/failed/" + std::to_string(r))) silent.push_back(r);
      if (silent.empty() || std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > kSilenceSeconds) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!silent.empty()) {
      out << "silent (dead or hung):";
      for (const int r : silent) out << " rank " << r;
      out << "; ";
    }
    out << "last step each rank reported:";
    for (int r = 0; r < env_.world_size; ++r) {
      out << (r ? "," : "") << " rank " << r << " ";
      if (steps[r] < 0) out << "none";
      else out << steps[r];
      if (steps[r] < newest) out << " (behind: dead or hung?)";
    }
  } catch (const std::exception& e) {
    out << "the store on rank 0 (" << env_.master_addr << ":" << env_.master_port
        << ") did not answer either: rank 0 is dead or hung";
  }
  return out.str();
}

DistributedError DistributedContext::collective_failure(const std::string& what, int64_t step, const std::string& message) {
  std::ostringstream out;
  out << "rank " << env_.rank << " of " << env_.world_size << ": " << what << " at step " << step
      << " failed (c10d timeout " << options_.timeout_s << " s; a peer rank died or hung): " << message << "; "
      << peer_report() << ". The job ends without writing a result.";
  return DistributedError(out.str());
}

nlohmann::json DistributedContext::to_json() const {
  auto j = env_.to_json();
  j["backend"] = backend_;
  j["options"] = options_.to_json();
  return j;
}

nlohmann::json TrainShard::to_json() const {
  return {{"rank", rank}, {"world_size", world_size}, {"global_batch", global_batch}, {"rows", rows},
          {"row_begin", row_begin}, {"columns", columns}, {"token_begin", token_begin}, {"token_end", token_end},
          {"stream_tokens", stream_tokens}};
}

TrainShard train_shard(int64_t stream_tokens, int64_t global_batch, int rank, int world_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size)
    throw DistributedConfigError("train_shard: rank " + std::to_string(rank) + " of world size " + std::to_string(world_size));
  if (global_batch < 1 || global_batch % world_size != 0)
    throw DistributedConfigError("train.batch_size = " + std::to_string(global_batch) +
                                 ": data parallel needs the global batch to be a multiple of WORLD_SIZE = " +
                                 std::to_string(world_size) + " (each rank takes batch_size / WORLD_SIZE rows)");
  TrainShard s;
  s.rank = rank;
  s.world_size = world_size;
  s.global_batch = global_batch;
  s.stream_tokens = stream_tokens;
  s.rows = global_batch / world_size;
  s.row_begin = static_cast<int64_t>(rank) * s.rows;
  s.columns = stream_tokens / global_batch;  // batchify's row length
  s.token_begin = s.row_begin * s.columns;
  s.token_end = (s.row_begin + s.rows) * s.columns;
  return s;
}

void check_data_parallel_options(const TrainOptions& train, int world_size) {
  if (world_size <= 1) return;
  if (train.layout == BatchLayout::UpstreamTimeMajor)
    throw DistributedConfigError(
        "train.layout = upstream_time_major: that layout runs the model across the batch's streams, so a batch split "
        "over ranks is a different computation; data parallel needs train.layout = correct");
  train_shard(2 * train.batch_size, train.batch_size, 0, world_size);  // the batch-size check
}

TrainSync* active_train_sync() { return train_sync_slot(); }

ScopedTrainSync::ScopedTrainSync(TrainSync* sync) : previous_(train_sync_slot()) { train_sync_slot() = sync; }

ScopedTrainSync::~ScopedTrainSync() {
  if (train_sync_slot() != nullptr) train_sync_slot()->release();
  train_sync_slot() = previous_;
}

}  // namespace rbk
