// Compiled with the CUDA glue only (core/CMakeLists.txt); no_cuda_kernels.cpp answers false.
#include "rbk/cuda_glue/kernels_linked.h"

namespace rbk::cuda {

bool cuda_kernels_linked() { return true; }

}  // namespace rbk::cuda
