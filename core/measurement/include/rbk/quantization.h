// Post-training quantization of trained language models (claim C13, seed 002 Table 2 / Fig. 2, and
// the quantisation part of C21): the formats the table compares, which tensors each row touches,
// and the fake-quantization path (quantize, dequantize, evaluate in fp32) that gives the accuracy.
//
// Formats (QuantFormat::parse):
//   fp32                 identity (the row that must equal the unquantized evaluation exactly)
//   fp16, bf16           weights rounded to half / bfloat16 and back (compute stays fp32)
//   int8                 weight-only, symmetric per output channel, round to nearest (RTN)
//   int4_channel         weight-only INT4 RTN, symmetric per output channel
//   int4_g<k>            weight-only INT4 RTN, symmetric per group of k input columns (k | in_dim)
//   int4_gptq_channel    INT4 GPTQ (Frantar et al. 2022): Cholesky-based column-wise error
//   int4_gptq_g<k>       compensation with damping, lazy block updates; calibrated on TRAIN text
//   w8a8                 int8 per-channel weights + int8 per-token activations at every quantized
//                        matmul's input (dynamic, symmetric)
//   upstream_int8_dynamic  upstream's quantize_dynamic (audit §8): per-tensor symmetric int8
//                        weights (scale max|W| / 127.5, range [-128, 127]) and per-call affine
//                        uint8 activations (scale (max - min) / 255 over the batch, zero point)
//   upstream_int4_fake   upstream's "fake INT4" (audit §8): per-tensor scale max|W| / 7 + 1e-8,
//                        q = clamp(round(W / s), -8, 7), weight-only
// Symmetric grids use [-qmax, qmax] with qmax = 2^(bits-1) - 1 and scale = max|w| / qmax over the
// channel or group, so every element's error is at most half a step; an all-zero channel gets
// scale 1 (its values stay exactly 0) instead of a division by zero.
//
// Tensor sets (which tensors a row quantizes; biases and norms are never quantized, and Mamba's
// depthwise conv1d filter stays fp32 in every set):
//   linear              every Linear weight except the head and the model's sequence-mixing core
//                       (Mamba: dt_proj, kept in high precision as its maintainers advise;
//                       ResNet-BK: the potential projection v_proj and the BK feature projection
//                       out_proj); the ResNet-BK MoE experts and router gate are included
//   linear_core         linear + the core: Mamba dt_proj, A_log, D; ResNet-BK v_proj, out_proj
//   linear_embed_head   linear + token/position embeddings + head
//   every_linear        every Linear weight, head and core projections included (upstream's
//                       quantize_dynamic({nn.Linear}) set)
//   all                 linear_core + embeddings + head
// A row is "<format>@<tensor set>", e.g. "int4_g128@linear".
#pragma once
#include "rbk/language_model.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace rbk {

// Bad format, tensor set or group size; the message names the value and what was expected.
struct QuantizationError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

enum class QuantMethod { Identity, CastFp16, CastBf16, Rtn, Gptq, W8A8, UpstreamInt8Dynamic, UpstreamInt4Fake };

struct QuantFormat {
  std::string name;            // as parsed, e.g. "int4_g128"
  QuantMethod method = QuantMethod::Identity;
  int bits = 32;               // weight bits (16 for the casts, 32 for fp32)
  int64_t group_size = 0;      // 0 = per output channel (or per tensor for the upstream formats)
  bool quantizes_activations() const {
    return method == QuantMethod::W8A8 || method == QuantMethod::UpstreamInt8Dynamic;
  }
  bool needs_calibration() const { return method == QuantMethod::Gptq; }
  static QuantFormat parse(const std::string& name);  // QuantizationError naming the value
};

const std::vector<std::string>& quant_format_examples();  // for help texts and messages
const std::vector<std::string>& quant_tensor_set_choices();

struct QuantRowSpec {
  QuantFormat format;
  std::string tensor_set = "linear";
  std::string key() const;                 // "<format>_<set>", a summary-key fragment
  static QuantRowSpec parse(const std::string& text);  // "<format>@<set>" ("@linear" optional)
};

// One tensor a row quantizes: its parameter name, the tensor (a view of the model's parameter)
// and what it is.
struct QuantTarget {
  std::string name;
  torch::Tensor param;
  std::string kind;     // "linear" | "core" | "embedding" | "head"
  bool is_linear_weight = false;  // a Linear's (out, in) weight: GPTQ and activation quant apply
};

// The tensors of `model` in `tensor_set` (QuantizationError for an unknown set).
std::vector<QuantTarget> select_quant_targets(LanguageModel& model, const std::string& tensor_set);

// Throws QuantizationError naming the tensor, its shape and the group size when a group does not
// divide a target's last dimension.
void check_group_size(const QuantRowSpec& row, const std::vector<QuantTarget>& targets);

