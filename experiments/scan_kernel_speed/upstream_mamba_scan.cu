// See upstream_mamba_scan.h. The kernels and their traits are upstream's, included from the
// checkout given at configure time and compiled with upstream's nvcc flags (setup.py: fast math
// among them); only their parameters and launches are written here, from upstream's own launchers
// (selective_scan_fwd_launch / selective_scan_bwd_launch), for the one configuration issue 7's
// target point uses. Upstream's dispatch would instantiate ~320 kernels; these two build in seconds.
#include "upstream_mamba_scan.h"

#include <cstring>

#include "selective_scan_bwd_kernel.cuh"
#include "selective_scan_fwd_kernel.cuh"

#ifndef RBK_UPSTREAM_MAMBA_COMMIT
#define RBK_UPSTREAM_MAMBA_COMMIT "unknown"
#endif

namespace rbk::upstream_mamba {
namespace {

constexpr int kThreads = 128, kItems = 16, kChunk = kThreads * kItems;
// <threads, items, rows, even length, variable B, variable C, with z, input, weight>
using FwdTraits = Selective_Scan_fwd_kernel_traits<kThreads, kItems, 1, true, true, true, true, float, float>;
// <threads, items, even length, variable B, variable C, softplus, with z, input, weight>
using BwdTraits = Selective_Scan_bwd_kernel_traits<kThreads, kItems, true, true, true, true, true, float, float>;

// Contiguous arrays: every stride follows from the sizes.
void fill_forward_params(SSMParamsBase& p, const ScanArrays& a) {
  std::memset(&p, 0, sizeof(p));
  const int64_t Dm = a.dim, L = a.len, N = a.dstate;
  p.batch = static_cast<int>(a.batch);
  p.dim = static_cast<int>(Dm);
  p.seqlen = static_cast<int>(L);
  p.dstate = static_cast<int>(N);
  p.n_groups = 1;
  p.dim_ngroups_ratio = static_cast<int>(Dm);
  p.n_chunks = static_cast<int>((L + kChunk - 1) / kChunk);
  p.is_variable_B = p.is_variable_C = true;
  p.delta_softplus = true;
  p.A_d_stride = N;
  p.A_dstate_stride = 1;
  p.B_batch_stride = p.C_batch_stride = p.B_group_stride = p.C_group_stride = N * L;
  p.B_dstate_stride = p.C_dstate_stride = L;
  p.u_batch_stride = p.delta_batch_stride = p.z_batch_stride = p.out_batch_stride = p.out_z_batch_stride = Dm * L;
  p.u_d_stride = p.delta_d_stride = p.z_d_stride = p.out_d_stride = p.out_z_d_stride = L;
  p.A_ptr = const_cast<float*>(a.A);
  p.B_ptr = const_cast<float*>(a.B);
  p.C_ptr = const_cast<float*>(a.C);
  p.D_ptr = const_cast<float*>(a.D);
  p.u_ptr = const_cast<float*>(a.u);
  p.delta_ptr = const_cast<float*>(a.delta);
  p.delta_bias_ptr = const_cast<float*>(a.delta_bias);
  p.z_ptr = const_cast<float*>(a.z);
  p.out_ptr = a.out;
  p.out_z_ptr = a.out_z;
  p.x_ptr = a.chunk_states;
}

// One block per (batch, channel), as upstream launches them; above 48 KB of shared memory, opt in.
template <typename Params>
cudaError_t launch(void (*kernel)(Params), const Params& p, int smem, cudaStream_t stream) {
  if (smem >= 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
  }
  kernel<<<dim3(p.batch, p.dim), kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

int64_t chunk_len() { return kChunk; }
bool supports(int64_t len, int64_t dstate) { return len > 0 && len % kChunk == 0 && dstate <= MAX_DSTATE; }
const char* source_commit() { return RBK_UPSTREAM_MAMBA_COMMIT; }

cudaError_t forward(const ScanArrays& a, cudaStream_t stream) {
  if (!supports(a.len, a.dstate)) return cudaErrorInvalidValue;
  SSMParamsBase p;
  fill_forward_params(p, a);
  // Shared memory as upstream's launcher sizes it for these traits.
  constexpr int kSmem = FwdTraits::kSmemSize + MAX_DSTATE * sizeof(typename FwdTraits::scan_t);
  return launch(&selective_scan_fwd_kernel<FwdTraits>, p, kSmem, stream);
}

cudaError_t backward(const ScanArrays& a, cudaStream_t stream) {
  if (!supports(a.len, a.dstate)) return cudaErrorInvalidValue;
  const int64_t Dm = a.dim, L = a.len, N = a.dstate;
  const size_t f = sizeof(float);
  struct Zero { float* p; size_t bytes; };
  for (const Zero z : {Zero{a.dA, Dm * N * f}, Zero{a.dB, a.batch * N * L * f}, Zero{a.dC, a.batch * N * L * f},
                       Zero{a.dD, Dm * f}, Zero{a.ddelta_bias, Dm * f}}) {
    const cudaError_t e = cudaMemsetAsync(z.p, 0, z.bytes, stream);
    if (e != cudaSuccess) return e;
  }
  SSMParamsBwd p;
  std::memset(&p, 0, sizeof(p));
  fill_forward_params(p, a);
  p.out_z_ptr = nullptr;  // upstream's recompute_out_z = false: the backward does not rewrite out_z
  p.dout_ptr = const_cast<float*>(a.dout);
  p.du_ptr = a.du;
  p.ddelta_ptr = a.ddelta;
  p.dA_ptr = a.dA;
  p.dB_ptr = a.dB;
  p.dC_ptr = a.dC;
  p.dD_ptr = a.dD;
  p.dz_ptr = a.dz;
  p.ddelta_bias_ptr = a.ddelta_bias;
  p.dout_batch_stride = p.du_batch_stride = p.ddelta_batch_stride = p.dz_batch_stride = Dm * L;
  p.dout_d_stride = p.du_d_stride = p.ddelta_d_stride = p.dz_d_stride = L;
  p.dA_d_stride = N;
  p.dA_dstate_stride = 1;
  p.dB_batch_stride = p.dC_batch_stride = p.dB_group_stride = p.dC_group_stride = N * L;
  p.dB_dstate_stride = p.dC_dstate_stride = L;
  constexpr int kSmem = BwdTraits::kSmemSize + MAX_DSTATE * sizeof(typename BwdTraits::scan_t) +
                        (kThreads + 4 * MAX_DSTATE) * sizeof(typename BwdTraits::weight_t);
  return launch(&selective_scan_bwd_kernel<BwdTraits>, p, kSmem, stream);
}

}  // namespace rbk::upstream_mamba
