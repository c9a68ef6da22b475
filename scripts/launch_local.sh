#!/usr/bin/env bash
# A torchrun-like launcher for one machine without the Python torch (the Debian CPU machine;
# issue 23): starts K copies of a program with the variables torchrun sets (RANK, WORLD_SIZE,
# LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT) and waits for them.
#   scripts/launch_local.sh [--nproc-per-node K] [--master-port P] [--grace S] PROGRAM [ARGS...]
# e.g. scripts/launch_local.sh --nproc-per-node 2 build/tools/rbk_train --preset smoke --out /tmp/dp device=cpu
# Where the Python torch is installed, torchrun does the same:
#   torchrun --standalone --nproc-per-node=K --no-python PROGRAM [ARGS...]
# Threads: each rank gets RBK_THREADS = OMP_NUM_THREADS = max(1, cores / K) unless they are set
# (K ranks of every-core OpenMP on one machine oversubscribe it).
# Faults: when a rank exits non-zero, the others get --grace seconds (default 60; set it above
# the program's c10d timeout, e.g. rbk_train's dist.timeout_s) to notice and report it themselves,
# then are killed, as torchrun does; the launcher exits with the first failing rank's code and
# names it. Ctrl-C stops every rank.
set -u
nproc=2 port=${MASTER_PORT:-29500} grace=60
while [ $# -gt 0 ]; do
  case $1 in
    --nproc-per-node|--nproc_per_node|--nproc) nproc=$2; shift 2 ;;
    --nproc-per-node=*|--nproc_per_node=*) nproc=${1#*=}; shift ;;
    --master-port|--master_port) port=$2; shift 2 ;;
    --master-port=*|--master_port=*) port=${1#*=}; shift ;;
    --grace) grace=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "launch_local.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
case $nproc in ''|*[!0-9]*|0) echo "launch_local.sh: --nproc-per-node '$nproc': expected an integer >= 1" >&2; exit 2 ;; esac
case $port in ''|*[!0-9]*) echo "launch_local.sh: --master-port '$port': expected a TCP port" >&2; exit 2 ;; esac
case $grace in ''|*[!0-9]*) echo "launch_local.sh: --grace '$grace': expected whole seconds" >&2; exit 2 ;; esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then echo "launch_local.sh: --master-port $port: expected 1..65535" >&2; exit 2; fi
if [ $# -eq 0 ]; then echo "launch_local.sh: no program given (see --help)" >&2; exit 2; fi

cores=$(nproc 2>/dev/null || echo 1)
threads=$(( cores / nproc )); [ "$threads" -ge 1 ] || threads=1
pids=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
trap 'stop_all; exit 130' INT TERM
for (( r = 0; r < nproc; r++ )); do
  RANK=$r LOCAL_RANK=$r WORLD_SIZE=$nproc LOCAL_WORLD_SIZE=$nproc MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    RBK_THREADS=${RBK_THREADS:-$threads} OMP_NUM_THREADS=${OMP_NUM_THREADS:-$threads} "$@" &
  pids+=($!)
done

# Poll: the first rank to fail starts the grace period; every rank that ends is reported.
declare -A done_rc=()
first_fail=-1 first_rc=0 fail_at=0
while [ ${#done_rc[@]} -lt "$nproc" ]; do
  for (( r = 0; r < nproc; r++ )); do
    [ -n "${done_rc[$r]:-}" ] && continue
    if ! kill -0 "${pids[$r]}" 2>/dev/null; then
      wait "${pids[$r]}"; rc=$?
      done_rc[$r]=$rc
      if [ "$rc" -ne 0 ]; then
        echo "launch_local.sh: rank $r (pid ${pids[$r]}) exited with code $rc$( [ "$rc" -gt 128 ] && echo " (signal $(( rc - 128 )))")" >&2
        if [ "$first_fail" -lt 0 ]; then first_fail=$r first_rc=$rc fail_at=$SECONDS; fi
      fi
    fi
  done
  if [ "$first_fail" -ge 0 ] && [ $(( SECONDS - fail_at )) -ge "$grace" ]; then
    for (( r = 0; r < nproc; r++ )); do
      if [ -z "${done_rc[$r]:-}" ]; then
        echo "launch_local.sh: rank $r still running ${grace} s after rank $first_fail failed: killing it" >&2
        kill -9 "${pids[$r]}" 2>/dev/null; wait "${pids[$r]}" 2>/dev/null; done_rc[$r]=137
      fi
    done
  fi
  [ ${#done_rc[@]} -lt "$nproc" ] && sleep 0.2
done
if [ "$first_fail" -ge 0 ]; then
  echo "launch_local.sh: job failed (first failure: rank $first_fail, code $first_rc)" >&2
  exit "$first_rc"
fi
exit 0
