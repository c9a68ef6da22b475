// The CUDA glue of a build without the CUDA kernels (Torch without CUDA, or no nvcc): the same
// functions, each refusing with a message that says what this build lacks. Compiled instead of the
// glue files (core/CMakeLists.txt), so the dispatchers in core/bk and core/models carry no
// preprocessor guards; they ask cuda_kernels_linked() before they choose a kernel.
#include "rbk/cuda_glue/bk_core_cuda.h"
#include "rbk/cuda_glue/kernels_linked.h"
#include "rbk/cuda_glue/selective_scan_cuda.h"
#include "rbk/cuda_glue/wkv_cuda.h"

namespace rbk::cuda {
namespace {

[[noreturn]] void no_kernels(const char* what) {
  TORCH_CHECK(false, what, ": this build has no CUDA kernels (rbk_core was built with a LibTorch without CUDA or without nvcc)");
}

}  // namespace

bool cuda_kernels_linked() { return false; }

torch::Tensor bk_core_diagonal_stable_cuda(const Tridiagonal&, c10::complex<double>, BkContext) { no_kernels("BK-Core CUDA forward"); }
torch::Tensor bk_core_diagonal_vjp_exact_cuda(const Tridiagonal&, c10::complex<double>, const torch::Tensor&, BkContext) {
  no_kernels("BK-Core CUDA exact backward");
}
torch::Tensor bk_core_features_cuda(const torch::Tensor&, c10::complex<double>, BkContext) { no_kernels("BK-Core CUDA forward (Laplacian + v)"); }
torch::Tensor bk_core_features_vjp_cuda(const torch::Tensor&, c10::complex<double>, const torch::Tensor&, BkContext) {
  no_kernels("BK-Core CUDA exact backward (Laplacian + v)");
}

std::vector<torch::Tensor> selective_scan_fwd_cuda(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                                   const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                                   const torch::Tensor&, const torch::Tensor&, bool) {
  no_kernels("selective scan CUDA forward");
}
std::vector<torch::Tensor> selective_scan_bwd_cuda(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                                   const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                                   const torch::Tensor&, const torch::Tensor&, bool, const torch::Tensor&,
                                                   const torch::Tensor&) {
  no_kernels("selective scan CUDA backward");
}

torch::Tensor wkv_forward_cuda(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) {
  no_kernels("WKV CUDA forward");
}
std::array<torch::Tensor, 4> wkv_backward_cuda(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                               const torch::Tensor&, const torch::Tensor&) {
  no_kernels("WKV CUDA backward");
}

}  // namespace rbk::cuda