// ---- The arithmetic (weights are (rows, cols); a 1-D tensor is one row) ------------------------
// Symmetric RTN with `bits`, scale per row (group_size 0) or per group of group_size columns.
// Returns the dequantized tensor (same shape and dtype as w).
torch::Tensor fake_quantize_symmetric(const torch::Tensor& w, int bits, int64_t group_size);
// The scales the same call uses: (rows, 1) or (rows, cols / group_size), float32.
torch::Tensor symmetric_scales(const torch::Tensor& w, int bits, int64_t group_size);
// Upstream's per-tensor schemes (see the file comment).
torch::Tensor fake_quantize_upstream_int8_weight(const torch::Tensor& w);
torch::Tensor fake_quantize_upstream_int4(const torch::Tensor& w);
// Activations x (..., in): int8 per token (each row of the last dimension its own absmax scale).
torch::Tensor fake_quantize_per_token_int8(const torch::Tensor& x);
// Activations x: upstream's dynamic quint8, one affine scale and zero point over the whole call.
torch::Tensor fake_quantize_affine_uint8_per_tensor(const torch::Tensor& x);

struct GptqOptions {
  double damping = 0.01;     // lambda = damping x mean(diag H), added to H's diagonal (GPTQ's percdamp)
  int64_t block_size = 128;  // columns per lazy batch update (the result does not depend on it
                             // beyond fp rounding)
};
// GPTQ of one Linear weight w (out, in) given H = sum over calibration tokens of x x^T (in, in),
// symmetric grid of `bits`, scales per row (group_size 0, from the original weights) or per group
// (from the error-updated weights when the group starts, as the reference). Columns whose H
// diagonal is 0 (never activated) are set to 0. Returns the dequantized weight.
torch::Tensor gptq_quantize(const torch::Tensor& w, const torch::Tensor& hessian, int bits, int64_t group_size,
                            const GptqOptions& options = {});

// ---- Whole-model application -----------------------------------------------------------------
struct QuantReport {
  int64_t quantized_tensors = 0;
  int64_t quantized_weights = 0;     // elements
  int64_t total_parameters = 0;
  double model_bytes = 0.0;          // storage: quantized elements at `bits` + one fp16 scale per
                                     // channel/group (+ fp16 zero point for affine), the rest fp32
                                     // (fp16/bf16 rows: their targets at 2 bytes)
  double bits_per_quantized_weight = 32.0;  // (element bits + scale bits) / quantized elements
  std::vector<std::string> tensors;  // names quantized
  std::vector<std::string> gptq_fell_back_to_rtn;  // GPTQ targets no calibration token reached
                                                   // (an expert never routed to): RTN instead
  std::vector<torch::Tensor> activation_weights;   // for ActivationQuantGuard (w8a8, upstream int8)
  nlohmann::json to_json() const;
};

// Calibration for GPTQ: run(model) executes forward passes over TRAINING text; it is called once
// per stage (blocks in forward order, then the rest) with the earlier stages already quantized,
// as GPTQ quantizes a model block by block.
using CalibrationRun = std::function<void(LanguageModel&)>;

// Applies row to model in place (weights replaced by their dequantized values, under no-grad).
// Activation quantization (w8a8, upstream_int8_dynamic) is not a weight change: evaluate under an
// ActivationQuantGuard made from the returned report's targets (activation_targets).
QuantReport apply_weight_quantization(LanguageModel& model, const QuantRowSpec& row, const CalibrationRun& calibrate = {},
                                      const GptqOptions& gptq = {});

// Hessians of Linear weights: while alive, every Linear call on this thread (torch::nn::Linear's
// addmm / matmul with W.t(), or torch::linear) whose weight is one of `weights` adds x^T x
// (x = the input reshaped to (tokens, in), float64) to its Hessian.
class HessianCapture {
 public:
  explicit HessianCapture(const std::vector<torch::Tensor>& weights);
  ~HessianCapture();
  HessianCapture(const HessianCapture&) = delete;
  HessianCapture& operator=(const HessianCapture&) = delete;
  // (in, in) float64 sum of x x^T over the captured tokens, and the token count.
  torch::Tensor hessian(size_t i) const;
  int64_t tokens(size_t i) const;

 private:
  uint64_t handle_ = 0;
};

// While alive, every Linear call on this thread (as above) whose weight is one of `weights` has its
// output replaced by linear(Q(x), W, b), Q = per-token int8 (w8a8) or per-call affine uint8
// (upstream_int8_dynamic). The input tensor itself is untouched (other consumers see it unchanged).
class ActivationQuantGuard {
 public:
  ActivationQuantGuard(const std::vector<torch::Tensor>& weights, QuantMethod method);
  ~ActivationQuantGuard();
  ActivationQuantGuard(const ActivationQuantGuard&) = delete;
  ActivationQuantGuard& operator=(const ActivationQuantGuard&) = delete;
  int64_t calls() const;  // linear calls rewritten (a row whose count is 0 quantized nothing)

 private:
  uint64_t handle_ = 0;
};

// The Linear weights of a row's targets (what GPTQ and the activation guards act on).
std::vector<torch::Tensor> linear_weights_of(const std::vector<QuantTarget>& targets);

}  // namespace rbk
