// CapturedLmStep (captured_lm_step.h): one LM training step, eager or replayed from a CUDA graph.
#include "rbk/captured_lm_step.h"

#include "rbk/fused_cross_entropy.h"

namespace rbk {

namespace {
torch::optim::AdamWOptions adamw_options(const TrainOptions& t) {
  return torch::optim::AdamWOptions(t.lr).weight_decay(t.weight_decay).betas({t.beta1, t.beta2}).eps(t.eps);
}
}  // namespace

CapturedLmStep::CapturedLmStep(LanguageModel& model, const TrainOptions& train, bool bf16, int64_t batch_size, int64_t n,
                               bool fused_loss)
    : model_(model),
      train_(train),
      bf16_(bf16),
      fused_loss_(fused_loss),
      n_(n),
      params_(model.parameters()),
      optim_(params_, adamw_options(train)) {
  TORCH_CHECK(batch_size >= 1 && n >= 1, "CapturedLmStep: batch_size and n must be >= 1, got ", batch_size, ", ", n);
  input_ = torch::zeros({batch_size, n + 1}, torch::TensorOptions().dtype(torch::kInt64).device(params_.at(0).device()));
}

void CapturedLmStep::issue_step() {
  optim_.zero_grad();
  const auto x = input_.narrow(1, 0, n_), y = input_.narrow(1, 1, n_);
  loss_ = language_model_loss_with(model_, x, y, bf16_, train_.loss_chunk_tokens, fused_loss_);
  loss_.backward();
  if (train_.clip_norm > 0) clip_grad_norm_no_sync(params_, train_.clip_norm);
  optim_.step();
}

void CapturedLmStep::run_eager(const torch::Tensor& batch) {
  input_.copy_(batch);
  issue_step();
}

void CapturedLmStep::capture(const torch::Tensor& warmup_batches) {
  TORCH_CHECK(!graph_, "CapturedLmStep: already captured");
  const int64_t warmup = warmup_batches.size(0);
  TORCH_CHECK(warmup >= 1, "CapturedLmStep: capture() needs at least one warm-up batch");
  int64_t next = 0;
  // CudaGraph calls this warmup + 1 times: the warm-up steps on their batches, then the captured
  // call, which reads whatever the input holds at each replay.
  graph_ = std::make_unique<CudaGraph>(
      [&] {
        if (next < warmup) input_.copy_(warmup_batches[next++]);
        issue_step();
      },
      input_.device(), static_cast<int>(warmup));
}

void CapturedLmStep::run_captured(const torch::Tensor& batch) {
  TORCH_CHECK(graph_, "CapturedLmStep: run_captured() before capture()");
  input_.copy_(batch);
  graph_->replay();
}

}  // namespace rbk
