#!/usr/bin/env bash
# Training-quality grid on HyperGrid (the numbers in BENCHMARKS-quality.md).
#
#   scripts/quality_hypergrid.sh [OUT.jsonl] [--smoke]
#
# Runs every configuration one after the other (never in parallel) and appends
# one JSON line per run to OUT.jsonl (default: quality.jsonl). Each line is the
# `hypergrid` example's output with two fields added in front: `cmd` (the
# example's arguments) and `wall_s` (wall-clock seconds of the whole process,
# evaluation included).
#
#   --smoke            every configuration for 20 iterations only, seed 0 only
#                      unless SEEDS is set (CI: seconds)
#   SEEDS="0 1 2"      seeds per configuration (environment)
#   SECTIONS="tb osc osc-fix lz lz-long lr-decay subtb-db div d4-long"   parts of the grid to run (environment)
#   HYPERGRID_BIN=...  use this prebuilt binary instead of `cargo run`
#
# Setup (the issue's spec): R0=0.1, R1=0.5, R2=2.0; MLP 2x256; Adam lr 1e-3,
# log Z lr 0.1; batch 16; on-policy, no replay, uniform P_B.
set -euo pipefail

out=quality.jsonl
smoke=0
for a in "$@"; do
    case "$a" in
        --smoke) smoke=1 ;;
        -h | --help)
            sed -n '2,19p' "$0"
            exit 0
            ;;
        -*)
            echo "unknown flag: $a" >&2
            exit 2
            ;;
        *) out=$a ;;
    esac
