// exp_quantization's per-checkpoint work: every quantization row of one trained checkpoint,
// evaluated on valid and test with the same batching as the unquantized model (claim C13).
#pragma once
#include "rbk/lm_data.h"
#include "rbk/quantization.h"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace rbk::quant_exp {

// The summary-key names of the rows the claims read (fixed before results; see main.cpp).
struct PrimaryRows {
  std::vector<std::pair<std::string, std::string>> alias_to_row;  // {"int4", "int4_g128@linear"}, ...
};

struct EvalSetup {
  int64_t batch_size = 4, seq_len = 64;
  torch::Device device = torch::kCPU;
  int64_t calibration_tokens = 4096;  // from the START of the train split (never valid/test)
  GptqOptions gptq;
  int lowbit_repeats = 20;
};

// Quantizes and evaluates the checkpoint at ckpt for every row. Returns
//   {"metrics": {...flat numbers for the per-seed arrays...}, "rows": [...], "checks": {...}, "lowbit": {...}}
// metrics: ppl_<key>, valid_ppl_<key>, bpb_<key>, rel_increase_<key> (test PPL / fp32 test PPL - 1),
// model_bytes_<key>, bits_per_weight_<key> for each row key (QuantRowSpec::key()), and the same
// for each alias (ppl_int4 = ppl_<key of int4's row>, ...); unquantized_ppl / unquantized_valid_ppl.
nlohmann::json evaluate_quantization_rows(const std::string& ckpt, const LmData& data, const std::vector<QuantRowSpec>& rows,
                                          const PrimaryRows& primary, const EvalSetup& setup);

}  // namespace rbk::quant_exp
