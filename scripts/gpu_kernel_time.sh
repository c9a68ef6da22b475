#!/usr/bin/env bash
# GPU kernel time of ResNet-BK / baseline training steps, on the GPU machine after
# `scripts/run_device.sh build`: runs exp_lm_throughput for one variant under Nsight Compute with
# one metric (gpu__time_duration.sum per kernel) and prints the kernel count, the summed kernel
# time per step and the largest kernels. Compare with the variant's step time from the experiment
# itself: kernel time well below the step time means the GPU sat idle (launch-bound or waiting).
# Nsight Compute serialises kernels and by default locks clocks to base, so its durations read
# ~10-20 % long; the set-up before the first step is included (2 steps, divided by 2).
#   usage: scripts/gpu_kernel_time.sh <variant> [key=value...]   (variant: resnet_bk_causal, transformer, ...)
set -u
v=$1; shift
E=${RBK_BUILD_DIR:-build-gpu}/experiments/lm_throughput/exp_lm_throughput
csv=/tmp/ncu_$v.csv
timeout 300 ncu --metrics gpu__time_duration.sum --csv --print-units base --log-file "$csv" \
  "$E" --preset gpu --out "/tmp/ncu_out_$v" variants="$v" warmup_steps=0 timed_steps=2 phase_steps=0 "$@" > "/tmp/ncu_$v.log" 2>&1
rc=$?
echo "ncu $v rc=$rc"
[ $rc -eq 0 ] || { tail -5 "/tmp/ncu_$v.log"; exit $rc; }
python3 - "$csv" "$v" <<'PY'
import collections, csv, sys
path, v = sys.argv[1], sys.argv[2]
rows = [r for r in csv.reader(open(path)) if len(r) > 10]
if not rows:
    sys.exit(f"{path}: no kernel rows (did ncu profile anything?)")
hdr = rows[0]
ki, mi, vi = hdr.index("Kernel Name"), hdr.index("Metric Name"), hdr.index("Metric Value")
total, count = collections.Counter(), collections.Counter()
for r in rows[1:]:
    if r[mi] == "gpu__time_duration.sum":
        total[r[ki][:60]] += float(r[vi].replace(",", ""))
        count[r[ki][:60]] += 1
t, n = sum(total.values()), sum(count.values())
print(f"{v}: {n} kernels, {t / 1e6:.2f} ms of kernel time in 2 steps (set-up included): {t / 2e6:.2f} ms per step")
for name, ns in total.most_common(8):
    print(f"  {ns / 2e6:7.2f} ms/step {count[name] // 2:6d} per step  {name}")
PY
