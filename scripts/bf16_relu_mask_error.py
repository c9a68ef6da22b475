#!/usr/bin/env python3
"""Why a bf16 MoE's gradients sit ~10x further from fp64 than its output (moe_grouped.h).

Simulates one expert of exp_lm_throughput's MoE (D 256, hidden 2 D or 4 D, 8,192 tokens) with each
GEMM input and output rounded to bf16, as autocast does, and compares the input gradient with fp64:
once with the bf16 ReLU mask and once with the exact mask. The gap between the two is the mask
flips' share. numpy only; prints one line per hidden width.
"""
import numpy as np


def to_bf16(a):
    """Round float32 to the nearest bf16 (ties to even), kept as float32."""
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def main():
    rng = np.random.default_rng(0)
    tokens, d = 8192, 256
    for hidden in (2 * d, 4 * d):
        bound_up, bound_down = 1 / np.sqrt(d), 1 / np.sqrt(hidden)  # nn.Linear's default init
        x = rng.standard_normal((tokens, d))
        w_up, b_up = rng.uniform(-bound_up, bound_up, (hidden, d)), rng.uniform(-bound_up, bound_up, hidden)
        w_down = rng.uniform(-bound_down, bound_down, (d, hidden))
        grad_out = rng.standard_normal((tokens, d))
        mask = (x @ w_up.T + b_up) > 0
        reference = ((grad_out @ w_down) * mask) @ w_up
        pre_bf16 = to_bf16(to_bf16(x) @ to_bf16(w_up).T + to_bf16(b_up))
        mask_bf16 = pre_bf16 > 0
        grad_hidden = to_bf16(to_bf16(grad_out) @ to_bf16(w_down))
        rel = lambda g: np.linalg.norm(g - reference) / np.linalg.norm(reference)
        with_bf16_mask = rel(to_bf16(to_bf16(grad_hidden * mask_bf16) @ to_bf16(w_up)))
        with_exact_mask = rel(to_bf16(to_bf16(grad_hidden * mask) @ to_bf16(w_up)))
        print(f"hidden {hidden}: input gradient rel L2 error {with_bf16_mask:.4f} with the bf16 mask, "
              f"{with_exact_mask:.4f} with the exact mask; mask flips {np.mean(mask != mask_bf16):.4%}")


if __name__ == "__main__":
    main()
