// One language-model training step (forward and loss, backward, gradient clipping, AdamW) that
// runs either operator by operator or as a captured CUDA graph replayed with one launch (issue 25:
// the ResNet-BK step is bound by its host's issue rate, not its GPU). Both ways issue the same
// operations from the same code (issue_step), on the same fixed input tensor, so a replay can be
// checked against the eager step and timed against it as equal work.
//
// The step is the trainer's: rbk::language_model_loss (bf16 autocast where asked, the loss in
// chunks of train.loss_chunk_tokens; or the fused loss, fused_cross_entropy.h), rbk::clip_grad_norm_no_sync at train.clip_norm, then AdamW
// with train's lr, betas, eps and weight decay, as rbk::DeviceStepAdamW (a replay needs its step
// count on the device; the trainer's rbk::MultiTensorAdamW keeps it on the host). A captured model
// must not synchronise with its host inside a step: the ResNet-BK LM's gather MoE dispatch does
// (its expert sizes), so only model.moe_dispatch = dense captures; capture() reports what threw.
#pragma once
#include "rbk/device_step_adamw.h"
#include "rbk/language_model.h"
#include "rbk/torch_compat_cuda_graph.h"
#include "rbk/trainer.h"

#include <memory>

namespace rbk {

class CapturedLmStep {
 public:
  // batch_size x (n + 1) token ids per step (inputs and shifted targets), on the model's device.
  // fused_loss: the loss through rbk::language_model_loss_fused (fused_cross_entropy.h; needs
  // train.loss_chunk_tokens <= 0, else the first step throws) instead of rbk::language_model_loss.
  CapturedLmStep(LanguageModel& model, const TrainOptions& train, bool bf16, int64_t batch_size, int64_t n,
                 bool fused_loss = false);

  // One step on `batch` (batch_size, n + 1), operator by operator.
  void run_eager(const torch::Tensor& batch);
  // Captures one step (CudaGraph) after one eager step on each of `warmup_batches` (W, batch_size,
  // n + 1), W >= 1, on the capture's stream: the capture itself runs nothing, so the model and
  // optimizer have taken W steps when it returns.
  void capture(const torch::Tensor& warmup_batches);
  bool captured() const { return graph_ != nullptr; }
  // One step on `batch` by replaying the captured graph (capture() first).
  void run_captured(const torch::Tensor& batch);

  // The last step's loss (a device tensor, rewritten by every step).
  const torch::Tensor& loss() const { return loss_; }
  DeviceStepAdamW& optimizer() { return optim_; }

 private:
  void issue_step();

  LanguageModel& model_;
  TrainOptions train_;
  bool bf16_, fused_loss_;
  int64_t n_;
  std::vector<torch::Tensor> params_;
  DeviceStepAdamW optim_;
  torch::Tensor input_;  // (batch_size, n + 1): every step reads its batch from here
  torch::Tensor loss_;
  std::unique_ptr<CudaGraph> graph_;
};

}  // namespace rbk
