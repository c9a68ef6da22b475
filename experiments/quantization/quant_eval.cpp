// Per-checkpoint quantization rows of exp_quantization (quant_eval.h).
#include "quant_eval.h"

#include "rbk/evaluator.h"
#include "rbk/torch_compat_lowbit.h"
#include "rbk/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>

namespace rbk::quant_exp {

namespace {

// The full-logits path (loss_chunk_tokens 0): the head then runs through aten::linear, where the
// activation guards and the Hessian capture see it. The unquantized reference uses the same path,
// so the FP32 row must equal it bit for bit.
constexpr int64_t kFullLogits = 0;

EvalResult eval_split(LanguageModel& model, const TokenStream& s, const EvalSetup& setup) {
  return evaluate_language_model(model, s, setup.batch_size, setup.seq_len, BatchLayout::Correct, setup.device, "fp32",
                                 kFullLogits);
}

}  // namespace

nlohmann::json evaluate_quantization_rows(const std::string& ckpt, const LmData& data, const std::vector<QuantRowSpec>& rows,
                                          const PrimaryRows& primary, const EvalSetup& setup) {
  nlohmann::json metrics = nlohmann::json::object(), out_rows = nlohmann::json::array();
  auto reference = load_model_from_checkpoint(ckpt, setup.device);
  const EvalResult ref_valid = eval_split(*reference, data.valid, setup);
  const EvalResult ref_test = eval_split(*reference, data.test, setup);
  metrics["unquantized_ppl"] = ref_test.ppl;
  metrics["unquantized_valid_ppl"] = ref_valid.ppl;

  // Calibration text: the first calibration_tokens tokens of TRAIN (at least two batches' worth).
  TokenStream calib;
  const int64_t n_calib = std::min<int64_t>(data.train.ids.numel(), std::max<int64_t>(setup.calibration_tokens, 2 * setup.batch_size + 2));
  calib.ids = data.train.ids.narrow(0, 0, n_calib).contiguous();
  calib.n_bytes = std::max<int64_t>(1, data.train.n_bytes * n_calib / std::max<int64_t>(1, data.train.ids.numel()));
  calib.source = data.train.source + " (first " + std::to_string(n_calib) + " tokens, calibration)";
  const CalibrationRun calibrate = [&](LanguageModel& m) { (void)eval_split(m, calib, setup); };

  double fp32_test = NAN;
  bool fp32_equal = false;
  std::map<std::string, nlohmann::json> by_key;
  for (const auto& row : rows) {
    const auto t0 = std::chrono::steady_clock::now();
    auto model = load_model_from_checkpoint(ckpt, setup.device);
    const QuantReport rep = apply_weight_quantization(*model, row, calibrate, setup.gptq);
    EvalResult v, t;
    int64_t act_calls = -1;
    if (row.format.quantizes_activations()) {
      ActivationQuantGuard guard(rep.activation_weights, row.format.method);
      v = eval_split(*model, data.valid, setup);
      t = eval_split(*model, data.test, setup);
      act_calls = guard.calls();
    } else {
      v = eval_split(*model, data.valid, setup);
      t = eval_split(*model, data.test, setup);
    }
    if (row.format.method == QuantMethod::Identity && row.tensor_set == "linear") {
      fp32_test = t.ppl;
      fp32_equal = t.mean_nll == ref_test.mean_nll && v.mean_nll == ref_valid.mean_nll;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json r{{"status", std::isfinite(t.ppl) ? "ok" : "non_finite"},
                     {"row", row.format.name + "@" + row.tensor_set},
                     {"key", row.key()},
                     {"format", row.format.name},
                     {"tensor_set", row.tensor_set},
                     {"valid", v.to_json()},
                     {"test", t.to_json()},
                     {"quantization", rep.to_json()},
                     {"seconds", secs}};
    r["quantization"].erase("tensors");
    r["quantized_tensor_names"] = rep.tensors;
    if (act_calls >= 0) r["activation_quantized_linear_calls"] = act_calls;
    by_key[row.key()] = r;
    out_rows.push_back(r);
    std::fprintf(stderr, "  %-36s valid PPL %9.3f  test PPL %9.3f  %6.2f bits/qweight  %.1f s\n",
                 (row.format.name + "@" + row.tensor_set).c_str(), v.ppl, t.ppl, rep.bits_per_quantized_weight, secs);
  }
  for (auto& r : out_rows) {
    const double ppl = r["test"]["ppl"].get<double>();
    r["rel_ppl_increase"] = std::isfinite(fp32_test) ? ppl / fp32_test - 1.0 : NAN;
  }
  const auto put = [&](const std::string& name, const nlohmann::json& r) {
    metrics["ppl_" + name] = r["test"]["ppl"];
    metrics["valid_ppl_" + name] = r["valid"]["ppl"];
    metrics["bpb_" + name] = r["test"]["bits_per_byte"];
    metrics["rel_increase_" + name] = r["rel_ppl_increase"];
    metrics["model_bytes_" + name] = r["quantization"]["model_bytes"];
    metrics["bits_per_weight_" + name] = r["quantization"]["bits_per_quantized_weight"];
  };
  for (const auto& r : out_rows) put(r["key"].get<std::string>(), r);
  for (const auto& [alias, row_text] : primary.alias_to_row) {
    const std::string key = QuantRowSpec::parse(row_text).key();
    for (const auto& r : out_rows)
      if (r["key"] == key) put(alias, r);
  }

  // Real INT8 and INT4 matmuls (CUDA; LibTorch >= 2.1 / 2.5): one representative layer, checked
  // before timed; INT4 at group 128 where K allows it, else 64, else 32.
  nlohmann::json lowbit = nlohmann::json::object();
  {
    const auto targets = select_quant_targets(*reference, "linear");
    torch::Tensor widest;
    for (const auto& t : targets)
      if (t.is_linear_weight && (!widest.defined() || t.param.numel() > widest.numel())) widest = t.param;
    if (widest.defined()) {
      torch::NoGradGuard no_grad;
      auto x = torch::randn({setup.batch_size * setup.seq_len, widest.size(1)}, widest.options());
      lowbit["int8"] = time_int8_matmul(x, widest.detach(), setup.lowbit_repeats);
      const int64_t K = widest.size(1);
      const int64_t group = K % 128 == 0 ? 128 : (K % 64 == 0 ? 64 : 32);
      lowbit["int4"] = time_int4_matmul(x, widest.detach(), group, setup.lowbit_repeats);
    }
  }
  return {{"metrics", metrics},
          {"rows", out_rows},
          {"checks", {{"fp32_row_equals_unquantized", fp32_equal}}},
          {"unquantized", {{"valid", ref_valid.to_json()}, {"test", ref_test.to_json()}}},
          {"lowbit", lowbit}};
}

}  // namespace rbk::quant_exp
