# CUDA kernels (BK-Core: issue 3, claims C01, C17; the baselines' WKV and selective scan: issue 7).
# Included from core/CMakeLists.txt when nvcc exists. The .cu files hold no LibTorch headers, so
# they build on the CPU machine too (proving they compile).
set(RBK_KERNEL_DIR ${CMAKE_CURRENT_LIST_DIR})

add_library(rbk_cuda_kernels STATIC ${RBK_KERNEL_DIR}/bk_stable_scan.cu ${RBK_KERNEL_DIR}/bk_tile_state_scan.cu
                                    ${RBK_KERNEL_DIR}/bk_window_forward.cu
                                    ${RBK_KERNEL_DIR}/bk_window_backward.cu
                                    ${RBK_KERNEL_DIR}/bk_compat_triton_like.cu)
# RWKV-4 WKV kernel (issue 7, RWKV baseline).
target_sources(rbk_cuda_kernels PRIVATE ${RBK_KERNEL_DIR}/wkv.cu)
# Mamba-1 selective scan (issue 7, baselines).
target_sources(rbk_cuda_kernels PRIVATE ${RBK_KERNEL_DIR}/selective_scan.cu
                                       ${RBK_KERNEL_DIR}/selective_scan_runs_fwd.cu ${RBK_KERNEL_DIR}/selective_scan_runs_bwd.cu)
# Fused softmax cross-entropy of the LM head (issue 25; exp_lm_throughput's loss_kernel = fused).
target_sources(rbk_cuda_kernels PRIVATE ${RBK_KERNEL_DIR}/softmax_xent.cu)
# Every area's headers, as rbk_core has them (cuda_event_timer.h reads rbk/timing.h).
target_include_directories(rbk_cuda_kernels PUBLIC ${RBK_CORE_INCLUDE_DIRS})
target_link_libraries(rbk_cuda_kernels PUBLIC CUDA::cudart)
# The two macros, each defined here and nowhere else:
#   RBK_HAVE_CUDA_KERNEL_LIB  the raw launchers are linked (any target linking this library; the
#                             CPU machine has it too, where nvcc exists and Torch has no CUDA);
#   RBK_WITH_CUDA_KERNELS     rbk_core itself dispatches to them (Torch with CUDA, below).
target_compile_definitions(rbk_cuda_kernels INTERFACE RBK_HAVE_CUDA_KERNEL_LIB=1)
# Every number these kernels produce may reach a table: IEEE division/sqrt, no fast math.
# -lineinfo keeps compute-sanitizer and ncu reports readable at no run-time cost.
set_target_properties(rbk_cuda_kernels PROPERTIES CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}"
                                                  POSITION_INDEPENDENT_CODE ON CUDA_STANDARD 17)
target_compile_options(rbk_cuda_kernels PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-lineinfo --expt-relaxed-constexpr
                                                 -Xptxas=-warn-spills>)

# rbk_core dispatches to the kernels through its LibTorch glue (core/cuda_glue) when Torch itself
# has CUDA; core/CMakeLists.txt picks the glue or its stubs from RBK_CORE_HAS_CUDA_KERNELS.
if(RBK_TORCH_HAS_CUDA)
  set(RBK_CORE_HAS_CUDA_KERNELS ON)
  target_link_libraries(rbk_core PUBLIC rbk_cuda_kernels)
  target_compile_definitions(rbk_core PUBLIC RBK_WITH_CUDA_KERNELS=1)
endif()
