#!/bin/sh
# usage: check_gpu_presets.sh <exp_lm_throughput> <scratch dir> "preset [key=value ...]"...
# Each GPU configuration (a preset, with the overrides a run_device.sh stage adds) must be valid:
# with no device visible, exit 77 (skipped) comes after the configuration and its cross-field
# checks (spec.check_config), and a bad configuration exits 2. So that this check can fail, the
# first preset with a known-bad combination (the fused loss with a chunked loss) must exit 2.
exe=$1 out=$2
shift 2
run() {
  # shellcheck disable=SC2086  # the words of a configuration are the program's arguments
  CUDA_VISIBLE_DEVICES= "$exe" --preset $1 --out "$out" >/dev/null 2>"$out.stderr"
}
mkdir -p "$out"
for c in "$@"; do
  run "$c"
  rc=$?
  [ "$rc" -eq 77 ] || { cat "$out.stderr"; echo "'$c': exit $rc, expected 77 (valid, then skipped without a GPU)"; exit 1; }
done
first=$(echo "$1" | cut -d' ' -f1)
run "$first loss_kernel=fused train.loss_chunk_tokens=8192"
rc=$?
[ "$rc" -eq 2 ] || { echo "'$first loss_kernel=fused train.loss_chunk_tokens=8192': exit $rc, expected 2 (a bad combination)"; exit 1; }
grep -q "loss_chunk_tokens" "$out.stderr" || { cat "$out.stderr"; echo "the error does not name train.loss_chunk_tokens"; exit 1; }
echo "every configuration valid; the bad combination exits 2"
