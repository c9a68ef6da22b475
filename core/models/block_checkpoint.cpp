// Per-block activation checkpointing: an autograd Function that keeps only a block's input and
// recomputes the block in backward (see block_checkpoint.h; issue 17).
#include "rbk/block_checkpoint.h"

#include "rbk/generator_state.h"
#include "rbk/torch_compat.h"

#include <optional>

namespace rbk {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

thread_local int recompute_depth = 0;

struct RecomputeScope {
  RecomputeScope() { ++recompute_depth; }
  ~RecomputeScope() { --recompute_depth; }
  RecomputeScope(const RecomputeScope&) = delete;
  RecomputeScope& operator=(const RecomputeScope&) = delete;
};

// The block travels in the Function's context as an IValue capsule: the one IValue kind that holds
// an arbitrary C++ object without registering a TorchScript class; the graph owns it until backward.
struct BlockHolder : torch::CustomClassHolder {
  explicit BlockHolder(BlockFunction f) : fn(std::move(f)) {}
  BlockFunction fn;
};

// Puts a generator into a recorded state for one scope and back into its current state on exit.
class GeneratorReplay {
 public:
  GeneratorReplay(const torch::Device& device, const torch::Tensor& recorded)
      : device_(device), current_(generator_state(device)) {
    set_generator_state(device_, recorded);
  }
  ~GeneratorReplay() { set_generator_state(device_, current_); }
  GeneratorReplay(const GeneratorReplay&) = delete;
  GeneratorReplay& operator=(const GeneratorReplay&) = delete;

 private:
  torch::Device device_;
  torch::Tensor current_;
};

struct BlockCheckpointFunction : public torch::autograd::Function<BlockCheckpointFunction> {
  // Runs with grad mode off (Function::apply's doing): the block builds no graph here.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const c10::intrusive_ptr<BlockHolder>& block) {
    ctx->saved_data["block"] = c10::IValue::make_capsule(block);
    ctx->saved_data["cpu_rng"] = generator_state(torch::kCPU);
    if (x.is_cuda()) ctx->saved_data["cuda_rng"] = generator_state(x.device());
    ctx->saved_data["autocast"] = cuda_autocast_enabled();
    ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(cuda_autocast_dtype());
    ctx->save_for_backward({x});
    return block->fn(x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto x = ctx->get_saved_variables().at(0);
    const auto block = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data.at("block").toCapsule());
    const torch::Tensor& grad_y = grad_outputs.at(0);
    if (!grad_y.defined()) return {torch::Tensor(), torch::Tensor()};
    // A fresh leaf: the recomputed graph ends here, and its .grad is the gradient w.r.t. x.
    const auto x_leaf = x.detach().requires_grad_(true);
    torch::Tensor y;
    {
      GeneratorReplay cpu(torch::kCPU, ctx->saved_data.at("cpu_rng").toTensor());
      std::optional<GeneratorReplay> cuda;
      if (x.is_cuda()) cuda.emplace(x.device(), ctx->saved_data.at("cuda_rng").toTensor());
      AutocastGuard autocast(ctx->saved_data.at("autocast").toBool(),
                             static_cast<torch::ScalarType>(ctx->saved_data.at("autocast_dtype").toInt()));
      RecomputeScope recomputing;
      torch::AutoGradMode grad_on(true);
      y = block->fn(x_leaf);
    }
    TORCH_CHECK(y.requires_grad(), "checkpoint_block: the recomputed block output does not require grad");
    // Reentrant backward: accumulates into the block's parameters' .grad and into x_leaf.grad.
    torch::autograd::backward({y}, {grad_y});
    return {x_leaf.grad(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpoint_block(const BlockFunction& block, const torch::Tensor& x) {
  if (!torch::GradMode::is_enabled()) return block(x);
  // Without an input that requires grad, Function::apply would record no node and the block's
  // parameters would silently get no gradient.
  const torch::Tensor input = x.requires_grad() ? x : x.detach().requires_grad_(true);
  return BlockCheckpointFunction::apply(input, c10::make_intrusive<BlockHolder>(block));
}

bool in_block_recompute() { return recompute_depth > 0; }

}  // namespace rbk
