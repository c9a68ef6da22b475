# c10d for data-parallel training and sharded sweeps (issue 23; core/training/include/rbk/distributed.h).
# core/harness/torch_compat_distributed.cpp is the only file that includes c10d's headers. Each
# backend is switched on (RBK_HAVE_C10D_<B> + USE_C10D_<B>, for that file only) when this LibTorch
# ships its headers AND that very file compiles and links with them: Debian's LibTorch 1.13 needs
# libgloo-dev for <gloo/...> (scripts/setup.sh installs it); the GPU wheel's 2.11 may or may not
# carry gloo's headers and nccl.h. A backend that fails the probe is left out: programs then run
# single-process and a distributed launch asking for it gets a clear error, never a broken build.
include(CheckCXXSourceCompiles)
set(_rbk_c10d_src ${CMAKE_CURRENT_SOURCE_DIR}/harness/torch_compat_distributed.cpp)
# The probe compiles and links the real file (included, so no copy of it can drift).
set(_rbk_c10d_probe "#include \"${_rbk_c10d_src}\"
int main() { return rbk::c10d_backend_compiled(\"gloo\") ? 0 : 1; }
")

# try_compile re-creates imported targets in a scratch project, where CMake 4 fails on link-interface
# entries that Torch's config defines only in ours (protobuf::libprotobuf, with the GPU machine's
# wheel): the probe links the Torch libraries' files instead of its targets.
set(_rbk_c10d_probe_libs "")
set(_rbk_c10d_probe_includes ${CUDAToolkit_INCLUDE_DIRS})
foreach(_lib IN LISTS TORCH_LIBRARIES ITEMS torch_cpu torch_cuda c10 c10_cuda)
  if(TARGET ${_lib})
    get_target_property(_loc ${_lib} IMPORTED_LOCATION)
    get_target_property(_configs ${_lib} IMPORTED_CONFIGURATIONS)
    foreach(_config IN LISTS _configs)
      if(NOT _loc)
        get_target_property(_loc ${_lib} IMPORTED_LOCATION_${_config})
      endif()
    endforeach()
    if(_loc)  # interface targets (torch_library) are left out: torch_cpu & co. are listed above
      list(APPEND _rbk_c10d_probe_libs ${_loc})
    endif()
    # Their include directories too (the CUDA toolkit's, for ProcessGroupNCCL.hpp), which the
    # targets gave the probe before; generator expressions cannot be evaluated here.
    get_target_property(_incs ${_lib} INTERFACE_INCLUDE_DIRECTORIES)
    foreach(_inc IN LISTS _incs)
      if(_inc AND NOT _inc MATCHES "\\$<")
        list(APPEND _rbk_c10d_probe_includes ${_inc})
      endif()
    endforeach()
  elseif(EXISTS "${_lib}" OR _lib MATCHES "^-")
    list(APPEND _rbk_c10d_probe_libs ${_lib})
  endif()
endforeach()
list(REMOVE_DUPLICATES _rbk_c10d_probe_libs)
list(REMOVE_DUPLICATES _rbk_c10d_probe_includes)

function(_rbk_probe_c10d backend header result)
  find_path(_rbk_c10d_hdr_${backend} NAMES ${header} PATHS ${TORCH_INCLUDE_DIRS} /usr/include NO_DEFAULT_PATH)
  if(NOT _rbk_c10d_hdr_${backend})
    message(STATUS "rbk: c10d ${backend}: no ${header} next to Torch's headers: left out")
    set(${result} OFF PARENT_SCOPE)
    return()
  endif()
  string(TOUPPER ${backend} B)
  set(CMAKE_REQUIRED_QUIET ON)
  set(CMAKE_REQUIRED_INCLUDES ${TORCH_INCLUDE_DIRS} ${_rbk_c10d_probe_includes} ${_rbk_c10d_hdr_${backend}}
                              ${RBK_CORE_INCLUDE_DIRS})
  set(CMAKE_REQUIRED_DEFINITIONS -DRBK_HAVE_C10D_${B}=1 -DUSE_C10D_${B})
  set(CMAKE_REQUIRED_LIBRARIES ${_rbk_c10d_probe_libs})
  # The cached answer is keyed by the file's hash: an edit of the file probes again.
  file(MD5 ${_rbk_c10d_src} _hash)
  string(SUBSTRING ${_hash} 0 12 _hash)
  check_cxx_source_compiles("${_rbk_c10d_probe}" RBK_C10D_${B}_COMPILES_${_hash})
  if(RBK_C10D_${B}_COMPILES_${_hash})
    set(${result} ON PARENT_SCOPE)
  else()
    message(STATUS "rbk: c10d ${backend}: ${header} found but torch_compat_distributed.cpp did not compile/link with it: left out (CMakeFiles/CMakeError.log)")
    set(${result} OFF PARENT_SCOPE)
  endif()
endfunction()

_rbk_probe_c10d(gloo gloo/allreduce.h RBK_HAVE_C10D_GLOO)
set(RBK_HAVE_C10D_NCCL OFF)
if(RBK_TORCH_HAS_CUDA)
  _rbk_probe_c10d(nccl nccl.h RBK_HAVE_C10D_NCCL)
endif()
set(_rbk_c10d_defs "")
if(RBK_HAVE_C10D_GLOO)
  list(APPEND _rbk_c10d_defs RBK_HAVE_C10D_GLOO=1 USE_C10D_GLOO)
endif()
if(RBK_HAVE_C10D_NCCL)
  list(APPEND _rbk_c10d_defs RBK_HAVE_C10D_NCCL=1 USE_C10D_NCCL)
endif()
# Its own compile definitions must not meet the shared precompiled header built without them.
set_source_files_properties(${_rbk_c10d_src} PROPERTIES COMPILE_DEFINITIONS "${_rbk_c10d_defs}" SKIP_PRECOMPILE_HEADERS ON)
set(_rbk_c10d_extra_includes "")
foreach(_dir IN ITEMS "${_rbk_c10d_hdr_gloo}" "${_rbk_c10d_hdr_nccl}")
  if(_dir AND NOT _dir STREQUAL "/usr/include" AND NOT _dir IN_LIST TORCH_INCLUDE_DIRS)
    list(APPEND _rbk_c10d_extra_includes ${_dir})
  endif()
endforeach()
if(_rbk_c10d_extra_includes)
  set_property(SOURCE ${_rbk_c10d_src} APPEND PROPERTY INCLUDE_DIRECTORIES ${_rbk_c10d_extra_includes})
endif()
message(STATUS "rbk: c10d gloo: ${RBK_HAVE_C10D_GLOO}, nccl: ${RBK_HAVE_C10D_NCCL} (distributed training, issue 23)")
