// Data-parallel training and sharded sweeps over PyTorch's c10d (issue 23), launched the way
// PyTorch users launch: torchrun (or scripts/launch_local.sh where the Python torch is absent) sets
// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; without them every program runs
// single-process exactly as before.
//
// Training (rbk_train): rank 0 hosts a c10d TCPStore at MASTER_ADDR:MASTER_PORT; a Gloo (CPU) or
// NCCL (CUDA) process group; parameters broadcast from rank 0; each rank trains on its rows of the
// global batch (train.batch_size is the GLOBAL batch: the stream is laid out as B contiguous rows
// exactly as single-process, rank r takes rows [r B/W, (r+1) B/W), a contiguous token range, see
// train_shard); gradients averaged over ranks in flattened buckets (launched from gradient hooks
// during the backward pass when `overlap` is on, waited before clipping); losses averaged over
// ranks, so every rank takes the same decisions (divergence, logging) and holds the same weights.
// Only rank 0 writes checkpoints, metrics and results. The trainer sees all of this through one
// hook object (TrainSync below) installed for the duration of a job.
//
// Faults: every collective runs under c10d's timeout (DistributedOptions::timeout_s). A rank that
// dies or hangs makes the others' next collective fail; they throw DistributedError naming their
// rank, the step and the last step every rank reported to the store, and the tools end with exit 1
// writing no result.
#pragma once
#include "rbk/torch_compat_distributed.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace rbk {

class LanguageModel;
struct TrainOptions;

// A launch or option problem (missing / malformed variables, a backend this build or device
// lacks, a world-size mismatch on resume): tools print it and exit 2, writing nothing.
struct DistributedConfigError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
// A peer died or hung, or a collective failed: the job ends (exit 1), no result is written.
struct DistributedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The torchrun variables. None set: active = false (single process). Some but not all, or a
// malformed value: DistributedConfigError naming each variable and what was expected.
struct LaunchEnv {
  bool active = false;
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr;
  int master_port = 0;
  nlohmann::json to_json() const;
};
LaunchEnv read_launch_env();
// The same from explicit values (tests): a missing variable is nullptr.
LaunchEnv parse_launch_env(const char* rank, const char* world_size, const char* local_rank, const char* master_addr,
                           const char* master_port);

// Default c10d timeout: long enough for rank 0's checkpoint writes and a slow first step of the
// largest preset, short enough that a dead peer ends a GPU job within minutes.
constexpr double kDefaultDistributedTimeoutSeconds = 300.0;
// 25 MiB buckets, PyTorch DDP's default: big enough to amortise per-collective latency.
constexpr double kDefaultBucketMiB = 25.0;

struct DistributedOptions {
  std::string backend = "auto";  // gloo | nccl | auto (nccl on CUDA, gloo on the CPU)
  double timeout_s = kDefaultDistributedTimeoutSeconds;
  double bucket_mib = kDefaultBucketMiB;
  bool overlap = true;           // launch buckets from gradient hooks during backward
  nlohmann::json to_json() const;
};
// auto -> nccl on CUDA, gloo on the CPU; nccl without a CUDA device, or a backend this build
// lacks: DistributedConfigError naming dist.backend.
std::string resolve_backend(const std::string& requested, const torch::Device& device);

// One rank's membership: the store and (for training) the process group.
class DistributedContext {
 public:
  // Rendezvous through the TCPStore (rank 0 hosts it; waits timeout_s for every rank). backend ""
  // makes no process group (sweeps only need the store). Throws DistributedConfigError (bad
  // backend) or DistributedError (rendezvous failed).
  static std::shared_ptr<DistributedContext> connect(const LaunchEnv& env, const DistributedOptions& options,
                                                     const std::string& backend);
  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_writer() const { return env_.rank == 0; }
  const LaunchEnv& env() const { return env_; }
  const DistributedOptions& options() const { return options_; }
  const std::string& backend() const { return backend_; }
  CommGroup& group();                 // DistributedError when connected without a backend
  KeyValueStore& store() { return *store_; }
  // Where the buckets live: CUDA for nccl, the CPU for gloo.
  torch::Device comm_device(const torch::Device& compute) const;
  // Records "this rank reached step s" in the store (read by peer_report on a failure).
  void heartbeat(int64_t step);
  // "rank 0: step 7, rank 1: step 6 (behind: dead or hung?)", or why the store did not answer.
  std::string peer_report();
  // The DistributedError of a failed collective: names this rank, what, the step, the timeout,
  // c10d's message and peer_report().
  DistributedError collective_failure(const std::string& what, int64_t step, const std::string& c10d_message);
  nlohmann::json to_json() const;  // rank, world_size, local_rank, backend, timeout_s, ...

