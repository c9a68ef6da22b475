# Configure-time provenance. RunContext asks git at run time first (the source tree may have
# changed since configure); these values are the fallback where no git is available (e.g. a
# copied working tree on the GPU machine), and RBK_GIT_COMMIT in the environment beats both.
find_package(Git QUIET)
set(RBK_BUILD_GIT_COMMIT "unknown")
set(RBK_BUILD_GIT_DIRTY "unknown")
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse HEAD WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                  OUTPUT_VARIABLE _sha OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _rc)
  if(_rc EQUAL 0)
    set(RBK_BUILD_GIT_COMMIT "${_sha}")
    execute_process(COMMAND ${GIT_EXECUTABLE} status --porcelain --untracked-files=no
                    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} OUTPUT_VARIABLE _st ERROR_QUIET)
    if(_st STREQUAL "")
      set(RBK_BUILD_GIT_DIRTY "false")
    else()
      set(RBK_BUILD_GIT_DIRTY "true")
    endif()
  endif()
endif()
set(RBK_BUILD_INFO_DEFINITIONS
    RBK_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
    RBK_BINARY_DIR="${CMAKE_BINARY_DIR}"
    RBK_BUILD_TYPE="${CMAKE_BUILD_TYPE}"
    RBK_BUILD_GIT_COMMIT="${RBK_BUILD_GIT_COMMIT}"
    RBK_BUILD_GIT_DIRTY="${RBK_BUILD_GIT_DIRTY}"
    RBK_COMPILER="${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION}"
    RBK_CUDA_COMPILER_VERSION="${CMAKE_CUDA_COMPILER_VERSION}")
