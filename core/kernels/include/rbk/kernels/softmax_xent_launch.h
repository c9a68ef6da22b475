// Raw-pointer launcher of the fused softmax cross-entropy kernel (core/kernels/softmax_xent.cu): for
// each row of a (rows, cols) logits matrix, the loss -log softmax(x)[target] and, in the same pass
// over the row, its gradient (softmax(x) - onehot(target)) x grad_scale. No LibTorch here (the
// torch glue is rbk/cuda_glue/softmax_xent_cuda.h). Issue 25: the LM head's loss was 31 % of a
// training step's kernel time (results/lm_throughput, 24554dd): the plain path casts the bf16 logits
// to fp32, writes fp32 log-probabilities, and its backward reads them and writes an fp32 gradient
// that is cast back to bf16 -- about 26 GB of traffic a step at (16,384 x 50,000). This kernel reads
// the bf16 row twice and writes the bf16 gradient once (~5 GB); a row of at most
// kSoftmaxXentMaxStagedBytes (V <= 53,248 in bf16) is read once into shared memory and the
// gradient pass reads that copy (~3.3 GB).
//
// Numerics: the same as the plain path's. Every element is converted to fp32; the row's maximum m
// and sum s = sum exp(x - m) are accumulated in fp32 (each thread over its elements, then a block
// reduction: online for a row read twice, the maximum then the sum for a row in shared memory, whose
// exponentials are exp2 of (x - m) log2 e formed by one FMA); loss = (m - x_t) + log s; the gradient exp(x - m) / s - [j = t] is formed in
// fp32, scaled, and rounded once to the logits' dtype (the plain path rounds its fp32 gradient to
// bf16 once too, where the head's matmul takes it). A target outside [0, cols) makes that row's
// loss NaN (so the step's loss is not finite) and its gradient the softmax alone; nothing aborts.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace rbk::cuda {

constexpr int kSoftmaxXentThreads = 256;
// The longest row (in bytes) kept in shared memory between the kernel's two passes: two blocks fit
// one H100 / H200 SM (228 KB), so one block's gradient pass overlaps the other's loads. Longer rows,
// and devices whose per-block opt-in limit is smaller, read the row twice.
constexpr int64_t kSoftmaxXentMaxStagedBytes = 104 * 1024;

struct SoftmaxXentParams {
  const void* logits = nullptr;     // (rows, cols) row-major, contiguous
  bool bf16 = false;                // logits and grad are bfloat16 (else float32)
  const int64_t* targets = nullptr; // (rows,)
  float* row_loss = nullptr;        // (rows,)
  void* grad = nullptr;             // (rows, cols), the logits' dtype
  float grad_scale = 1.f;           // e.g. 1 / rows for a mean over rows
  int64_t rows = 0, cols = 0;
  bool allow_staging = true;        // false: always read the row twice (tests, side-by-side timing)
};

// Returns the launch error (cudaSuccess when accepted or when rows == 0); cudaErrorInvalidValue for
// missing pointers, cols < 1 or rows < 0. Does not synchronise.
cudaError_t launch_softmax_xent(const SoftmaxXentParams& p, cudaStream_t stream);

// Whether launch_softmax_xent keeps p's rows in shared memory on the current device (a row of at
// most kSoftmaxXentMaxStagedBytes, within the device's opt-in limit, and p.allow_staging).
bool softmax_xent_stages_rows(const SoftmaxXentParams& p);

}  // namespace rbk::cuda
