// The data-parallel gradient all-reduce (distributed.h; issue 23). LibTorch has no C++
// DistributedDataParallel, so this is rbk's: trainable parameters are grouped in reverse order
// (the order backward produces their gradients) into flat buckets of about bucket_mib; with
// overlap on, a hook on every parameter copies its gradient into its bucket's slice as soon as
// autograd computes it, and a bucket whose slices are all written is all-reduced asynchronously
// while the rest of the backward pass runs. Buckets are launched strictly in index order (a ready
// bucket waits for the earlier ones), so every rank issues the same collectives in the same order
// whatever order its hooks fire in. reduce_gradients then launches whatever the hooks did not
// (parameters that got no gradient this step), waits, divides by the world size and writes the
// means back into .grad. Overlap is measured (buckets launched inside backward, host time spent
// waiting after it), not assumed.
//
// A parameter no rank produced a gradient for keeps the .grad it had (undefined, or zeros where
// LibTorch's zero_grad zeroes), as in single-process training: a small presence count is reduced
// beside the buckets.
#include "rbk/distributed.h"

#include <chrono>
#include <mutex>
#include <unordered_set>

namespace rbk {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

class BucketedGradientReducer final : public TrainSync {
 public:
  BucketedGradientReducer(std::shared_ptr<DistributedContext> ctx, torch::Device compute)
      : ctx_(std::move(ctx)), compute_(compute), comm_(ctx_->comm_device(compute)) {}
  ~BucketedGradientReducer() override { release(); }

  int rank() const override { return ctx_->rank(); }
  int world_size() const override { return ctx_->world_size(); }
  bool is_writer() const override { return ctx_->is_writer(); }

  void prepare(const std::vector<torch::Tensor>& all_params) override {
    release();
    params_.clear();
    buckets_.clear();
    std::unordered_set<const void*> seen_impl;
    for (const auto& p : all_params)
      if (p.requires_grad() && seen_impl.insert(p.unsafeGetTensorImpl()).second) params_.push_back(p);
    const int64_t n = static_cast<int64_t>(params_.size());
    bucket_of_.assign(n, 0);
    offset_.assign(n, 0);
    seen_.assign(n, false);
    const double cap_bytes = ctx_->options().bucket_mib * 1024.0 * 1024.0;
    // Reverse order: the output side's gradients arrive first in backward.
    for (int64_t i = n - 1; i >= 0; --i) {
      const auto& p = params_[i];
      const double bytes = static_cast<double>(p.numel() * p.element_size());
      if (buckets_.empty() || buckets_.back().dtype != p.scalar_type() ||
          (buckets_.back().bytes > 0 && buckets_.back().bytes + bytes > cap_bytes))
        buckets_.push_back(Bucket{{}, p.scalar_type(), 0.0, 0, {}, {}, 0, false});
      auto& b = buckets_.back();
      bucket_of_[i] = static_cast<int64_t>(buckets_.size()) - 1;
      offset_[i] = b.numel;
      b.params.push_back(i);
      b.numel += p.numel();
      b.bytes += bytes;
    }
    for (auto& b : buckets_) b.flat = torch::zeros({b.numel}, torch::TensorOptions().dtype(b.dtype).device(comm_));
    presence_ = torch::zeros({n}, torch::TensorOptions().dtype(torch::kFloat).device(comm_));
    broadcast_parameters();
    if (ctx_->options().overlap) {
      hooks_.clear();
      for (int64_t i = 0; i < n; ++i)
        hooks_.push_back(params_[i].register_hook([this, i](const torch::Tensor& grad) { on_gradient(i, grad); }));
    }
    ctx_->heartbeat(0);
  }

  torch::Tensor local_rows(const torch::Tensor& grid) override {
    const auto shard = train_shard(grid.size(0) * grid.size(1), grid.size(0), rank(), world_size());
    return grid.narrow(0, shard.row_begin, shard.rows);
  }

  void before_backward(int64_t step, bool last_micro) override {
    if (!last_micro) return;  // earlier micro-batches only accumulate locally
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = ctx_->options().overlap;
    step_ = step;
    backward_start_ = Clock::now();
  }

