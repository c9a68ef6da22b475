// Real low-bit matmuls of newer LibTorch (claim C13, issue 20): INT8 x INT8 -> INT32 through
// at::_int_mm (LibTorch >= 2.1, CUDA only), and bf16 x INT4 weights through _weight_int4pack_mm
// (LibTorch >= 2.5, CUDA only: its packing entry point takes uint8 (N, K/2) from 2.5 on, int32
// before). The accuracy table of exp_quantization comes from fake quantization (quantization.h);
// these paths only time the matmul a deployment would run, and only after its output matched a
// reference built from the same integers. Version guards live here, not in torch_compat.h (kept
// unchanged: other results of record list it as a source).
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <string>

namespace rbk {

// Whether at::_int_mm exists in this build and runs on `device` ("" when it does, else the reason).
std::string int8_matmul_unavailable_reason(torch::Device device);
// Whether _weight_int4pack_mm exists in this build and runs on `device` ("" when it does).
std::string int4_matmul_unavailable_reason(torch::Device device);

// x (M, K) float32 activations, w (N, K) float32 weight on `device`: quantizes x per token and w
// per output channel to int8 (quantization.h's grids), multiplies with _int_mm, checks
//   (1) the int32 accumulator equals the float64 product of the integer tensors exactly, and
//   (2) the dequantized output matches the fake-quantized fp32 linear within rel 1e-5 of its max,
// then reports median milliseconds of _int_mm and of the fp32 matmul over `repeats` (fp32 TF32
// off, no fast math). {"status": "ok" | "skipped" | "mismatch", "reason", ...}.
nlohmann::json time_int8_matmul(const torch::Tensor& x, const torch::Tensor& w, int repeats);

// x (M, K) float32 activations, w (N, K) float32 weight on `device`: quantizes w to 4 bits per
// group of `group_size` along K with the kernel's asymmetric grid (q in [0, 15], w ~ (q - 8) s + z
// with z = min + 8 s, s and z in bf16), packs it (_convert_weight_to_int4pack), multiplies bf16 x
// with _weight_int4pack_mm and checks the output against the fp32 product of bf16 x with the
// dequantized weight (TF32 off): max |difference| <= kInt4RelTolerance of the reference's max.
// Then the median milliseconds of the INT4 matmul and of the bf16 matmul with the unquantized
// weight. Shape rules (checked, "skipped" with the reason): group_size in {32, 64, 128, 256}
// dividing K, K a multiple of 32 (inner K tiles 2, 4 or 8 of 16), N a multiple of 8.
nlohmann::json time_int4_matmul(const torch::Tensor& x, const torch::Tensor& w, int64_t group_size, int repeats);

}  // namespace rbk
