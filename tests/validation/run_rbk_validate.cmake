# Runs rbk_validate on tests/validation/data/tree and checks the exit code (3: one malformed
# result file), that the ledger names that file and judges the rest with two verdicts per claim,
# lists the failed run without judging it, reports the INVALID parts, and that verdicts.json names
# the chosen result file of every experiment.
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${VALIDATE} --source-dir ${DATA}/tree --build-dir ${DATA}/fresh_build
                        --registry ${DATA}/registry.json --tables ${DATA}/tables.json --out ${OUT}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
message("${err}")
if(NOT rc EQUAL 3)
  message(FATAL_ERROR "rbk_validate exited ${rc}, expected 3 (ledger written, one malformed result file)")
endif()
file(READ ${OUT}/CLAIMS.md ledger)
foreach(needle IN ITEMS "broken.cpu.json" "T01" "reproduced" "not reproduced" "not yet measured"
                        "| verdict | the method as described | the authors' code |"
                        "## Failed runs (never judged)" "- `results/good/good.gpu.failed.json`"
                        "INVALID: precondition failed" "T10.weak" "does not fail on its own falsifier")
  string(FIND "${ledger}" "${needle}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "CLAIMS.md does not contain '${needle}'")
  endif()
endforeach()
file(READ ${OUT}/verdicts.json verdicts)
foreach(needle IN ITEMS "\"schema\": \"rbk.verdicts/2\"" "\"path\": \"results/seeds/seeds.gpu.json\"" "\"h5_path\": null"
                        "\"compat\": {")
  string(FIND "${verdicts}" "${needle}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "verdicts.json does not contain '${needle}'")
  endif()
endforeach()
foreach(f IN ITEMS tables/demo_table1.md tables/demo_table1.tex verdicts.json tables/README.md)
  if(NOT EXISTS ${OUT}/${f})
    message(FATAL_ERROR "rbk_validate did not write ${f}")
  endif()
endforeach()
