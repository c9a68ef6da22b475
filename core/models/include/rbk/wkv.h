// RWKV-4 WKV operator (issue 7, RWKV baseline of the LM comparison, claim C05 family): the LibTorch
// reference (the oracle), a naive formula (independent check of the reference), and the entry
// point models call, which runs the CUDA kernel for CUDA fp32/bf16 and the reference otherwise.
//
// Per channel c: w = -exp(time_decay[c]) (so 0 < e^w < 1: the memory decays), u = time_first[c]
// (the bonus of the current token). For each (b, c) column, with k_t = k[b, t, c], v_t = v[b, t, c]:
//   y_t = ( sum_{i<t} e^{(t-1-i) w + k_i} v_i + e^{u + k_t} v_t ) / ( sum_{i<t} e^{(t-1-i) w + k_i} + e^{u + k_t} )
// Causal by construction (y_t reads k, v at positions <= t only).
#pragma once
#include <torch/torch.h>

namespace rbk {

enum class WkvPath {
  Auto,       // Kernel for CUDA float32 / bfloat16 / float16 when the CUDA kernel is built, else Reference
  Reference,  // wkv_reference, differentiated by autograd
  Kernel,     // the kernel's arithmetic behind a custom autograd Function: the CUDA kernel for CUDA
              // tensors (fp32; lower precisions cast to fp32), the same per-column code run on the
              // host for CPU tensors (fp32, or fp64 when any input is fp64) - tests use this to
              // check the kernel's maths and backward without a GPU
};

// Stable sequential reference: the running-maximum recurrence of RWKV-4 in plain LibTorch ops,
// sequential over T, differentiable by autograd. The max shifts are detached: the result does not
// depend on them mathematically (they scale numerator and denominator alike), so the autograd
// gradient stays exact and carries no rounding noise through the shifts.
//   time_decay, time_first: (C,); k, v: (B, T, C); any floating dtype and one device. Computes in
//   float64 if any input is float64, else float32 (bfloat16 / float16 are upcast). Returns (B, T, C)
//   in that compute dtype.
torch::Tensor wkv_reference(const torch::Tensor& time_decay, const torch::Tensor& time_first, const torch::Tensor& k,
                            const torch::Tensor& v);

// The formula above with direct sums of exponentials (no max trick), float64, O(B T^2 C) memory:
// an independent check of wkv_reference for small T and moderate |k| (it overflows for k >~ 700).
// Same shapes; returns (B, T, C) float64.
torch::Tensor wkv_naive(const torch::Tensor& time_decay, const torch::Tensor& time_first, const torch::Tensor& k,
                        const torch::Tensor& v);

// The entry point models call. Same shapes as wkv_reference. Gradients flow to all four inputs
// (exact, on either path). Returns (B, T, C) in the compute dtype of the chosen path, except that
// bfloat16 / float16 k gives a result of k's dtype (the kernel computes in fp32 either way).
torch::Tensor wkv(const torch::Tensor& time_decay, const torch::Tensor& time_first, const torch::Tensor& k,
                  const torch::Tensor& v, WkvPath path = WkvPath::Auto);

// True when this library was built with the CUDA WKV kernel (Torch with CUDA).
bool wkv_cuda_kernel_built();

}  // namespace rbk
