#!/bin/sh
# scripts/ptx_identity.py on small hand-written PTX files: a copy with other register and label
# numbers and another anonymous-namespace hash is identical (exit 0); one changed instruction, or a
# kernel with no counterpart, is a difference (exit 1); a file with no kernel is bad input (exit 2).
set -u
tool="$1"; dir="$2"
rm -rf "$dir" && mkdir -p "$dir" || exit 1
kernel() {  # kernel <hash> <reg-base> <label> <op> <name>
  printf '.entry _ZN3rbk4cuda%s_GLOBAL__N__%s_9_demo_cu_0abc1234%s(\n\t.param .u64 p\n)\n{\n\t.loc 1 2 3\n\tmov.f32 \t%%f%s, 0f00000000;\n\t%s.f32 \t%%f%s, %%f%s, %%f%s;\n$L__BB%s_1:\n\tbra.uni \t$L__BB%s_1;\n}\n' \
    27 "$1" "$5" "$2" "$4" "$(($2 + 1))" "$2" "$2" "$3" "$3"
}
kernel 1111 10 0 add 6kernelv > "$dir/before.ptx"
kernel 2222 40 7 add 6kernelv > "$dir/renumbered.ptx"
kernel 1111 10 0 mul 6kernelv > "$dir/changed.ptx"
kernel 1111 10 0 add 5otherv > "$dir/renamed.ptx"
echo "no kernels here" > "$dir/empty.ptx"
# A kernel moved to another file (or next to new kernels): its local depot, a static's $N suffix,
# the numbers of its call sequences and the file prefix of the internal function it calls are
# renumbered / renamed; a changed callee is still a difference.
moved() {  # moved <depot> <static> <file-prefix> <callee> <callseq>
  printf '.entry _ZN3rbk4cuda6kernelv(\n\t.param .u64 p\n)\n{\n\t.local .align 8 .b8 \t__local_depot%s[48];\n\tmov.u64 \t%%rd1, _ZN3rbk6detail5identEv$%s;\n\t{ // callseq %s, 0\n\tcall.uni _ZN%s%s;\n\t} // callseq %s\n}\n' "$1" "$2" "$5" "$3" "$4" "$5"
}
moved 1 1673 48_INTERNAL_ac450389_17_bk_stable_scan_cu_63c239b4 3rbk4walkEv 0 > "$dir/in_scan.ptx"
moved 0 1279 51_INTERNAL_53d01793_20_bk_window_forward_cu_2fda9469 3rbk4walkEv 7 > "$dir/in_window.ptx"
moved 0 1279 51_INTERNAL_53d01793_20_bk_window_forward_cu_2fda9469 3rbk5otherEv 7 > "$dir/other_callee.ptx"
. "$(dirname "$0")/expect_exit.sh"
expect 0 "$dir/before.ptx" "$dir/renumbered.ptx"
expect 1 "$dir/before.ptx" "$dir/changed.ptx"
expect 1 "$dir/before.ptx" "$dir/renamed.ptx"
expect 0 "$dir/before.ptx" "$dir/renamed.ptx" --map '6kernelv=5otherv'
expect 2 "$dir/before.ptx" "$dir/empty.ptx"
expect 0 "$dir/in_scan.ptx" "$dir/in_window.ptx"
expect 1 "$dir/in_scan.ptx" "$dir/other_callee.ptx"
exit $fail
