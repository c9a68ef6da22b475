// Whether rbk_core was built with its CUDA kernels (Torch with CUDA and nvcc: the glue in
// core/cuda_glue) or without them (no_cuda_kernels.cpp's stubs, which throw). The dispatchers of
// BK-Core, the selective scan and WKV ask this instead of testing a macro.
#pragma once

namespace rbk::cuda {

bool cuda_kernels_linked();

}  // namespace rbk::cuda