done
case "$out" in
    /*) ;;
    *) out="$PWD/$out" ;;
esac

cd "$(dirname "$0")/.."
if ((smoke)); then seeds=${SEEDS:-0}; else seeds=${SEEDS:-0 1 2}; fi
sections=${SECTIONS:-tb osc osc-fix lz lz-long lr-decay subtb-db div d4-long}

if [[ -z "${HYPERGRID_BIN:-}" ]]; then
    cargo build --release --example hypergrid >&2
fi

# D=2 runs 1000 iterations, D=4 2000, the oscillation runs 3000; --smoke: 20.
iters() { if ((smoke)); then echo 20; else echo "$1"; fi; }
every() { if ((smoke)); then echo 10; else echo 100; fi; }

hg() {
    if [[ -n "${HYPERGRID_BIN:-}" ]]; then
        "$HYPERGRID_BIN" "$@"
    else
        cargo run --quiet --release --example hypergrid -- "$@"
    fi
}

run() {
    local args="$*" t0 t1 line
    echo "hypergrid $args" >&2
    t0=$(date +%s.%N)
    line=$(hg "$@" | grep '^{')
    t1=$(date +%s.%N)
    local wall
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    printf '%s\n' "{\"cmd\":\"$args\",\"wall_s\":$wall,${line#\{}" >>"$out"
}

has() { [[ " $sections " == *" $1 "* ]]; }

# 1. TB with each g: D=2 H=8 (target: exact L1 <= 0.02 by iteration 1000) and
#    D=4 H=8 (target: exact L1 <= 0.15 at iteration 2000).
if has tb; then
    for g in squared linex1 linex0.5 cosh; do
        for s in $seeds; do
            run --ndim 2 --height 8 --iters "$(iters 1000)" --eval-every "$(every)" --seed "$s" --objective tb --g "$g"
            run --ndim 4 --height 8 --iters "$(iters 2000)" --eval-every "$(every)" --seed "$s" --objective tb --g "$g"
        done
    done
fi

# 2. Late-training oscillation on D=2 (TB, squared), constant log Z lr 0.1
#    against an inverse-time decay of it (--log-z-half-life H).
if has osc; then
    for h in none 100 200 500 1000; do
        for s in $seeds; do
            decay=()
            [[ $h == none ]] || decay=(--log-z-half-life "$h")
            run --ndim 2 --height 8 --iters "$(iters 3000)" --eval-every "$(every)" --seed "$s" --objective tb --g squared ${decay[@]+"${decay[@]}"}
        done
    done
fi

# 2b. What else might remove it: a smaller constant log Z lr, a smaller policy
#     lr (the example exposes no policy-lr decay), both, and a larger batch.
if has osc-fix; then
    for v in "--log-z-lr 0.01" "--lr 3e-4" "--lr 1e-4" "--lr 3e-4 --log-z-half-life 200" "--batch 64"; do
        for s in $seeds; do
            # shellcheck disable=SC2086 # $v is a list of flags
            run --ndim 2 --height 8 --iters "$(iters 3000)" --eval-every "$(every)" --seed "$s" --objective tb --g squared $v
        done
    done
fi

# 2c. The log Z rate on both tasks: constant 0.03 / 0.01, and a decay that is
#     fast (half-life 10) rather than late; D=4 with the two that help on D=2.
if has lz; then
    for v in "--log-z-lr 0.03" "--log-z-half-life 10"; do
        for s in $seeds; do
            # shellcheck disable=SC2086 # $v is a list of flags
            run --ndim 2 --height 8 --iters "$(iters 3000)" --eval-every "$(every)" --seed "$s" --objective tb --g squared $v
        done
    done
    for v in "--log-z-lr 0.01" "--log-z-half-life 10" "--log-z-half-life 200"; do
        for s in $seeds; do
            # shellcheck disable=SC2086 # $v is a list of flags
            run --ndim 4 --height 8 --iters "$(iters 2000)" --eval-every "$(every)" --seed "$s" --objective tb --g squared $v
        done
    done
fi

# 2d. Does the constant log Z lr 0.01 stay quiet for longer (D=2, 6000 iters)?
if has lz-long; then
    for s in $seeds; do
        run --ndim 2 --height 8 --iters "$(iters 6000)" --eval-every "$(every)" --seed "$s" --objective tb --g squared --log-z-lr 0.01
    done
fi

# 2e. Inverse-time decay of the policy lr (needs `--lr-half-life` in the
#     example; skipped until it has one). BENCHMARKS-quality.md measured it
#     with a patched copy of the example.
if has lr-decay; then
    if help=$(hg --help) && [[ $help == *--lr-half-life* ]]; then
        for s in $seeds; do
            run --ndim 2 --height 8 --iters "$(iters 3000)" --eval-every "$(every)" --seed "$s" --objective tb --g squared --lr-half-life 1000
        done
        run --ndim 2 --height 8 --iters "$(iters 6000)" --eval-every "$(every)" --seed 0 --objective tb --g squared --lr-half-life 1000
        run --ndim 4 --height 8 --iters "$(iters 2000)" --eval-every "$(every)" --seed 0 --objective tb --g squared --lr-half-life 1000
    else
        echo "skipping lr-decay: the example has no --lr-half-life" >&2
    fi
fi

# 3. SubTB (lambda 0.9) and DB with squared and linex1, same two tasks.
if has subtb-db; then
    for obj in subtb db; do
        for g in squared linex1; do
            for s in $seeds; do
                run --ndim 2 --height 8 --iters "$(iters 1000)" --eval-every "$(every)" --seed "$s" --objective "$obj" --g "$g"
                run --ndim 4 --height 8 --iters "$(iters 2000)" --eval-every "$(every)" --seed "$s" --objective "$obj" --g "$g"
            done
        done
    done
fi

# 4. Divergence objectives (alpha 0.5 for Renyi / Tsallis) on the small
#    enumerable task D=2 H=8, with and without control variates.
if has div; then
    for oc in rev-kl:none rev-kl:loo rev-kl:batch fwd-kl:none fwd-kl:loo \
        renyi:none renyi:loo tsallis:none tsallis:loo; do
        for s in $seeds; do
            run --ndim 2 --height 8 --iters "$(iters 1000)" --eval-every "$(every)" --seed "$s" --objective "${oc%%:*}" --cv "${oc#*:}"
        done
    done
fi

# 5. D=4 TB (squared) run longer, to see when it reaches exact L1 <= 0.15.
if has d4-long; then
    for s in $seeds; do
        run --ndim 4 --height 8 --iters "$(iters 5000)" --eval-every "$(every)" --seed "$s" --objective tb --g squared
    done
fi

echo "appended to $out" >&2
