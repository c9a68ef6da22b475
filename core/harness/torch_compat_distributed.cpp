// c10d behind rbk's narrow interface (torch_compat_distributed.h; issue 23). The only file that
// includes c10d's headers. CMake compiles it with RBK_HAVE_C10D_GLOO + USE_C10D_GLOO and/or
// RBK_HAVE_C10D_NCCL + USE_C10D_NCCL when its probe compiled and linked this very file with them
// (core/distributed.cmake), so a LibTorch whose c10d API differs falls back to single-process
// instead of breaking the build. Written against LibTorch 1.13 (ProcessGroupGloo derives from
// ProcessGroup) and 2.x (from Backend); both keep the constructors and options used here.
#include "rbk/torch_compat_distributed.h"

#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>  // AllreduceOptions, BroadcastOptions, ReduceOp (not reached without a backend header on 2.x)
#include <torch/csrc/distributed/c10d/Work.hpp>
#ifdef RBK_HAVE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef RBK_HAVE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/util/Exception.h>

#include <stdexcept>

namespace rbk {
namespace {

std::string one_line(const std::exception& e) {
  std::string s = e.what();
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) s = c->what_without_backtrace();
  return s.substr(0, s.find('\n'));
}

template <typename F>
auto rethrow_one_line(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(what) + ": " + one_line(e));
  }
}

class C10dWork final : public CommWork {
 public:
  explicit C10dWork(c10::intrusive_ptr<c10d::Work> work) : work_(std::move(work)) {}
  void wait() override {
    rethrow_one_line("c10d collective", [&] { work_->wait(); });
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
};

// PG is ProcessGroupGloo or ProcessGroupNCCL: both take std::vector<at::Tensor>& and options.
template <typename PG>
class C10dGroup final : public CommGroup {
 public:
  C10dGroup(c10::intrusive_ptr<PG> pg, std::string backend) : pg_(std::move(pg)), backend_(std::move(backend)) {}
  std::unique_ptr<CommWork> all_reduce_sum(torch::Tensor& tensor) override {
    std::vector<at::Tensor> ts{tensor};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    return rethrow_one_line("c10d all-reduce", [&] { return std::make_unique<C10dWork>(pg_->allreduce(ts, opts)); });
  }
  std::unique_ptr<CommWork> broadcast(torch::Tensor& tensor, int root) override {
    std::vector<at::Tensor> ts{tensor};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.rootTensor = 0;
    return rethrow_one_line("c10d broadcast", [&] { return std::make_unique<C10dWork>(pg_->broadcast(ts, opts)); });
  }
  std::string backend() const override { return backend_; }

 private:
  c10::intrusive_ptr<PG> pg_;
  std::string backend_;
};

class TcpKeyValueStore final : public KeyValueStore {
 public:
  explicit TcpKeyValueStore(c10::intrusive_ptr<c10d::TCPStore> store) : store_(std::move(store)) {}
  void set(const std::string& key, const std::string& value) override {
    rethrow_one_line("c10d TCPStore set", [&] { store_->set(key, std::vector<uint8_t>(value.begin(), value.end())); });
  }
  std::optional<std::string> try_get(const std::string& key) override {
    return rethrow_one_line("c10d TCPStore get", [&]() -> std::optional<std::string> {
      if (!store_->check({key})) return std::nullopt;
      const auto bytes = store_->get(key);
      return std::string(bytes.begin(), bytes.end());
    });
  }
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override {
    rethrow_one_line("c10d TCPStore wait", [&] { store_->wait(keys, timeout); });
  }
  void set_timeout(std::chrono::milliseconds timeout) override { store_->setTimeout(timeout); }
  const c10::intrusive_ptr<c10d::TCPStore>& raw() const { return store_; }

 private:
  c10::intrusive_ptr<c10d::TCPStore> store_;
};

}  // namespace

void set_current_device(const torch::Device& device) {
  if (!device.is_cuda() || !device.has_index()) return;
  c10::impl::getDeviceGuardImpl(device.type())->setDevice(device);
}

bool c10d_backend_compiled(const std::string& backend) {
#ifdef RBK_HAVE_C10D_GLOO
  if (backend == "gloo") return true;
#endif
#ifdef RBK_HAVE_C10D_NCCL
  if (backend == "nccl") return true;
#endif
  (void)backend;
  return false;
}

std::shared_ptr<KeyValueStore> connect_tcp_store(const std::string& host, int port, bool is_server, int world_size,
                                                 std::chrono::milliseconds timeout) {
  return rethrow_one_line("c10d TCPStore rendezvous", [&] {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(port);
    o.isServer = is_server;
    o.numWorkers = static_cast<std::size_t>(world_size);
    o.waitWorkers = true;
    o.timeout = timeout;
    return std::make_shared<TcpKeyValueStore>(c10::make_intrusive<c10d::TCPStore>(host, o));
  });
}

std::shared_ptr<CommGroup> make_comm_group(const std::string& backend, const std::shared_ptr<KeyValueStore>& store,
                                           int rank, int world_size, std::chrono::milliseconds timeout, bool loopback) {
  auto* tcp = dynamic_cast<TcpKeyValueStore*>(store.get());
  if (tcp == nullptr) throw std::invalid_argument("make_comm_group: the store must come from connect_tcp_store");
  const c10::intrusive_ptr<c10d::Store> raw = tcp->raw();
  (void)raw, (void)rank, (void)world_size, (void)timeout, (void)loopback;
#ifdef RBK_HAVE_C10D_GLOO
  if (backend == "gloo") {
    return rethrow_one_line("c10d ProcessGroupGloo", [&]() -> std::shared_ptr<CommGroup> {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (loopback) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else if (ifname != nullptr && *ifname) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(raw, rank, world_size, opts);
      return std::make_shared<C10dGroup<c10d::ProcessGroupGloo>>(pg, "gloo");
    });
  }
#endif
#ifdef RBK_HAVE_C10D_NCCL
  if (backend == "nccl") {
    return rethrow_one_line("c10d ProcessGroupNCCL", [&]() -> std::shared_ptr<CommGroup> {
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(raw, rank, world_size, opts);
      return std::make_shared<C10dGroup<c10d::ProcessGroupNCCL>>(pg, "nccl");
    });
  }
#endif
  throw std::invalid_argument("c10d backend '" + backend + "' is not in this build (LibTorch " + TORCH_VERSION +
                              "; configure found: gloo " + (c10d_backend_compiled("gloo") ? "yes" : "no") + ", nccl " +
                              (c10d_backend_compiled("nccl") ? "yes" : "no") + ")");
}

}  // namespace rbk
