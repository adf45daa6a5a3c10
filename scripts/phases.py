#!/usr/bin/env python3
"""Shares of a training step's samples by phase, from `perf script -F ip,sym`
of a frame-pointer build (scripts/phases.sh runs the whole thing).

Each sample's stack is read from the root: the outermost frame that names a
phase (sampling, the objective's forward, the backward pass, Adam) decides the
phase, and the leaf decides whether it was a product's kernel. Samples of
functions that keep no frame pointer (glibc's malloc and free) have no caller
and count as "the rest"."""
import collections
import sys

PRODUCT = ("gemm::tile512::", "gemm::tile::", "gemm::narrow_tile::", "gemm::narrow_fma")
PHASES = [
    ("sampling: the layers' products", "sample", "layers"),
    ("sampling: the heads' products and their kept transposes", "sample", "heads"),
    ("sampling: sparse first layer, bias and activation, the rest of the pass", "sample", "pass"),
    ("sampling: per row (choose, P_B, the environment, bookkeeping)", "sample", "row"),
    ("backward: products", "backward", "product"),
    ("backward: packing, activation derivative, sparse first layer, other ops", "backward", "other"),
    ("loss (the policy's terms and the objective's forward)", "loss", None),
    ("Adam", "adam", None),
    ("the rest (parameters copied to the tape, allocation)", "rest", None),
]


def phase_of(stack):
    """`stack`: symbols from the leaf to the root."""
    region = "rest"
    for f in reversed(stack):
        if "sample_with_activations" in f or "Sampler>::sample" in f:
            region = "sample"
            break
        if "nn::optim" in f:
            region = "adam"
            break
        if "Tape<f32>>::backward" in f:
            region = "backward"
            break
        if "terms_sampled" in f or "terms_of" in f or "objective::" in f:
            region = "loss"
            break
    leaf = stack[0]
    if region == "sample":
        if any("gemm::narrow_fma" in f for f in stack):
            return "sample", "heads"
        if any(p in leaf for p in PRODUCT) or "gemm::tiles" in leaf:
            return "sample", "layers"
        if any("pass_into" in f for f in stack):
            return "sample", "pass"
        return "sample", "row"
    if region == "backward":
        return "backward", "product" if any(p in leaf for p in PRODUCT) else "other"
    return region, None


def main():
    counts, n, stack = collections.Counter(), 0, []

    def flush():
        nonlocal n
        if stack:
            counts[phase_of(stack)] += 1
            n += 1
            stack.clear()

    for line in sys.stdin:
        parts = line.split(None, 1)
        if not parts:
            flush()
        else:
            stack.append(parts[1].strip() if len(parts) > 1 else "?")
    flush()
    if n == 0:
        sys.exit("no samples read")
    for name, region, part in PHASES:
        print(f"| {name} | {100 * counts[(region, part)] / n:.1f} % |")
    print(f"({n} samples)")


if __name__ == "__main__":
    main()
