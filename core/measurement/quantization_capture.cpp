// Observing and rewriting Linear layers without touching the models (quantization.h):
// RecordFunction callbacks on this thread see the ATen ops a Linear runs, with their inputs and
// outputs. A call is ours when its weight is one of the registered parameters (same TensorImpl).
// GPTQ's Hessians are summed from the inputs; W8A8 and upstream's dynamic INT8 replace the output
// by the linear of the quantized input. The callbacks run on the thread that created the guard
// only, and one guard is alive at a time per thread.
//
// LibTorch is built with NDEBUG and RecordFunction's layout depends on it (a member that exists
// only without NDEBUG, inputs_valid_): this file must read record_function.h as the library was
// built, so it is compiled with NDEBUG whatever the target's assert setting (-UNDEBUG keeps the
// project's asserts alive elsewhere). Without this, inputs() reads a misplaced field and throws.
#ifndef NDEBUG
#define NDEBUG
#endif
#include "rbk/quantization.h"

#include <ATen/record_function.h>

#include <map>
#include <memory>
#include <vector>

namespace rbk {

namespace {

// How a Linear reaches ATen: torch::nn::Linear's forward (torch/nn/functional/linear.h, inlined
// into the library) computes addmm(b, x, W.t()) for 2-D inputs with a bias, else
// matmul(x, W.t()) (+ b in place); the models' heads call torch::linear (aten::linear). So a call
// is recognised either as aten::linear with a registered W, or as addmm / matmul / mm whose
// weight operand is the output of an aten::t of a registered W (tracked from that t's end). While
// a recognised op runs, the ops nested in it are ignored (no double counting).
struct LinearObserverState {
  std::map<const void*, size_t> index;  // registered weight TensorImpl -> position
  // Outputs of aten::t(W) not yet consumed: their TensorImpl -> (position, the tensor, kept alive
  // so that the address cannot be reused by another tensor while it is in the map).
  std::map<const void*, std::pair<size_t, torch::Tensor>> transposed;
  bool hessian_mode = false;
  std::vector<torch::Tensor> hessians;  // (in, in) float64
  std::vector<int64_t> tokens;
  QuantMethod method = QuantMethod::W8A8;
  int64_t calls = 0;
  bool active = false;  // a recognised op is running: ignore what it calls
};

thread_local LinearObserverState* t_state = nullptr;
thread_local bool t_inside = false;  // our own ops inside a callback are not observed

enum class CallKind { Transpose, Linear, Addmm, Matmul };

struct SavedLinearCall : at::ObserverContext {
  CallKind kind = CallKind::Linear;
  size_t position = 0;
  torch::Tensor input, weight, bias;  // weight: W for Linear, W^T for Addmm / Matmul
};

std::unique_ptr<SavedLinearCall> recognise(const at::RecordFunction& fn) {
  const std::string name = fn.name();
  const bool is_t = name == "aten::t", is_linear = name == "aten::linear", is_addmm = name == "aten::addmm",
             is_matmul = name == "aten::matmul" || name == "aten::mm";
  if (!(is_t || is_linear || is_addmm || is_matmul)) return nullptr;
  const auto inputs = fn.inputs();
  const auto tensor_at = [&](size_t i) -> torch::Tensor {
    return i < inputs.size() && inputs[i].isTensor() ? inputs[i].toTensor() : torch::Tensor();
  };
  auto call = std::make_unique<SavedLinearCall>();
  if (is_t || is_linear) {
    const auto w = tensor_at(is_t ? 0 : 1);
    if (!w.defined()) return nullptr;
    const auto it = t_state->index.find(w.unsafeGetTensorImpl());
    if (it == t_state->index.end()) return nullptr;
    call->kind = is_t ? CallKind::Transpose : CallKind::Linear;
    call->position = it->second;
    if (is_linear) {
      call->input = tensor_at(0);
      call->weight = w;
      call->bias = tensor_at(2);
    }
    return call;
  }
  const auto wt = tensor_at(is_addmm ? 2 : 1);
  if (!wt.defined()) return nullptr;
  const auto it = t_state->transposed.find(wt.unsafeGetTensorImpl());
  if (it == t_state->transposed.end()) return nullptr;
  call->kind = is_addmm ? CallKind::Addmm : CallKind::Matmul;
  call->position = it->second.first;
  call->weight = wt;
  call->input = tensor_at(is_addmm ? 1 : 0);
  if (is_addmm) call->bias = tensor_at(0);
  t_state->transposed.erase(it);
  return call;
}

std::unique_ptr<at::ObserverContext> on_op_start(const at::RecordFunction& fn) {
  if (t_state == nullptr || t_inside || t_state->active) return nullptr;
  auto call = recognise(fn);
  if (!call || call->kind == CallKind::Transpose) return call;
  t_state->active = true;
  if (t_state->hessian_mode) {
    t_inside = true;
    try {
      torch::NoGradGuard no_grad;
      const auto& x = call->input;
      auto flat = x.detach().reshape({-1, x.size(-1)}).to(torch::kDouble);
      auto& h = t_state->hessians[call->position];
      h.add_(flat.t().matmul(flat).to(h.device()));
      t_state->tokens[call->position] += flat.size(0);
    } catch (...) {
      t_inside = false;
      throw;
    }
    t_inside = false;
    call->input = torch::Tensor();
  }
  return call;
}

void on_op_end(const at::RecordFunction& fn, at::ObserverContext* ctx_base) {
  auto* call = static_cast<SavedLinearCall*>(ctx_base);
  if (call == nullptr || t_state == nullptr) return;
  const auto& outputs = fn.outputs();
  if (call->kind == CallKind::Transpose) {
    if (!outputs.empty() && outputs[0].isTensor()) {
      const auto wt = outputs[0].toTensor();
      t_state->transposed[wt.unsafeGetTensorImpl()] = {call->position, wt};
    }
    return;
  }
  t_state->active = false;
  if (t_state->hessian_mode || outputs.empty() || !outputs[0].isTensor()) return;
  t_inside = true;
  try {
    torch::NoGradGuard no_grad;
    const auto xq = t_state->method == QuantMethod::UpstreamInt8Dynamic ? fake_quantize_affine_uint8_per_tensor(call->input)
                                                                        : fake_quantize_per_token_int8(call->input);
    torch::Tensor y_new;
    switch (call->kind) {
      case CallKind::Linear: y_new = torch::linear(xq, call->weight, call->bias); break;
      case CallKind::Addmm: y_new = torch::addmm(call->bias, xq, call->weight); break;
      default: y_new = torch::matmul(xq, call->weight); break;
    }
    auto y = outputs[0].toTensor();
    y.copy_(y_new);
    ++t_state->calls;
  } catch (...) {
    t_inside = false;
    throw;
  }
  t_inside = false;
}

uint64_t install(LinearObserverState* state, const std::vector<torch::Tensor>& weights) {
  if (t_state != nullptr) throw QuantizationError("a HessianCapture or ActivationQuantGuard is already alive on this thread");
  for (size_t i = 0; i < weights.size(); ++i) state->index[weights[i].unsafeGetTensorImpl()] = i;
  t_state = state;
  return at::addThreadLocalCallback(at::RecordFunctionCallback(on_op_start, on_op_end)
                                        .needsInputs(true)
                                        .needsOutputs(true)
                                        .scopes({at::RecordScope::FUNCTION}));
}

void uninstall(uint64_t handle) {
  at::removeCallback(handle);
  delete t_state;
  t_state = nullptr;
}

}  // namespace

HessianCapture::HessianCapture(const std::vector<torch::Tensor>& weights) {
  auto state = std::make_unique<LinearObserverState>();
  state->hessian_mode = true;
  for (const auto& w : weights) {
    TORCH_CHECK(w.dim() == 2, "HessianCapture: Linear weights are (out, in), got ", w.sizes());
    state->hessians.push_back(torch::zeros({w.size(1), w.size(1)}, w.options().dtype(torch::kDouble)));
    state->tokens.push_back(0);
  }
  handle_ = install(state.get(), weights);
  state.release();  // owned by t_state until the destructor
}

HessianCapture::~HessianCapture() { uninstall(handle_); }

torch::Tensor HessianCapture::hessian(size_t i) const { return t_state->hessians.at(i); }
int64_t HessianCapture::tokens(size_t i) const { return t_state->tokens.at(i); }

ActivationQuantGuard::ActivationQuantGuard(const std::vector<torch::Tensor>& weights, QuantMethod method) {
  if (method != QuantMethod::W8A8 && method != QuantMethod::UpstreamInt8Dynamic)
    throw QuantizationError("ActivationQuantGuard: only w8a8 and upstream_int8_dynamic quantize activations");
  auto state = std::make_unique<LinearObserverState>();
  state->method = method;
  handle_ = install(state.get(), weights);
  state.release();
}

ActivationQuantGuard::~ActivationQuantGuard() { uninstall(handle_); }

int64_t ActivationQuantGuard::calls() const { return t_state->calls; }

}  // namespace rbk
