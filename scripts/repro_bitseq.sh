#!/usr/bin/env bash
# Loss comparison on bit sequences (Hu et al., ICLR 2025, Table 3): the grid of
# EXPERIMENTS.md section 2, one run after the other (never in parallel).
#
#   scripts/repro_bitseq.sh [OUT.jsonl] [--smoke] [--summary]
#
# Runs `examples/bitseq.rs` (n = 120, k = 8, 60 modes, radius 30, batch 16,
# lr 1e-3, log Z lr 2e-3, epsilon 0.001, 1500 steps, MLP 2 x 64) for
#   1. every objective x g, seed 0;
#   2. DB and SubTB x every g again with seed 1 (REPL_SEEDS; "" skips it);
#   3. TB x {squared, linex1, linex:-1} with log Z started at the first batch's
#      estimate instead of 0 (DIAG=0 skips it),
# and appends the JSON lines to OUT.jsonl (default: bitseq.jsonl). Runs are
# deterministic given their seed. Then it prints a table per objective
# and g: runs that found all 60 modes, the median step at which they did, and
# modes found (per seed) at a third and two thirds of the run and at the end.
#
#   --smoke            part 1 only, 4 steps per run, hidden 16 (CI: seconds)
#   --summary          only print the table of an existing OUT.jsonl
#   STEPS=1500         steps per run (the paper: 250000)
#   SEEDS="0"          training seeds of parts 1 and 3 (the paper: 5); the mode set is fixed (seed 0)
#   HIDDEN=64,64       MLP hidden widths (the paper: a Transformer)
#   EVERY=100          steps between JSON lines
#   OBJECTIVES="tb db subtb"
#   GS="squared linex1 linex:-1 linex0.5 cosh"   (linex:-1: the sign-convention check)
#   BITSEQ_BIN=...     use this prebuilt binary instead of building it
set -euo pipefail

out=bitseq.jsonl
smoke=0
summary_only=0
for a in "$@"; do
    case "$a" in
        --smoke) smoke=1 ;;
        --summary) summary_only=1 ;;
        -h | --help)
            sed -n '2,28p' "$0"
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

summarise() {
    python3 - "$1" <<'EOF'
import json, statistics, sys
from collections import defaultdict

runs = defaultdict(list)  # (objective, g, seed) -> lines
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line)
        g = d["g"] + ("" if d.get("log_z_init", "zero") == "zero" else " (log Z init " + d["log_z_init"] + ")")
        runs[(d["objective"], g, d["seed"], d["steps"], d["hidden"])].append(d)
configs = defaultdict(list)
for (obj, g, seed, steps, hidden), lines in runs.items():
    configs[(obj, g, steps, hidden)].append(lines)
if not configs:
    sys.exit("no runs in " + sys.argv[1])
steps_max = max(k[2] for k in configs)
marks = sorted({steps_max // 3, 2 * steps_max // 3} - {0})

def at(lines, step, key):
    done = [l for l in lines if l["step"] <= step]
    return done[-1][key] if done else None

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def fmt(x):
    return "-" if x is None else (f"{x:g}" if isinstance(x, (int, float)) else str(x))

def each(xs):
    return ", ".join(fmt(x) for x in xs)

head = ["objective", "g", "steps", "seeds", "found all 60", "median step (all 60)"]
head += [f"modes @{m}" for m in marks] + ["modes @end", "best log R @end", "mean log R (last window)"]
print("Modes found, best and mean log R: one value per seed, in seed order.\n")
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
order = {"tb": 0, "subtb": 1, "db": 2}
gorder = {"squared": 0, "linex1": 1, "linex0.5": 2, "cosh": 3, "linex:-1": 4}
for (obj, g, steps, hidden) in sorted(configs, key=lambda k: (order.get(k[0], 9), gorder.get(k[1].split()[0], 9), k)):
    rs = sorted(configs[(obj, g, steps, hidden)], key=lambda r: r[0]["seed"])
    finished = [r for r in rs if r[-1].get("final")]
    allf = [r[-1]["all_found_step"] for r in rs if r[-1]["all_found_step"] is not None]
    last = [r[-1]["step"] for r in rs]
    row = [obj, g, fmt(steps) + ("" if len(finished) == len(rs) else f" (ran {fmt(min(last))})"),
           each(r[0]["seed"] for r in rs), f"{len(allf)}/{len(rs)}", fmt(med(allf))]
    row += [each(at(r, m, "modes_found") if r[-1]["step"] >= m else None for r in rs) for m in marks]
    row += [each(r[-1]["modes_found"] for r in rs), each(r[-1]["best_log_r"] for r in rs),
            each(round(r[-1]["mean_log_r"], 1) for r in rs)]
    print("| " + " | ".join(row) + " |")
EOF
}

if ((summary_only)); then
    summarise "$out"
    exit 0
fi

if ((smoke)); then
    steps=4 every=2 hidden=16 seeds=${SEEDS:-0} repl_seeds=${REPL_SEEDS-} diag=${DIAG:-0}
else
    steps=${STEPS:-1500} every=${EVERY:-100} hidden=${HIDDEN:-64,64} seeds=${SEEDS:-0}
    repl_seeds=${REPL_SEEDS-1} diag=${DIAG:-1}
fi
objectives=${OBJECTIVES:-tb db subtb}
gs=${GS:-squared linex1 linex:-1 linex0.5 cosh}

bin=${BITSEQ_BIN:-}
if [[ -z "$bin" ]]; then
    cargo build --quiet --release --example bitseq >&2
    bin=${CARGO_TARGET_DIR:-target}/release/examples/bitseq
fi
# The step allocates a few [256 x 3841] arrays: keeping them out of mmap/munmap
# cuts the system time of a step from ~30% of it to ~1%.
export MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=536870912

# grid OBJECTIVES GS SEEDS LOG_Z_INIT: one run per combination, appended to $out
grid() {
    local obj g s
    for g in $2; do
        for obj in $1; do
            for s in $3; do
                echo "bitseq --objective $obj --g $g --seed $s --steps $steps --hidden $hidden --log-z-init $4" >&2
                "$bin" --objective "$obj" --g "$g" --seed "$s" --steps "$steps" --eval-every "$every" \
                    --hidden "$hidden" --log-z-init "$4" >>"$out"
            done
        done
    done
}

# 1. every objective and g
grid "$objectives" "$gs" "$seeds" zero
# 2. replication on the objectives that learn within the budget (REPL_SEEDS="": skip)
if [[ -n "$repl_seeds" ]]; then
    grid "$(tr ' ' '\n' <<<"$objectives" | grep -v '^tb$' | tr '\n' ' ')" "$gs" "$repl_seeds" zero
fi
# 3. TB with log Z started at the first batch's estimate, so the residuals start
#    near 0 (DIAG=0: skip)
if ((diag)); then
    grid "$(tr ' ' '\n' <<<"$objectives" | grep '^tb$' || true)" "squared linex1 linex:-1" "$seeds" batch
fi
echo "appended to $out" >&2
summarise "$out"
