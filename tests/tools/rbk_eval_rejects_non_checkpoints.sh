#!/bin/sh
# rbk_eval on files that are not checkpoints (issue 17): random bytes, a truncated checkpoint, an
# empty file, a missing file, a directory. Each must exit 2 with exactly one line on stderr that
# names the file, no LibTorch stack trace, and write nothing.
# usage: rbk_eval_rejects_non_checkpoints.sh RBK_EVAL GOOD_CHECKPOINT TEXT SCRATCH_DIR
set -u
rbk_eval=$1 good=$2 text=$3 dir=$4
rm -rf "$dir" && mkdir -p "$dir/adir" || exit 1
# Deterministic "random" bytes (a linear congruential generator), not a zip archive.
LC_ALL=C awk 'BEGIN { x = 17; for (i = 0; i < 4096; i++) { x = (x * 1103515245 + 12345) % 2147483648; printf "%c", int(x / 8388608) } }' \
  > "$dir/random.pt"
size=$(wc -c < "$good")
head -c $((size / 2)) "$good" > "$dir/truncated.pt"
: > "$dir/empty.pt"
failures=0
for f in "$dir/random.pt" "$dir/truncated.pt" "$dir/empty.pt" "$dir/missing.pt" "$dir/adir"; do
  before=$(ls -A "$dir" | sort | tr '\n' ' ')
  out=$("$rbk_eval" "$f" "$text" 2> "$dir.stderr")
  rc=$?
  lines=$(wc -l < "$dir.stderr")
  msg=$(cat "$dir.stderr")
  rm -f "$dir.stderr"
  after=$(ls -A "$dir" | sort | tr '\n' ' ')
  echo "$(basename "$f"): exit $rc: $msg"
  ok=1
  [ "$rc" -eq 2 ] || { echo "  expected exit 2"; ok=0; }
  [ "$lines" -eq 1 ] || { echo "  expected one line on stderr, got $lines"; ok=0; }
  case "$msg" in *"$f"*) ;; *) echo "  the message does not name the file"; ok=0 ;; esac
  case "$msg" in *"frame #"*|*"Exception raised from"*) echo "  stack trace in the message"; ok=0 ;; esac
  [ -z "$out" ] || { echo "  unexpected stdout: $out"; ok=0; }
  [ "$before" = "$after" ] || { echo "  files written: before [$before] after [$after]"; ok=0; }
  [ $ok -eq 1 ] || failures=$((failures + 1))
done
# The good checkpoint passes the same path (the test would pass for a tool that rejects everything).
"$rbk_eval" "$good" "$text" --out "$dir/good" > /dev/null 2>&1 || { echo "good checkpoint: exit $?"; failures=$((failures + 1)); }
[ -f "$dir/good/rbk_eval.sotu.test.json" ] || { echo "good checkpoint: no result written"; failures=$((failures + 1)); }
rm -rf "$dir"
[ $failures -eq 0 ] || { echo "$failures case(s) failed"; exit 1; }
echo "all non-checkpoints rejected with one line"