 private:
  LaunchEnv env_;
  DistributedOptions options_;
  std::string backend_;
  std::shared_ptr<KeyValueStore> store_;
  std::shared_ptr<CommGroup> group_;
};

// Rank r's part of the train stream: the global batch's rows [row_begin, row_begin + rows) of the
// (B, T/B) layout of trainer.h's batchify, i.e. tokens [token_begin, token_end) of the stream.
// Ranks' shards are disjoint and together cover the B*floor(T/B) tokens single-process training
// reads. Throws DistributedConfigError when batch_size is not a multiple of world_size.
struct TrainShard {
  int rank = 0, world_size = 1;
  int64_t global_batch = 0, rows = 0, row_begin = 0, columns = 0;
  int64_t token_begin = 0, token_end = 0, stream_tokens = 0;
  nlohmann::json to_json() const;
};
TrainShard train_shard(int64_t stream_tokens, int64_t global_batch, int rank, int world_size);

// Options data parallelism cannot honour: batch_size not a multiple of the world size, the
// upstream_time_major layout (it mixes the batch's streams inside the model, so a split batch is
// not the same computation). DistributedConfigError naming the train.* key.
void check_data_parallel_options(const TrainOptions& train, int world_size);

// ---- The trainer's hook -------------------------------------------------------------------------
// What train_language_model consults when a TrainSync is installed (ScopedTrainSync); with none
// installed the trainer runs exactly as single-process.
class TrainSync {
 public:
  virtual ~TrainSync() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual bool is_writer() const = 0;  // writes checkpoints and the metrics log
  // After the model is on its device (and a checkpoint loaded): rank 0's parameters to every
  // rank; gradient hooks attached.
  virtual void prepare(const std::vector<torch::Tensor>& params) = 0;
  // This rank's rows of the (B, C) grid of the global batch.
  virtual torch::Tensor local_rows(const torch::Tensor& grid) = 0;
  // Before each micro-batch's backward; the hooks reduce only the step's last micro-batch.
  virtual void before_backward(int64_t step, bool last_micro) = 0;
  // After the step's backward: every parameter's .grad is the mean over ranks.
  virtual void reduce_gradients(int64_t step) = 0;
  // Mean over ranks of a small tensor (the step losses); step names the failure.
  virtual torch::Tensor average(const torch::Tensor& values, int64_t step) = 0;
  // Removes the hooks (also done by the destructor).
  virtual void release() = 0;
  // Overlap and communication measurements so far.
  virtual nlohmann::json stats() const = 0;
};

TrainSync* active_train_sync();
// Installs a TrainSync for its lifetime (one at a time per process); releases it on exit.
class ScopedTrainSync {
 public:
  explicit ScopedTrainSync(TrainSync* sync);
  ~ScopedTrainSync();
  ScopedTrainSync(const ScopedTrainSync&) = delete;
  ScopedTrainSync& operator=(const ScopedTrainSync&) = delete;

 private:
  TrainSync* previous_;
};

// The bucketed gradient all-reduce over ctx's process group (distributed_reducer.cpp).
// compute_device: where the model lives.
std::unique_ptr<TrainSync> make_gradient_reducer(std::shared_ptr<DistributedContext> ctx, torch::Device compute_device);

}  // namespace rbk
