#!/usr/bin/env python3
"""Checks what one rbk_train smoke run left in its --out directory (issue 17): the checkpoint,
the metrics log with the validation curve, and the result JSON with provenance, an ok row, finite
valid/test perplexities, the curve, parameter counts and peak memory.
usage: check_train_result.py DIR ARCH"""
import json
import math
import os
import sys


def fail(msg):
    print("check_train_result: " + msg)
    sys.exit(1)


def main():
    out_dir, arch = sys.argv[1], sys.argv[2]
    for name in ("model.pt", "metrics.jsonl", "rbk_train.smoke.json"):
        if not os.path.isfile(os.path.join(out_dir, name)):
            fail(f"{out_dir}/{name} missing")
    with open(os.path.join(out_dir, "rbk_train.smoke.json")) as f:
        doc = json.load(f)
    if doc.get("status") != "ok":
        fail(f"document status {doc.get('status')!r}")
    if not doc["context"].get("git_commit"):
        fail("no provenance (context.git_commit)")
    if doc["config"].get("model.arch") != arch:
        fail(f"config model.arch {doc['config'].get('model.arch')!r}, expected {arch!r}")
    (row,) = doc["rows"]
    if row["status"] != "ok":
        fail(f"row status {row['status']!r}: {row.get('reason')}")
    if row["model"]["arch"] != arch:
        fail(f"row model arch {row['model']['arch']!r}")
    for split in ("valid", "test"):
        ppl, bpb = row[split]["ppl"], row[split]["bits_per_byte"]
        if not (math.isfinite(ppl) and ppl > 1 and math.isfinite(bpb) and bpb > 0):
            fail(f"{split}: ppl {ppl}, bits per byte {bpb}")
    curve = row["valid_curve"]
    steps = row["steps"]
    every = doc["config"]["train.eval_every"]
    if len(curve) != steps // every or any(p["step"] != every * (i + 1) for i, p in enumerate(curve)):
        fail(f"valid curve steps {[p['step'] for p in curve]} for {steps} steps, eval_every {every}")
    if not all(math.isfinite(p["valid_ppl"]) for p in curve):
        fail("non-finite point in the valid curve")
    # Training must move the validation loss (a model that never updates would pass the rest).
    if not curve[-1]["valid_loss"] < curve[0]["valid_loss"]:
        fail(f"valid loss did not fall: {curve[0]['valid_loss']} -> {curve[-1]['valid_loss']}")
    if len(row["step_losses"]) != steps:
        fail(f"{len(row['step_losses'])} step losses for {steps} steps")
    params = row["parameters"]
    if params["total"] - params["position_table"] != params["without_position_table"] or params["total"] <= 0:
        fail(f"parameter counts {params}")
    if arch in ("mamba", "rwkv") and params["position_table"] != 0:
        fail(f"{arch} has a position table of {params['position_table']} parameters")
    peak = row["peak_memory"]
    if peak["cpu_peak_rss_bytes"] is None or peak["cpu_peak_rss_bytes"] <= 0:
        fail(f"peak memory {peak}")
    if not row["tokens_per_second"] > 0:
        fail(f"tokens/s {row['tokens_per_second']}")
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        events = [json.loads(line) for line in f if line.strip()]
    logged = [e["step"] for e in events if e.get("event") == "valid"]
    if logged != [p["step"] for p in curve]:
        fail(f"metrics log valid steps {logged} differ from the result's curve")
    print(f"{arch}: {steps} steps, valid PPL {row['valid']['ppl']:.2f}, test PPL {row['test']['ppl']:.2f}, "
          f"curve {[round(p['valid_ppl'], 1) for p in curve]}, {params['total']} parameters, "
          f"{row['tokens_per_second']:.0f} tok/s, peak RSS {peak['cpu_peak_rss_bytes'] / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
