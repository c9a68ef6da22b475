# Sourced by the script tool tests: `expect <rc> <args...>` runs `python3 $tool <args...>`, compares
# its exit status with <rc>, prints ok or FAIL (with the tool's output), and sets fail=1 on FAIL.
fail=0
expect() {
  want=$1; shift
  python3 "$tool" "$@" > "$dir/out.txt" 2>&1; got=$?
  if [ "$got" -ne "$want" ]; then echo "FAIL: $(basename "$tool") $* gave exit $got, expected $want"; cat "$dir/out.txt"; fail=1
  else echo "ok: $(basename "$tool") $* -> exit $got: $(tail -1 "$dir/out.txt")"; fi
}
