#!/usr/bin/env python3
"""Table of the loss-explosion study (scripts/repro_explosion.sh) from its run
directories: one row per variant, mean ± sample std over seeds (n = seeds).

Run directories are named VARIANT-sSEED and hold the files train writes
(metrics.jsonl, eval.jsonl, summary.json). Training quantities (loss, mean t^2,
|log Z - batch estimate|, log Z, sum log P_F) are averaged over the last
`--tail` metric lines (one line per 10 steps by default) to smooth the batch
noise; the quality columns are the final evaluation's.

    scripts/explosion_table.py RUNS_ROOT [--tail 10] [--order "baseline ..."]
"""
import argparse
import csv
import glob
import json
import math
import os
import statistics as st
import sys


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def run_row(d, tail):
    m = read_jsonl(os.path.join(d, "metrics.jsonl"))
    with open(os.path.join(d, "summary.json")) as f:
        s = json.load(f)
    if not m:
        raise ValueError(f"{d}: metrics.jsonl is empty")
    last = m[-tail:]
    avg = lambda f: st.mean(f(r) for r in last)
    e = s["final_eval"]
    seq = e.get("sequences") or {}
    return {
        "loss": avg(lambda r: r["loss"]),
        "t2": avg(lambda r: r["residual_mean"] ** 2 + r["residual_std"] ** 2),
        "gap": avg(lambda r: abs(r["residual_mean"])),
        "log_z": avg(lambda r: r["log_z"]),
        "pf": avg(lambda r: r["mean_sum_log_pf"]),
        "reward": e["mean_reward"],
        "top10": e["top10_reward"],
        "div": seq.get("diversity"),
        "uniq": e["unique_ratio"],
        "slope": e.get("calibration_slope"),
        "r": e.get("calibration_pearson"),
        "steps": s["steps"],
        **(importance(d) or {}),
        "sps": s["steps_per_second"],
    }


def importance(d):
    """Self-normalised importance sampling from the final samples (samples.csv:
    reward, log_pf; log P_B = 0 on this tree): log Z = log mean R/P_F, the
    target's mean reward sum(w R) / sum(w) with w = R/P_F, and the effective
    sample size of w. Reliable only where the ESS is not tiny."""
    with open(os.path.join(d, "samples.csv")) as f:
        rows = [(float(r["reward"]), float(r["log_pf"])) for r in csv.DictReader(f)]
    rows = [(r, lp) for r, lp in rows if r > 0]
    if not rows:
        return None
    lw = [math.log(r) - lp for r, lp in rows]
    top = max(lw)
    w = [math.exp(x - top) for x in lw]
    return {
        "is_log_z": top + math.log(sum(w) / len(w)),
        "is_reward": sum(wi * r for wi, (r, _) in zip(w, rows)) / sum(w),
        "ess": sum(w) ** 2 / sum(x * x for x in w),
    }


def fmt(vals, digits):
    v = [x for x in vals if x is not None and math.isfinite(x)]
    if not v:
        return "-"
    top = max(abs(x) for x in v)
    if top >= 1e6:
        f = lambda x: f"{x:.1e}"
    elif top >= 1000:
        f = lambda x: f"{x:,.0f}"
    else:
        f = lambda x: f"{x:.{digits}f}"
    if len(v) == 1:
        return f(v[0])
    return f"{f(st.mean(v))} ± {f(st.stdev(v))}"


COLS = [
    ("loss", "final loss", 1),
    ("t2", "mean t²", 1),
    ("gap", "\\|log Z − est.\\|", 2),
    ("log_z", "log Z", 2),
    ("pf", "sum log P_F", 1),
    ("reward", "mean reward", 3),
    ("top10", "top-10% reward", 3),
    ("div", "diversity", 3),
    ("uniq", "unique ratio", 3),
    ("slope", "calib. slope", 2),
    ("r", "calib. r", 2),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--tail", type=int, default=10)
    ap.add_argument("--order", default="")
    a = ap.parse_args()
    if a.tail < 1:
        sys.exit("--tail must be at least 1")
    rows = {}
    for f in sorted(glob.glob(os.path.join(a.root, "*-s*", "summary.json"))):
        d = os.path.dirname(f)
        name = os.path.basename(d).rsplit("-s", 1)[0]
        rows.setdefault(name, []).append(run_row(d, a.tail))
    if not rows:
        sys.exit(f"no finished runs (*-sSEED/summary.json) under {a.root}")
    order = [v for v in a.order.split() if v in rows] + sorted(v for v in rows if v not in a.order.split())
    steps = sorted({r["steps"] for rs in rows.values() for r in rs})
    print(f"steps: {', '.join(map(str, steps))}; training columns: mean of the last {a.tail} metric lines; "
          "quality columns: final evaluation; mean ± sample std over seeds")
    print()
    print("| variant | seeds | " + " | ".join(c[1] for c in COLS) + " |")
    print("|---|---|" + "---|" * len(COLS))
    for name in order:
        rs = rows[name]
        print(f"| {name} | {len(rs)} | " + " | ".join(fmt([r[k] for r in rs], d) for k, _, d in COLS) + " |")
    # the same evaluation of a uniformly random policy (baseline.json), over the first variant's seeds
    base = []
    for f in sorted(glob.glob(os.path.join(a.root, f"{order[0]}-s*", "baseline.json"))):
        with open(f) as fh:
            e = json.load(fh)
        base.append({"reward": e["mean_reward"], "top10": e["top10_reward"],
                     "div": (e.get("sequences") or {}).get("diversity"), "uniq": e["unique_ratio"],
                     "slope": e.get("calibration_slope"), "r": e.get("calibration_pearson")})
    if base:
        print(f"| uniformly random policy | {len(base)} | " + " | ".join(
            fmt([b[k] for b in base], d) if k in base[0] else "-" for k, _, d in COLS) + " |")

    print()
    print("Target of the sampler by self-normalised importance sampling from the final samples "
          "(w = R/P_F; trust it only where the ESS is not tiny):")
    print()
    print("| variant | IS log Z | target mean reward | ESS of 512 |")
    print("|---|---|---|---|")
    for name in order:
        rs = [r for r in rows[name] if "ess" in r]
        print(f"| {name} | {fmt([r['is_log_z'] for r in rs], 2)} | {fmt([r['is_reward'] for r in rs], 3)} | "
              f"{fmt([r['ess'] for r in rs], 0)} |")


if __name__ == "__main__":
    main()
