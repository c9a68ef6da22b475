// The narrow part of PyTorch's c10d (torch.distributed's C++ engine) that rbk's data-parallel
// training and sharded sweeps use (issue 23), behind an interface that does not include c10d's
// headers: TCPStore (rendezvous and small key/value records) and the Gloo (CPU) / NCCL (CUDA)
// process groups' all-reduce and broadcast. LibTorch 1.13 (Debian) and 2.11 (the GPU wheel) differ
// in c10d's class layout (ProcessGroup vs Backend, options structs); the differences live in
// core/harness/torch_compat_distributed.cpp only, which CMake compiles with USE_C10D_GLOO /
// USE_C10D_NCCL where a probe found the headers and they compiled and linked
// (core/distributed.cmake). Without them every call here throws a clear error.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rbk {

// An asynchronous collective. wait() blocks until it completes; it throws std::runtime_error
// (c10d's message, one line) when the collective failed or exceeded the group's timeout.
class CommWork {
 public:
  virtual ~CommWork() = default;
  virtual void wait() = 0;
};

// One process group: every rank must issue the same collectives in the same order.
class CommGroup {
 public:
  virtual ~CommGroup() = default;
  // In-place sum over ranks of a dense, contiguous tensor (CPU for gloo, CUDA for nccl).
  virtual std::unique_ptr<CommWork> all_reduce_sum(torch::Tensor& tensor) = 0;
  // In-place copy of root's tensor to every rank.
  virtual std::unique_ptr<CommWork> broadcast(torch::Tensor& tensor, int root) = 0;
  virtual std::string backend() const = 0;  // "gloo" | "nccl"
};

// c10d's TCPStore: rank 0 hosts it at MASTER_ADDR:MASTER_PORT, every rank connects.
class KeyValueStore {
 public:
  virtual ~KeyValueStore() = default;
  virtual void set(const std::string& key, const std::string& value) = 0;
  // The value, or nullopt when the key is not set (never blocks waiting for it).
  virtual std::optional<std::string> try_get(const std::string& key) = 0;
  // Blocks until every key is set; throws std::runtime_error after `timeout`.
  virtual void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) = 0;
  // The timeout of every later store operation (a dead server then fails fast).
  virtual void set_timeout(std::chrono::milliseconds timeout) = 0;
};

// True when this build can make a process group of that backend ("gloo" | "nccl").
bool c10d_backend_compiled(const std::string& backend);

// Connects to (rank 0: hosts) the TCPStore; waits up to `timeout` for all world_size ranks.
// Throws std::runtime_error with c10d's message (one line).
std::shared_ptr<KeyValueStore> connect_tcp_store(const std::string& host, int port, bool is_server, int world_size,
                                                 std::chrono::milliseconds timeout);

// A process group over the store. timeout: c10d's per-collective timeout. gloo binds to the
// loopback interface when loopback is true (every rank on this machine), else to
// GLOO_SOCKET_IFNAME when set, else to the interface of this host's name. Throws
// std::invalid_argument for a backend this build lacks, std::runtime_error for c10d failures.
std::shared_ptr<CommGroup> make_comm_group(const std::string& backend, const std::shared_ptr<KeyValueStore>& store,
                                           int rank, int world_size, std::chrono::milliseconds timeout, bool loopback);

// Makes `device` the process's current CUDA device (no-op for the CPU), so that kernels launched
// without a device guard run where this rank's tensors live (torchrun starts every rank with
// device 0 current). Through c10's device-agnostic guard interface: compiles without CUDA.
void set_current_device(const torch::Device& device);

}  // namespace rbk
