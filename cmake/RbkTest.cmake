# One place that registers tests, with the project's labels:
#   unit  CPU, seconds          smoke  each experiment at a tiny preset
#   paper each claim at the preset this hardware allows, then validation and tables
#   gpu   needs a CUDA device; exits 77 (skipped) without one          bench  timings
set(RBK_TEST_LABELS unit smoke paper gpu bench)
# Every test registered here (experiments included) may exit 77 to be reported as Skipped: a
# GPU-only experiment (ExperimentSpec::requires_cuda, rbk::kExitSkipped) does so without a CUDA
# device, so its smoke and paper tests read "Skipped" on the CPU machine, never "Passed".
set(RBK_SKIP_RETURN_CODE 77)

function(_rbk_check_labels)
  foreach(l IN LISTS ARGN)
    if(NOT l IN_LIST RBK_TEST_LABELS)
      message(FATAL_ERROR "rbk: unknown test label '${l}' (allowed: ${RBK_TEST_LABELS})")
    endif()
  endforeach()
endfunction()

# Common compile settings of everything that links the core library.
function(rbk_target_defaults target)
  target_link_libraries(${target} PRIVATE rbk_core)
  # Asserts stay alive in tests and experiments even in Release.
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-UNDEBUG -Wall -Wextra>)
  target_precompile_headers(${target} REUSE_FROM rbk_pch)
endfunction()

# rbk_add_test(NAME n COMMAND cmd... LABELS l... [TIMEOUT s] [FIXTURES_SETUP f] [FIXTURES_REQUIRED f]
#              [WORKING_DIRECTORY d])
function(rbk_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT;WORKING_DIRECTORY" "COMMAND;LABELS;FIXTURES_SETUP;FIXTURES_REQUIRED;ENVIRONMENT" ${ARGN})
  _rbk_check_labels(${T_LABELS})
  if(NOT T_WORKING_DIRECTORY)
    set(T_WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  endif()
  add_test(NAME ${T_NAME} COMMAND ${T_COMMAND} WORKING_DIRECTORY ${T_WORKING_DIRECTORY})
  set_tests_properties(${T_NAME} PROPERTIES LABELS "${T_LABELS}" SKIP_RETURN_CODE ${RBK_SKIP_RETURN_CODE})
  if(T_TIMEOUT)
    set_tests_properties(${T_NAME} PROPERTIES TIMEOUT ${T_TIMEOUT})
  endif()
  if(T_FIXTURES_SETUP)
    set_tests_properties(${T_NAME} PROPERTIES FIXTURES_SETUP "${T_FIXTURES_SETUP}")
  endif()
  if(T_FIXTURES_REQUIRED)
    set_tests_properties(${T_NAME} PROPERTIES FIXTURES_REQUIRED "${T_FIXTURES_REQUIRED}")
  endif()
  if(T_ENVIRONMENT)
    set_tests_properties(${T_NAME} PROPERTIES ENVIRONMENT "${T_ENVIRONMENT}")
  endif()
endfunction()

# rbk_add_gtest(target SOURCES s... LABELS l... [TIMEOUT s]): one GoogleTest binary whose tests are
# discovered at test time; GTEST_SKIP() shows as skipped in CTest.
function(rbk_add_gtest target)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LABELS" ${ARGN})
  _rbk_check_labels(${T_LABELS})
  add_executable(${target} ${T_SOURCES})
  rbk_target_defaults(${target})
  target_link_libraries(${target} PRIVATE GTest::gtest GTest::gtest_main)
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  include(GoogleTest)
  gtest_discover_tests(${target} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
endfunction()

# rbk_add_experiment(name CLAIMS C01 ... SOURCES main.cpp [SMOKE_TIMEOUT s] [PAPER_TIMEOUT s])
# Builds exp_<name> and registers
#   exp.<name>.smoke  (label smoke): the smoke preset, into the build tree
#   exp.<name>.paper  (label paper): the preset this hardware allows (RBK_PRESET overrides),
#                     into the build tree's results/; validation picks it up from there.
function(rbk_add_experiment name)
  cmake_parse_arguments(E "" "SMOKE_TIMEOUT;PAPER_TIMEOUT" "SOURCES;CLAIMS" ${ARGN})
  set(exe exp_${name})
  add_executable(${exe} ${E_SOURCES})
  rbk_target_defaults(${exe})
  if(NOT E_SMOKE_TIMEOUT)
    set(E_SMOKE_TIMEOUT 300)
  endif()
  if(NOT E_PAPER_TIMEOUT)
    set(E_PAPER_TIMEOUT 1800)
  endif()
  rbk_add_test(NAME exp.${name}.smoke LABELS smoke TIMEOUT ${E_SMOKE_TIMEOUT}
               COMMAND ${exe} --preset smoke --out ${CMAKE_BINARY_DIR}/results-smoke/${name})
  rbk_add_test(NAME exp.${name}.paper LABELS paper TIMEOUT ${E_PAPER_TIMEOUT}
               COMMAND ${exe} --preset auto --out ${CMAKE_BINARY_DIR}/results/${name})
  # The ledger runs after every experiment (rbk_paper_after_experiments) but also when one of them
  # failed: a failed experiment makes its claims "not yet measured", it must not hide the others.
  set_property(GLOBAL APPEND PROPERTY RBK_PAPER_EXPERIMENT_TESTS exp.${name}.paper)
endfunction()

# Orders a paper-label step (validation, tables, figures) after every experiment's paper run.
function(rbk_paper_after_experiments test_name)
  get_property(exps GLOBAL PROPERTY RBK_PAPER_EXPERIMENT_TESTS)
  if(exps)
    set_tests_properties(${test_name} PROPERTIES DEPENDS "${exps}")
  endif()
endfunction()
