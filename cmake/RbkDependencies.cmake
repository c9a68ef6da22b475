# Finds every dependency once, for both machines:
#  - CPU (Debian 12): libtorch-dev 1.13 (CPU), HDF5 1.10, Boost 1.81, nlohmann-json, GTest, benchmark.
#  - GPU (Ubuntu 24.04): LibTorch 2.11 + CUDA from the Python wheel; scripts/setup.sh passes its
#    cmake prefix path. CUDA is enabled only when nvcc exists; the torch<->CUDA glue only when the
#    Torch found was itself built with CUDA.

# CUDA first: enable_language must see an architecture, and Torch's config reads the toolkit.
include(CheckLanguage)
option(RBK_ENABLE_CUDA "Compile CUDA kernels when nvcc is found" ON)
if(RBK_ENABLE_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)   # Hopper (H100, H200): the GPUs this project is measured on
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    # One CUDA runtime per process: Torch links the shared libcudart, so our kernels must too. CMake's
    # default (a static cudart in every target with CUDA code) puts a second runtime into every binary
    # on the GPU machine; it is the prime suspect of two segfaulting unit tests there (NOTES.md).
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
    find_package(CUDAToolkit REQUIRED)
  endif()
endif()
set(RBK_HAVE_NVCC OFF)
if(CMAKE_CUDA_COMPILER)
  set(RBK_HAVE_NVCC ON)
endif()

set(RBK_CUDA_ARCH_SAVED "${CMAKE_CUDA_ARCHITECTURES}")
find_package(Torch REQUIRED)
# find_package(Torch) overrides CMAKE_CUDA_ARCHITECTURES (and may add -gencode flags); restore ours.
set(CMAKE_CUDA_ARCHITECTURES "${RBK_CUDA_ARCH_SAVED}")

set(RBK_TORCH_HAS_CUDA OFF)
if(RBK_HAVE_NVCC AND (TARGET torch_cuda OR TARGET c10_cuda))
  set(RBK_TORCH_HAS_CUDA ON)
endif()

find_package(HDF5 REQUIRED COMPONENTS C CXX)
find_package(Boost 1.81 REQUIRED)   # header-only Boost.Math; 1.81 is the first with the K-S distribution
find_package(nlohmann_json 3.9 REQUIRED)
find_package(GTest REQUIRED)
find_package(benchmark REQUIRED)
find_package(Threads REQUIRED)
find_package(Python3 COMPONENTS Interpreter)

message(STATUS "rbk: Torch ${Torch_VERSION}, torch with CUDA: ${RBK_TORCH_HAS_CUDA}, nvcc: ${RBK_HAVE_NVCC} "
               "(arch ${CMAKE_CUDA_ARCHITECTURES}), HDF5 ${HDF5_VERSION}, Boost ${Boost_VERSION}")
