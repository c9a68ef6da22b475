// BK-Core's vocabulary: its modes, its context rule and the tridiagonal operator it reads. Kept
// apart from rbk/bk_core.h so that the CUDA glue (rbk/cuda_glue/bk_core_cuda.h), which bk_core.cpp
// calls, needs nothing from the file that calls it. Claim C01; upstream-audit §1.
#pragma once
#include <torch/torch.h>
#include <c10/util/complex.h>
#include <string>

namespace rbk {

enum class BkForwardMode {
  Stable,                  // continued fractions, input precision (fp32 or fp64)
  CompatPoc,               // theta/phi in complex128, no sanitiser (seed 004; audit §1.2)
  CompatPapertime,         // theta/phi in complex128, non-finite -> 0, |G| <= 50 (audit §1.3)
  CompatPapertimeTriton,   // theta/phi in fp32 (serial Triton kernel), same sanitiser (audit §1.10)
};
enum class BkContext {
  Bidirectional,  // the papers' G_ii: sees positions on both sides (audit §1.7: leaks the future)
  Causal,         // left context only (our corrected variant; stable mode only)
};
enum class BkGradientMode {
  Exact,            // dL/dv_j = -sum_i Re(conj(g_i) G_ij G_ji), in O(N)
  PapertimeHybrid,  // upstream efaa555 BKCoreFunction.backward (audit §1.3-1.4)
  HeadHybrid,       // upstream HEAD variant (audit §1.4)
  Autograd,         // LibTorch autograd through the stable forward written as differentiable ops
                    // (bk_core_diagonal_stable_differentiable): the exact gradient the slow way,
                    // the "autograd" baseline of claim C02. Stable forward only.
};
// How a compat recursion is executed: the same arithmetic either as plain loops (fast, for sweeps)
// or as one batched LibTorch op per step (the upstream "vmap" execution model, any device).
enum class CompatExecution { ScalarLoop, TensorOps };

std::string to_string(BkForwardMode m);
std::string to_string(BkContext c);
std::string to_string(BkGradientMode g);
BkForwardMode parse_forward_mode(const std::string& s);    // "stable", "compat_poc", ...
BkContext parse_context(const std::string& s);             // "bidirectional", "causal"
BkGradientMode parse_gradient_mode(const std::string& s);  // "exact", "papertime_hybrid", "head_hybrid", "autograd"

struct Tridiagonal {
  torch::Tensor diag;   // (B, N)   float32 | float64
  torch::Tensor upper;  // (B, N-1) same dtype: b_i = H[i, i+1]
  torch::Tensor lower;  // (B, N-1) same dtype: c_i = H[i+1, i]
};

}  // namespace rbk
