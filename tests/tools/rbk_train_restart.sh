#!/bin/sh
# rbk_train stopped and restarted (issue 17, "stop it, restart it"): a run capped at 15 steps, then
# the same command without the cap in the same directory, must continue from the checkpoint and
# end with the step losses, validation curve and valid/test results of one uninterrupted run
# (bit-identical on the CPU; constant learning rate, so the cap does not change the schedule).
# usage: rbk_train_restart.sh RBK_TRAIN SCRATCH_DIR
set -u
rbk_train=$1 dir=$2
rm -rf "$dir"
common="--preset smoke device=cpu train.schedule=constant train.warmup_steps=0 train.eval_every=5"
"$rbk_train" $common --out "$dir/straight" > "$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
"$rbk_train" $common --out "$dir/restarted" train.max_steps=15 > "$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
"$rbk_train" $common --out "$dir/restarted" > "$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
grep -q "resumed from" "$dir.log" || { cat "$dir.log"; echo "the second run did not resume"; exit 1; }
python3 - "$dir/straight/rbk_train.smoke.json" "$dir/restarted/rbk_train.smoke.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["rows"][0] for p in sys.argv[1:3])
for key in ("status", "steps", "tokens", "step_losses", "valid_curve", "valid", "test"):
    if a[key] != b[key]:
        print(f"{key} differs:\n  straight  {a[key]}\n  restarted {b[key]}")
        sys.exit(1)
print(f"restarted run identical: {a['steps']} steps, valid PPL {a['valid']['ppl']:.4f}, "
      f"curve {[round(p['valid_ppl'], 3) for p in a['valid_curve']]}")
PY
rc=$?
rm -rf "$dir" "$dir.log"
exit $rc
