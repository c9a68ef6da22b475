#!/bin/sh
# rbk_train with one bad value per kind of key (issue 17): a number out of range, a choice that
# does not exist, a wrong type, an unknown key, an inconsistent combination, the divergence rule's
# factor in (0, 1), bf16 on the CPU, a missing corpus. Each must exit 2 with a message naming the
# key, and leave the output directory uncreated.
# usage: rbk_train_bad_options.sh RBK_TRAIN SCRATCH_DIR
set -u
rbk_train=$1 dir=$2
rm -rf "$dir"
failures=0
check() {  # check KEY OVERRIDE...
  key=$1
  shift
  msg=$("$rbk_train" --preset smoke --out "$dir/out" device=cpu "$@" 2>&1 >/dev/null)
  rc=$?
  echo "$*: exit $rc: $msg"
  ok=1
  [ "$rc" -eq 2 ] || { echo "  expected exit 2"; ok=0; }
  case "$msg" in *"$key"*) ;; *) echo "  the message does not name $key"; ok=0 ;; esac
  case "$msg" in *"frame #"*|*"Exception raised from"*) echo "  stack trace in the message"; ok=0 ;; esac
  [ ! -e "$dir/out" ] || { echo "  $dir/out was written"; ok=0; rm -rf "$dir/out"; }
  [ $ok -eq 1 ] || failures=$((failures + 1))
}
check train.eval_every train.eval_every=-1
check model.d_model model.d_model=0
check model.arch model.arch=lstm
check train.lr train.lr=fast
check model.no_such_key model.no_such_key=1
check train.seq_len train.seq_len=64
check model.position model.arch=mamba model.position=learned
check train.divergence_factor train.divergence_factor=0.5
check train.precision train.precision=bf16
check data.data_dir data.data_dir=/nonexistent/corpus
check train.eval_tokens train.eval_tokens=3
[ $failures -eq 0 ] || { echo "$failures case(s) failed"; exit 1; }
echo "every bad value: exit 2, named, nothing written"
