// Formats, tensor sets, RTN / upstream arithmetic and GPTQ of quantization.h (claim C13).
#include "rbk/quantization.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <regex>
#include <set>

namespace rbk {

namespace {

int64_t qmax_of(int bits) { return (int64_t(1) << (bits - 1)) - 1; }

// A weight as (rows, cols): 1-D tensors are one row.
torch::Tensor as_rows(const torch::Tensor& w) { return w.dim() == 1 ? w.reshape({1, -1}) : w.reshape({w.size(0), -1}); }

int64_t parse_group(const std::string& name, const std::string& digits) {
  int64_t g = 0;
  try {
    g = std::stoll(digits);
  } catch (const std::exception&) {
    g = 0;
  }
  if (g < 1 || g > (int64_t(1) << 20))
    throw QuantizationError("quantization format '" + name + "': group size '" + digits + "' must be an integer in [1, 2^20]");
  return g;
}

}  // namespace

const std::vector<std::string>& quant_format_examples() {
  static const std::vector<std::string> v{"fp32", "fp16", "bf16", "int8", "int4_channel", "int4_g<k>", "int4_gptq_channel",
                                          "int4_gptq_g<k>", "w8a8", "upstream_int8_dynamic", "upstream_int4_fake"};
  return v;
}

const std::vector<std::string>& quant_tensor_set_choices() {
  static const std::vector<std::string> v{"linear", "linear_core", "linear_embed_head", "every_linear", "all"};
  return v;
}

QuantFormat QuantFormat::parse(const std::string& name) {
  QuantFormat f;
  f.name = name;
  static const std::regex group_re("int4_g([0-9]+)"), gptq_group_re("int4_gptq_g([0-9]+)");
  std::smatch m;
  if (name == "fp32") {
    f.method = QuantMethod::Identity;
  } else if (name == "fp16" || name == "bf16") {
    f.method = name == "fp16" ? QuantMethod::CastFp16 : QuantMethod::CastBf16;
    f.bits = 16;
  } else if (name == "int8") {
    f.method = QuantMethod::Rtn;
    f.bits = 8;
  } else if (name == "int4_channel") {
    f.method = QuantMethod::Rtn;
    f.bits = 4;
  } else if (std::regex_match(name, m, group_re)) {
    f.method = QuantMethod::Rtn;
    f.bits = 4;
    f.group_size = parse_group(name, m[1]);
  } else if (name == "int4_gptq_channel") {
    f.method = QuantMethod::Gptq;
    f.bits = 4;
  } else if (std::regex_match(name, m, gptq_group_re)) {
    f.method = QuantMethod::Gptq;
    f.bits = 4;
    f.group_size = parse_group(name, m[1]);
  } else if (name == "w8a8") {
    f.method = QuantMethod::W8A8;
    f.bits = 8;
  } else if (name == "upstream_int8_dynamic") {
    f.method = QuantMethod::UpstreamInt8Dynamic;
    f.bits = 8;
  } else if (name == "upstream_int4_fake") {
    f.method = QuantMethod::UpstreamInt4Fake;
    f.bits = 4;
  } else {
    std::string list;
    for (const auto& e : quant_format_examples()) list += (list.empty() ? "" : ", ") + e;
    throw QuantizationError("unknown quantization format '" + name + "'; expected one of " + list);
  }
  return f;
}

std::string QuantRowSpec::key() const { return format.name + "_" + tensor_set; }

QuantRowSpec QuantRowSpec::parse(const std::string& text) {
  QuantRowSpec r;
  const auto at = text.find('@');
  r.format = QuantFormat::parse(text.substr(0, at));
  if (at != std::string::npos) r.tensor_set = text.substr(at + 1);
  const auto& sets = quant_tensor_set_choices();
  if (std::find(sets.begin(), sets.end(), r.tensor_set) == sets.end()) {
    std::string list;
    for (const auto& e : sets) list += (list.empty() ? "" : ", ") + e;
    throw QuantizationError("quantization row '" + text + "': unknown tensor set '" + r.tensor_set + "'; expected one of " + list);
  }
  return r;
}

std::vector<QuantTarget> select_quant_targets(LanguageModel& model, const std::string& tensor_set) {
  const auto& sets = quant_tensor_set_choices();
  if (std::find(sets.begin(), sets.end(), tensor_set) == sets.end())
    throw QuantizationError("unknown tensor set '" + tensor_set + "'");
  const std::string arch = model.config().arch;
  std::set<std::string> linear_weights;
  for (const auto& item : model.named_modules("", /*include_self=*/false))
    if (item.value()->as<torch::nn::Linear>() != nullptr) linear_weights.insert(item.key() + ".weight");

  const bool want_core = tensor_set == "linear_core" || tensor_set == "all";
  const bool want_embed_head = tensor_set == "linear_embed_head" || tensor_set == "all";
  const bool every_linear = tensor_set == "every_linear";
  std::vector<QuantTarget> out;
  for (const auto& p : model.named_parameters(/*recurse=*/true)) {
    const std::string& name = p.key();
    const bool is_linear = linear_weights.count(name) > 0;
    std::string kind;
    if (name == "tok_emb.weight" || name == "pos_emb.weight") {
      kind = "embedding";
    } else if (name == "head.weight") {
      kind = "head";
    } else if (arch == "mamba" && (name.find("mixer.dt_proj.weight") != std::string::npos ||
                                   (name.size() >= 6 && name.compare(name.size() - 6, 6, ".A_log") == 0) ||
                                   (name.size() >= 2 && name.compare(name.size() - 2, 2, ".D") == 0))) {
      kind = "core";
    } else if (arch == "resnet_bk" && (std::regex_match(name, std::regex("block[0-9]+_(v_proj|out_proj)\\.weight")))) {
      kind = "core";
    } else if (is_linear) {
      kind = "linear";
    } else {
      continue;  // biases, norms, conv1d, bk_scale
    }
    bool take = false;
    if (every_linear) take = is_linear;
    else if (kind == "linear") take = true;
    else if (kind == "core") take = want_core;
    else take = want_embed_head;
    if (take) out.push_back({name, p.value(), kind, is_linear});
  }
  return out;
}

void check_group_size(const QuantRowSpec& row, const std::vector<QuantTarget>& targets) {
  const int64_t g = row.format.group_size;
  if (g <= 0) return;
  for (const auto& t : targets) {
    const int64_t cols = as_rows(t.param).size(1);
    if (cols % g != 0)
      throw QuantizationError("quantization row '" + row.format.name + "@" + row.tensor_set + "': group size " +
                              std::to_string(g) + " does not divide the last dimension " + std::to_string(cols) +
                              " of tensor '" + t.name + "' (shape " + c10::str(t.param.sizes()) +
                              "); choose a group size dividing every quantized tensor's input width");
  }
}

torch::Tensor symmetric_scales(const torch::Tensor& w, int bits, int64_t group_size) {
  auto r = as_rows(w).to(torch::kFloat);
  const int64_t rows = r.size(0), cols = r.size(1);
  const int64_t g = group_size > 0 ? group_size : cols;
  TORCH_CHECK(cols % g == 0, "symmetric_scales: group size ", g, " does not divide ", cols);
  auto amax = r.abs().reshape({rows, cols / g, g}).amax(-1);  // (rows, groups)
  // An all-zero channel or group: scale 1 keeps its values exactly 0 (no 0/0).
  return torch::where(amax > 0, amax / static_cast<double>(qmax_of(bits)), torch::ones_like(amax));
}

torch::Tensor fake_quantize_symmetric(const torch::Tensor& w, int bits, int64_t group_size) {
  TORCH_CHECK(bits >= 2 && bits <= 16, "fake_quantize_symmetric: bits must be in [2, 16], got ", bits);
  auto r = as_rows(w).to(torch::kFloat);
  const int64_t rows = r.size(0), cols = r.size(1);
  const int64_t g = group_size > 0 ? group_size : cols;
  const auto s = symmetric_scales(w, bits, group_size).unsqueeze(-1);  // (rows, groups, 1)
  const double q = static_cast<double>(qmax_of(bits));
  auto grouped = r.reshape({rows, cols / g, g});
  auto deq = torch::clamp(torch::round(grouped / s), -q, q) * s;
  return deq.reshape(w.sizes()).to(w.scalar_type());
}

torch::Tensor fake_quantize_upstream_int8_weight(const torch::Tensor& w) {
  // MinMaxObserver(qint8, per_tensor_symmetric): scale = max|W| / ((127 - (-128)) / 2).
  auto f = w.to(torch::kFloat);
  double amax = f.abs().max().item<double>();
  const double scale = amax > 0 ? amax / 127.5 : 1.0;
  return (torch::clamp(torch::round(f / scale), -128, 127) * scale).to(w.scalar_type());
}

torch::Tensor fake_quantize_upstream_int4(const torch::Tensor& w) {
  auto f = w.to(torch::kFloat);
  const double scale = f.abs().max().item<double>() / 7.0 + 1e-8;  // upstream's epsilon, verbatim
  return (torch::clamp(torch::round(f / scale), -8, 7) * scale).to(w.scalar_type());
}

torch::Tensor fake_quantize_per_token_int8(const torch::Tensor& x) {
  auto f = x.to(torch::kFloat);
  auto amax = f.abs().amax(-1, /*keepdim=*/true);
  auto s = torch::where(amax > 0, amax / 127.0, torch::ones_like(amax));
  return (torch::clamp(torch::round(f / s), -127, 127) * s).to(x.scalar_type());
}

torch::Tensor fake_quantize_affine_uint8_per_tensor(const torch::Tensor& x) {
  // PlaceholderObserver(quint8, dynamic): the range always includes 0 (as PyTorch's qparams).
  auto f = x.to(torch::kFloat);
  const double lo = std::min(0.0, f.min().item<double>()), hi = std::max(0.0, f.max().item<double>());
  const double scale = hi > lo ? (hi - lo) / 255.0 : 1.0;
  const double zero = std::clamp(std::round(-lo / scale), 0.0, 255.0);
  auto q = torch::clamp(torch::round(f / scale) + zero, 0, 255);
  return ((q - zero) * scale).to(x.scalar_type());
}

torch::Tensor gptq_quantize(const torch::Tensor& w, const torch::Tensor& hessian, int bits, int64_t group_size,
                            const GptqOptions& options) {
  using torch::indexing::Slice;
  TORCH_CHECK(w.dim() == 2, "gptq_quantize: weight must be (out, in), got ", w.sizes());
  const int64_t cols = w.size(1);
  TORCH_CHECK(hessian.dim() == 2 && hessian.size(0) == cols && hessian.size(1) == cols,
              "gptq_quantize: hessian must be (in, in) = (", cols, ", ", cols, "), got ", hessian.sizes());
  TORCH_CHECK(group_size == 0 || cols % group_size == 0, "gptq_quantize: group size ", group_size, " does not divide ", cols);
  TORCH_CHECK(options.damping > 0 && options.block_size >= 1, "gptq_quantize: damping must be > 0 and block_size >= 1");
  const double q = static_cast<double>(qmax_of(bits));
  // float64 throughout: the Cholesky of a damped H of a few hundred columns is then exact enough
  // that the compensation, not rounding of the solver, decides the result.
  auto W = w.detach().to(torch::kDouble).clone();
  auto H = hessian.detach().to(torch::kDouble).clone();
  auto dead = H.diagonal() == 0;
  H.diagonal().masked_fill_(dead, 1.0);
  W.masked_fill_(dead.unsqueeze(0).expand_as(W), 0.0);
  H.diagonal().add_(options.damping * H.diagonal().mean().item<double>());
  auto Hinv = torch::cholesky_inverse(torch::linalg_cholesky(H));
  auto U = torch::linalg_cholesky(Hinv).t().contiguous();  // upper: Hinv = U^T U
  auto scale = group_size == 0 ? symmetric_scales(W, bits, 0).to(torch::kDouble).squeeze(1) : torch::Tensor();  // (rows)
  auto Q = torch::zeros_like(W);
  for (int64_t i1 = 0; i1 < cols; i1 += options.block_size) {
    const int64_t i2 = std::min(i1 + options.block_size, cols), count = i2 - i1;
    auto W1 = W.index({Slice(), Slice(i1, i2)}).clone();
    auto Err1 = torch::zeros_like(W1);
    auto U1 = U.index({Slice(i1, i2), Slice(i1, i2)});
    for (int64_t i = 0; i < count; ++i) {
      const int64_t col = i1 + i;
      if (group_size > 0 && col % group_size == 0) {
        // The group's scale from its current (error-updated) weights.
        auto part = W1.index({Slice(), Slice(i, std::min(count, i + group_size))});
        if (col + group_size > i2) part = torch::cat({part, W.index({Slice(), Slice(i2, col + group_size)})}, 1);
        auto amax = part.abs().amax(1);
        scale = torch::where(amax > 0, amax / q, torch::ones_like(amax));
      }
      auto wc = W1.index({Slice(), i});
      auto qc = torch::clamp(torch::round(wc / scale), -q, q) * scale;
      Q.index_put_({Slice(), col}, qc);
      auto err = (wc - qc) / U1.index({i, i});
      W1.index({Slice(), Slice(i, count)}).sub_(err.unsqueeze(1).matmul(U1.index({i, Slice(i, count)}).unsqueeze(0)));
      Err1.index_put_({Slice(), i}, err);
    }
    if (i2 < cols) W.index({Slice(), Slice(i2, cols)}).sub_(Err1.matmul(U.index({Slice(i1, i2), Slice(i2, cols)})));
  }
  return Q.to(w.scalar_type());
}

nlohmann::json QuantReport::to_json() const {
  return {{"quantized_tensors", quantized_tensors},
          {"quantized_weights", quantized_weights},
          {"total_parameters", total_parameters},
          {"model_bytes", model_bytes},
          {"bits_per_quantized_weight", bits_per_quantized_weight},
          {"tensors", tensors},
          {"gptq_fell_back_to_rtn", gptq_fell_back_to_rtn}};
}

std::vector<torch::Tensor> linear_weights_of(const std::vector<QuantTarget>& targets) {
  std::vector<torch::Tensor> w;
  for (const auto& t : targets)
    if (t.is_linear_weight) w.push_back(t.param);
  return w;
}

namespace {

// Storage bits of one target under `format`: elements at the format's bits plus one fp16 scale
// per channel or group (the per-tensor upstream schemes: one).
double storage_bits(const QuantFormat& f, const torch::Tensor& p) {
  const auto r = as_rows(p);
  const double n = static_cast<double>(p.numel());
  switch (f.method) {
    case QuantMethod::Identity: return 32.0 * n;
    case QuantMethod::CastFp16:
    case QuantMethod::CastBf16: return 16.0 * n;
    case QuantMethod::UpstreamInt8Dynamic:
    case QuantMethod::UpstreamInt4Fake: return f.bits * n + 16.0;
    default: break;
  }
  const double scales = static_cast<double>(r.size(0)) * (f.group_size > 0 ? r.size(1) / f.group_size : 1);
  return f.bits * n + 16.0 * scales;
}

// "block<l>" of a parameter name, or "" for parameters outside the blocks.
std::string stage_of(const std::string& name) {
  static const std::regex re("^(block[0-9]+)_.*");
  std::smatch m;
  return std::regex_match(name, m, re) ? m[1].str() : std::string();
}

int64_t stage_index(const std::string& stage) {
  return stage.empty() ? std::numeric_limits<int64_t>::max() : std::stoll(stage.substr(5));
}

torch::Tensor rtn_for(const QuantFormat& f, const torch::Tensor& p) {
  switch (f.method) {
    case QuantMethod::CastFp16: return p.to(torch::kHalf).to(p.scalar_type());
    case QuantMethod::CastBf16: return p.to(torch::kBFloat16).to(p.scalar_type());
    case QuantMethod::UpstreamInt8Dynamic: return fake_quantize_upstream_int8_weight(p);
    case QuantMethod::UpstreamInt4Fake: return fake_quantize_upstream_int4(p);
    case QuantMethod::Rtn:
    case QuantMethod::Gptq:
    case QuantMethod::W8A8: return fake_quantize_symmetric(p, f.bits, f.group_size);
    case QuantMethod::Identity: break;
  }
  return p;
}

}  // namespace

QuantReport apply_weight_quantization(LanguageModel& model, const QuantRowSpec& row, const CalibrationRun& calibrate,
                                      const GptqOptions& gptq) {
  const auto targets = select_quant_targets(model, row.tensor_set);
  check_group_size(row, targets);
  const QuantFormat& f = row.format;
  QuantReport rep;
  rep.total_parameters = count_parameters(model);
  double bits_total = 0.0, quantized_bits = 0.0;
  std::set<const void*> targeted;
  for (const auto& t : targets) targeted.insert(t.param.unsafeGetTensorImpl());
  for (const auto& p : model.parameters())
    if (!targeted.count(p.unsafeGetTensorImpl())) bits_total += 32.0 * static_cast<double>(p.numel());
  for (const auto& t : targets) {
    const double b = storage_bits(f, t.param);
    bits_total += b;
    quantized_bits += b;
    rep.quantized_weights += t.param.numel();
    rep.tensors.push_back(t.name);
  }
  rep.quantized_tensors = static_cast<int64_t>(targets.size());
  rep.model_bytes = bits_total / 8.0;
  rep.bits_per_quantized_weight = rep.quantized_weights > 0 ? quantized_bits / static_cast<double>(rep.quantized_weights) : 32.0;
  if (f.method == QuantMethod::Identity) return rep;  // nothing touched: the FP32 row is the model itself
  if (f.quantizes_activations()) rep.activation_weights = linear_weights_of(targets);

  torch::NoGradGuard no_grad;
  if (f.method != QuantMethod::Gptq) {
    for (const auto& t : targets) t.param.copy_(rtn_for(f, t.param));
    return rep;
  }
  if (!calibrate) throw QuantizationError("format '" + f.name + "' needs calibration data (GPTQ); none was given");
  // GPTQ stage by stage (blocks in order, then head), each calibrated with the earlier stages
  // already quantized; non-Linear targets (embeddings, A_log, D) take RTN with the same grid.
  std::map<int64_t, std::vector<const QuantTarget*>> stages;
  for (const auto& t : targets) {
    if (!t.is_linear_weight) {
      t.param.copy_(fake_quantize_symmetric(t.param, f.bits, f.group_size));
      continue;
    }
    stages[stage_index(stage_of(t.name))].push_back(&t);
  }
  for (const auto& [index, members] : stages) {
    (void)index;
    std::vector<torch::Tensor> weights;
    for (const auto* t : members) weights.push_back(t->param);
    std::vector<torch::Tensor> hessians;
    std::vector<int64_t> tokens;
    {
      HessianCapture capture(weights);
      calibrate(model);
      for (size_t i = 0; i < members.size(); ++i) {
        hessians.push_back(capture.hessian(i));
        tokens.push_back(capture.tokens(i));
      }
    }
    for (size_t i = 0; i < members.size(); ++i) {
      const auto& t = *members[i];
      if (tokens[i] == 0) {
        rep.gptq_fell_back_to_rtn.push_back(t.name);
        t.param.copy_(fake_quantize_symmetric(t.param, f.bits, f.group_size));
      } else {
        t.param.copy_(gptq_quantize(t.param, hessians[i], f.bits, f.group_size, gptq));
      }
    }
  }
  return rep;
}

}  // namespace rbk
