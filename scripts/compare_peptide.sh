#!/usr/bin/env bash
# TB on the default peptide task with each regression loss, with and without
# prioritized replay, over several seeds; prints a markdown table of the final
# evaluation (mean over seeds, min-max in brackets).
#
#   scripts/compare_peptide.sh [OUT_DIR] [--steps N] [--seeds "0 1 2"] [--smoke]
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/compare-peptide steps=1000 seeds="0 1 2"
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --smoke) steps=3; seeds=0; shift ;;
    *) out=$1; shift ;;
  esac
done
. scripts/common.sh
bin=$(train_bin)
mkdir -p "$out"
for s in $seeds; do
  for g in squared linex1 linex0.5 cosh; do
    for replay in prioritized none; do
      dir="$out/$g-$replay-s$s"
      [ -f "$dir/summary.json" ] && continue
      rm -rf "$dir"
      "$bin" --g "$g" --replay "$replay" --seed "$s" --steps "$steps" --eval-every "$steps" --out "$dir" >/dev/null
    done
  done
done
python3 - "$out" <<'PY'
import json, sys, os, glob, statistics as st
root = sys.argv[1]
rows = {}
for f in sorted(glob.glob(os.path.join(root, "*", "summary.json"))):
    name = os.path.basename(os.path.dirname(f)).rsplit("-s", 1)[0]
    s = json.load(open(f))
    e, b = s["final_eval"], s["baseline"]
    rows.setdefault(name, []).append((e, b, s))
def fmt(v):
    v = [x for x in v if x is not None]
    if not v: return "-"
    return f"{st.mean(v):.3f} [{min(v):.3f}-{max(v):.3f}]" if len(v) > 1 else f"{v[0]:.3f}"
print("| g, replay | seeds | mean reward | top-10% reward | diversity | unique ratio | calibration r | steps/s |")
print("|---|---|---|---|---|---|---|---|")
for name, rs in rows.items():
    print(f"| {name} | {len(rs)} | {fmt([e['mean_reward'] for e,_,_ in rs])} | {fmt([e['top10_reward'] for e,_,_ in rs])} | "
          f"{fmt([e['sequences']['diversity'] for e,_,_ in rs])} | {fmt([e['unique_ratio'] for e,_,_ in rs])} | "
          f"{fmt([e['calibration_pearson'] for e,_,_ in rs])} | {fmt([s['steps_per_second'] for _,_,s in rs])} |")
b = next(iter(rows.values()))[0][1]
print(f"| uniformly random policy | - | {b['mean_reward']:.3f} | {b['top10_reward']:.3f} | {b['sequences']['diversity']:.3f} | {b['unique_ratio']:.3f} | - | - |")
PY
