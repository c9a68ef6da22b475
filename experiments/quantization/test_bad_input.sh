#!/usr/bin/env bash
# exp_quantization's bad-input contract: each case prints one message naming the key/value,
# exits 2 and writes no result file. Args: EXP_QUANTIZATION RBK_TRAIN SOURCE_DIR.
set -u
exe=$1 train=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$src" || exit 1
fail=0
expect_exit2() {  # name, expected message fragment, args...
  local name=$1 fragment=$2
  shift 2
  local out="$work/out_$name"
  "$exe" --preset smoke --out "$out" "$@" >"$work/$name.log" 2>&1
  local rc=$?
  if [[ $rc -ne 2 ]]; then echo "FAIL $name: exit $rc, expected 2"; cat "$work/$name.log"; fail=1; return; fi
  if ! grep -q -- "$fragment" "$work/$name.log"; then echo "FAIL $name: message lacks '$fragment'"; cat "$work/$name.log"; fail=1; return; fi
  if compgen -G "$out/quantization.*.json" >/dev/null; then echo "FAIL $name: a result file was written"; fail=1; return; fi
  echo "ok   $name: $(grep -m1 -- "$fragment" "$work/$name.log")"
}
expect_exit2 unknown_format "unknown quantization format 'int3'" 'rows=["fp32@linear","int3@linear"]'
expect_exit2 unknown_set "unknown tensor set 'convs'" 'rows=["fp32@linear","int8@convs"]'
expect_exit2 group_not_dividing "does not divide" 'rows=["fp32@linear","fp16@all","bf16@all","int8@linear","int4_g24@linear","upstream_int8_dynamic@every_linear","upstream_int4_fake@every_linear"]' int4_primary=int4_g24@linear
# A real checkpoint of a Transformer, offered as a Mamba.
"$train" --preset smoke --out "$work/tf" model.arch=transformer train.epochs=1 >"$work/train.log" 2>&1 || { echo "FAIL rbk_train"; cat "$work/train.log"; exit 1; }
expect_exit2 wrong_arch "holds a 'transformer' model but model.arch = 'mamba'" checkpoint="$work/tf/model.pt" model.arch=mamba
expect_exit2 not_a_checkpoint "checkpoint" checkpoint="$src/README.md" model.arch=mamba
exit $fail