  void reduce_gradients(int64_t step) override {
    std::unique_lock<std::mutex> lock(mu_);
    armed_ = false;
    backward_seconds_ += seconds_since(backward_start_);
    if (!hook_error_.empty()) throw ctx_->collective_failure("gradient all-reduce (launched in backward)", step, hook_error_);
    const auto t_fill = Clock::now();
    // Whatever the hooks did not write: parameters without a gradient this step (or every one,
    // with overlap off) are filled from .grad now, then launched in order.
    for (size_t b = next_launch_; b < buckets_.size(); ++b) {
      for (const int64_t i : buckets_[b].params)
        if (!seen_[i]) {
          auto slice = slice_of(i);
          const auto& g = params_[i].grad();
          if (g.defined()) slice.copy_(g);
          else slice.zero_();
        }
      buckets_[b].ready = static_cast<int64_t>(buckets_[b].params.size());
    }
    auto host_presence = torch::zeros({static_cast<int64_t>(params_.size())}, torch::kFloat);
    auto* pr = host_presence.data_ptr<float>();
    bool all_present_here = true;
    for (size_t i = 0; i < params_.size(); ++i) {
      pr[i] = (seen_[i] || params_[i].grad().defined()) ? 1.0f : 0.0f;
      all_present_here = all_present_here && pr[i] > 0;
    }
    presence_.copy_(host_presence);
    try {
      launch_ready_in_order(false);
      presence_work_ = ctx_->group().all_reduce_sum(presence_);
    } catch (const std::exception& e) {
      throw ctx_->collective_failure("gradient all-reduce", step, e.what());
    }
    const auto t_wait = Clock::now();
    try {
      for (auto& b : buckets_) b.work->wait();
      presence_work_->wait();
    } catch (const std::exception& e) {
      throw ctx_->collective_failure("gradient all-reduce", step, e.what());
    }
    wait_seconds_ += seconds_since(t_wait);
    fill_seconds_ += std::chrono::duration<double>(t_wait - t_fill).count();
    const double inv_world = 1.0 / static_cast<double>(world_size());
    // The global presence is read on the host (a device sync on CUDA) only when this rank lacks a
    // gradient: a parameter with a local gradient always takes the mean.
    const auto present = all_present_here ? host_presence : presence_.to(torch::kCPU);
    const float* pc = present.data_ptr<float>();
    torch::NoGradGuard no_grad;
    for (auto& b : buckets_) b.flat.mul_(inv_world);
    for (size_t i = 0; i < params_.size(); ++i) {
      if (pc[i] == 0.0f) continue;  // no rank had a gradient: leave .grad as single-process would
      auto mean = slice_of(static_cast<int64_t>(i));
      auto& p = params_[i];
      if (p.grad().defined()) p.mutable_grad().copy_(mean);
      else p.mutable_grad() = mean.to(p.device()).clone();
    }
    for (auto& b : buckets_) {
      b.ready = 0;
      b.launched = false;
      b.work.reset();
    }
    std::fill(seen_.begin(), seen_.end(), false);
    next_launch_ = 0;
    steps_ += 1;
    lock.unlock();
    try {
      ctx_->heartbeat(step + 1);
    } catch (const std::exception& e) {
      throw ctx_->collective_failure("heartbeat to the store", step, e.what());
    }
  }

  torch::Tensor average(const torch::Tensor& values, int64_t step) override {
    auto v = values.detach().to(comm_, torch::kFloat).contiguous().clone();
    try {
      ctx_->group().all_reduce_sum(v)->wait();
    } catch (const std::exception& e) {
      throw ctx_->collective_failure("loss all-reduce", step, e.what());
    }
    v.div_(static_cast<double>(world_size()));
    return v.to(values.device(), values.scalar_type());
  }

  void release() override {
    for (size_t i = 0; i < hooks_.size() && i < params_.size(); ++i) params_[i].remove_hook(hooks_[i]);
    hooks_.clear();
  }

