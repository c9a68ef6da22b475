// Upstream Mamba's own selective-scan CUDA kernels (state-spaces/mamba, csrc/selective_scan), built
// only when the project is configured with -DRBK_UPSTREAM_MAMBA_SRC=<a checkout of that repository>
// (RBK_WITH_UPSTREAM_MAMBA is then defined), so exp_scan_kernel_speed can time them next to rbk's
// kernel in one run, on the same inputs and against the same bytes model. No upstream code is in
// this repository: upstream_mamba_scan.cu includes the headers of the checkout named at configure
// time. What is built is what upstream's dispatch runs at issue 7's target point: fp32, 128 threads
// x 16 steps per block (upstream's choice for more than 1024 steps), variable B and C (one group),
// softplus on delta, with z, for lengths that are multiples of 2048 (its kIsEvenLen case).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace rbk::upstream_mamba {

// Contiguous fp32 device arrays in rbk's layout, which is upstream's: u, delta, z, dout and their
// gradients (batch, dim, len); A (dim, dstate); B, C (batch, dstate, len) = upstream's (batch,
// 1 group, dstate, len); D, delta_bias (dim). `chunk_states` holds upstream's saved forward scan
// (batch, dim, ceil(len / 2048), 2 dstate); `out` is y + D u before the gate (upstream writes it and
// reads it back in the backward), `out_z` the gated output.
struct ScanArrays {
  int64_t batch = 0, dim = 0, len = 0, dstate = 0;
  const float *u = nullptr, *delta = nullptr, *A = nullptr, *B = nullptr, *C = nullptr, *D = nullptr, *z = nullptr,
              *delta_bias = nullptr, *dout = nullptr;
  float *out = nullptr, *out_z = nullptr, *chunk_states = nullptr;
  float *du = nullptr, *ddelta = nullptr, *dA = nullptr, *dB = nullptr, *dC = nullptr, *dD = nullptr, *dz = nullptr,
        *ddelta_bias = nullptr;
};

// Steps per block of the built configuration (2048): chunk_states has ceil(len / this) chunks.
int64_t chunk_len();
// Whether the built configuration runs this shape (len a multiple of chunk_len(), dstate <= 256).
bool supports(int64_t len, int64_t dstate);
// The forward (out, out_z, chunk_states) and the backward: the backward first zeroes dA, dB, dC,
// dD and ddelta_bias, which upstream accumulates with atomics (its Python op allocates them as
// zeros, so the zeroing belongs to the call).
cudaError_t forward(const ScanArrays& a, cudaStream_t stream);
cudaError_t backward(const ScanArrays& a, cudaStream_t stream);
// The checkout's commit, as found at configure time ("unknown" when it could not be read).
const char* source_commit();

}  // namespace rbk::upstream_mamba
