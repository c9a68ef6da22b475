#!/usr/bin/env python3
"""The rows of exp_lm_throughput results as one Markdown table, for NOTES.md (issue 25).

One line per timed row of each file: variant (with its step mode), loss kernel, N, tokens/s, the
step's median time, the host's time to issue it, the GPU's kernel time per step, the busy fraction
and tokens/s over the Transformer's of the same file, step mode and N. With --categories, the kernel
time per step of each category follows (ms). Reads what the experiment wrote; computes nothing
but that ratio, so the table shows the file's numbers.

usage: scripts/lm_throughput_table.py [--categories] <lm_throughput*.json>...
exit 0; 2 on a file that is missing, not JSON, or not an lm_throughput result.
"""
import json
import sys


def fail(message):
    print(f"lm_throughput_table: {message}", file=sys.stderr)
    sys.exit(2)


def load(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        fail(f"{path}: cannot read ({e.strerror})")
    except json.JSONDecodeError as e:
        fail(f"{path}: not JSON ({e.msg}, line {e.lineno})")
    if not isinstance(doc, dict) or doc.get("experiment") != "lm_throughput" or not isinstance(doc.get("rows"), list):
        fail(f"{path}: not an exp_lm_throughput result (expected experiment 'lm_throughput' and a rows list)")
    return doc


def mode_of(row):
    return row.get("step_mode", "eager")


def key_of(row):
    mode = mode_of(row)
    return row["variant"] if mode == "eager" else f"{row['variant']}+{mode}"


def ms(x):
    return f"{1e3 * x:.1f}" if isinstance(x, (int, float)) else "-"


def main(argv):
    categories = "--categories" in argv
    paths = [a for a in argv if a != "--categories"]
    if not paths:
        fail("usage: lm_throughput_table.py [--categories] <lm_throughput*.json>...")
    header = ["row", "loss", "N", "tok/s", "step ms", "host ms", "kernel ms", "busy", "/ Transformer"]
    lines = []
    all_categories = []
    for path in paths:
        doc = load(path)
        ok = [r for r in doc["rows"] if r.get("status") == "ok" and "variant" in r]
        transformer = {(mode_of(r), r["seq_len"]): r["tokens_per_second"] for r in ok if r["variant"] == "transformer"}
        for r in ok:
            busy = r.get("gpu_busy") or {}
            t = transformer.get((mode_of(r), r["seq_len"]))
            cells = [key_of(r), r.get("loss_kernel", "aten"), str(r["seq_len"]), f"{r['tokens_per_second'] / 1e3:.0f}k",
                     ms(r["step_seconds_median"]), ms(r.get("host_seconds_median")), ms(busy.get("kernel_seconds_per_step")),
                     f"{100 * busy['fraction']:.1f} %" if isinstance(busy.get("fraction"), (int, float)) else "-",
                     f"{r['tokens_per_second'] / t:.3f}" if t else "-"]
            by_cat = busy.get("kernel_seconds_per_step_by_category") or {}
            for c in by_cat:
                if c not in all_categories:
                    all_categories.append(c)
            lines.append((cells, by_cat))
    if categories:
        header += all_categories
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for cells, by_cat in lines:
        if categories:
            cells = cells + [ms(by_cat.get(c)) for c in all_categories]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