  nlohmann::json stats() const override {
    int64_t elements = 0;
    for (const auto& b : buckets_) elements += b.numel;
    const double launched = static_cast<double>(launched_total_);
    return {{"buckets", static_cast<int64_t>(buckets_.size())},
            {"bucket_mib", ctx_->options().bucket_mib},
            {"gradient_elements", elements},
            {"overlap", ctx_->options().overlap},
            {"steps_reduced", steps_},
            {"buckets_launched", launched_total_},
            {"buckets_launched_in_backward", launched_in_backward_},
            {"fraction_launched_in_backward", launched > 0 ? static_cast<double>(launched_in_backward_) / launched : 0.0},
            {"backward_seconds", backward_seconds_},
            {"fill_after_backward_seconds", fill_seconds_},
            {"wait_after_backward_seconds", wait_seconds_}};
  }

 private:
  struct Bucket {
    std::vector<int64_t> params;  // indices into params_
    torch::ScalarType dtype;
    double bytes = 0.0;
    int64_t numel = 0;
    torch::Tensor flat;           // (numel,) on comm_
    std::unique_ptr<CommWork> work;
    int64_t ready = 0;            // slices written
    bool launched = false;
  };

  torch::Tensor slice_of(int64_t i) {
    return buckets_[bucket_of_[i]].flat.narrow(0, offset_[i], params_[i].numel()).view(params_[i].sizes());
  }

  // Runs on autograd's thread. Copies (accumulated .grad of earlier micro-batches +) this gradient
  // into the bucket; AccumulateGrad still adds it to .grad, which reduce_gradients overwrites.
  void on_gradient(int64_t i, const torch::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!armed_ || seen_[i] || !hook_error_.empty()) return;
    seen_[i] = true;
    try {
      torch::NoGradGuard no_grad;
      auto slice = slice_of(i);
      const auto& acc = params_[i].grad();
      if (acc.defined()) slice.copy_(acc + grad);
      else slice.copy_(grad);
      auto& b = buckets_[bucket_of_[i]];
      if (++b.ready == static_cast<int64_t>(b.params.size())) launch_ready_in_order(true);
    } catch (const std::exception& e) {
      hook_error_ = e.what();  // thrown from reduce_gradients, never through autograd
    }
  }

  void launch_ready_in_order(bool in_backward) {
    while (next_launch_ < buckets_.size() &&
           buckets_[next_launch_].ready == static_cast<int64_t>(buckets_[next_launch_].params.size())) {
      auto& b = buckets_[next_launch_++];
      b.work = ctx_->group().all_reduce_sum(b.flat);
      b.launched = true;
      launched_total_ += 1;
      if (in_backward) launched_in_backward_ += 1;
    }
  }

  void broadcast_parameters() {
    torch::NoGradGuard no_grad;
    try {
      for (auto& b : buckets_) {
        for (const int64_t i : b.params) slice_of(i).copy_(params_[i].detach());
        ctx_->group().broadcast(b.flat, 0)->wait();
        for (const int64_t i : b.params) params_[i].detach().copy_(slice_of(i));
      }
    } catch (const std::exception& e) {
      throw ctx_->collective_failure("parameter broadcast from rank 0", 0, e.what());
    }
  }

  std::shared_ptr<DistributedContext> ctx_;
  torch::Device compute_, comm_;
  std::vector<torch::Tensor> params_;
  std::vector<int64_t> bucket_of_, offset_;
  std::vector<bool> seen_;
  std::vector<Bucket> buckets_;
  torch::Tensor presence_;  // (n_params,) float32: ranks that had a gradient, summed
  std::unique_ptr<CommWork> presence_work_;
  std::vector<unsigned> hooks_;
  std::mutex mu_;
  bool armed_ = false;
  int64_t step_ = 0;
  size_t next_launch_ = 0;
  std::string hook_error_;
  Clock::time_point backward_start_ = Clock::now();
  int64_t steps_ = 0, launched_total_ = 0, launched_in_backward_ = 0;
  double backward_seconds_ = 0.0, wait_seconds_ = 0.0, fill_seconds_ = 0.0;
};

}  // namespace

std::unique_ptr<TrainSync> make_gradient_reducer(std::shared_ptr<DistributedContext> ctx, torch::Device compute_device) {
  if (!ctx) throw DistributedError("make_gradient_reducer: no distributed context");
  return std::make_unique<BucketedGradientReducer>(std::move(ctx), compute_device);
}

}  // namespace rbk
