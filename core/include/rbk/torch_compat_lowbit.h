// Real low-bit matmuls of newer LibTorch (claim C13, issue 20): INT8 x INT8 -> INT32 through
// at::_int_mm (LibTorch >= 2.1, CUDA only). The accuracy table of exp_quantization comes from fake
// quantization (quantization.h); this path only times the matmul a deployment would run, and
// only after its output matched the fake-quantized one. Version guards live here, not in
// torch_compat.h (kept unchanged: other results of record list it as a source).
// INT4 (_weight_int4pack_mm) is not wired: its packing entry point changed signature between
// LibTorch 2.2 and 2.5 (int32 vs uint8 input) and cannot be compiled or checked on this machine's
// LibTorch 1.13; int4_matmul_status() says so.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>

namespace rbk {

// Whether at::_int_mm exists in this build and runs on `device` ("" when it does, else the reason).
std::string int8_matmul_unavailable_reason(torch::Device device);
std::string int4_matmul_status();

// x (M, K) float32 activations, w (N, K) float32 weight on `device`: quantizes x per token and w
// per output channel to int8 (quantization.h's grids), multiplies with _int_mm, checks
//   (1) the int32 accumulator equals the float64 product of the integer tensors exactly, and
//   (2) the dequantized output matches the fake-quantized fp32 linear within rel 1e-5 of its max,
// then reports median milliseconds of _int_mm and of the fp32 matmul over `repeats` (fp32 TF32
// off, no fast math). {"status": "ok" | "skipped" | "mismatch", "reason", ...}.
nlohmann::json time_int8_matmul(const torch::Tensor& x, const torch::Tensor& w, int repeats);

}  // namespace rbk
