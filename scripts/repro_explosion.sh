#!/usr/bin/env bash
# The loss-explosion study on peptides (EXPERIMENTS.md, section 1): TB with the
# squared loss at policy lr 3e-4 and log Z lr 9e-4, log Z starting at 0, no
# replay (the baseline), then one change at a time from it: noclip (no clip on
# the residual inside g'), log Z lr 0.1, log Z initialised from the first batch,
# Linex(1), Linex(1/2), Shifted-Cosh, reverse KL with the LOO control variate,
# prioritized replay (PRT). Each run goes to
# OUT_DIR/VARIANT-sSEED (a finished run is kept and not rerun); prints the
# markdown table of scripts/explosion_table.py.
#
#   scripts/repro_explosion.sh [OUT_DIR] [--steps N] [--seeds "0 1 2"] [--variants "baseline prt"] [--smoke]
#
# TRAIN_BIN=path uses a prebuilt train binary instead of building the tree.
# NICE=n runs training at that niceness (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
all="baseline noclip logz-lr-0.1 logz-init linex1 linex0.5 cosh revkl-loo prt"
out=runs/explosion steps=1000 seeds="0 1 2" variants=$all eval_every=""
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    --eval-every) eval_every=$2; shift 2 ;;
    --smoke) steps=3; seeds=0; eval_every=3; shift ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
for v in $variants; do
  case " $all " in *" $v "*) ;; *) echo "unknown variant $v; known: $all" >&2; exit 2 ;; esac
done
. scripts/common.sh
bin=$(train_bin)
eval_every=${eval_every:-$(( steps / 4 > 0 ? steps / 4 : 1 ))}
mkdir -p "$out"
for s in $seeds; do
  for v in $variants; do
    objective=tb g=squared cv=none replay=none log_z_lr=9e-4 log_z_init=config extra=()
    case $v in
      baseline) ;;
      noclip) extra=(--residual-clip 1e9) ;;  # squared TB without the engine's residual clip at 50
      logz-lr-0.1) log_z_lr=0.1 ;;
      logz-init) log_z_init=batch-estimate ;;
      linex1|linex0.5|cosh) g=$v ;;
      revkl-loo) objective=rev-kl cv=loo ;;
      prt) replay=prioritized ;;
    esac
    dir="$out/$v-s$s"
    [ -f "$dir/summary.json" ] && continue
    rm -rf "$dir"
    echo "$v seed $s -> $dir" >&2
    nice -n "${NICE:-10}" "$bin" --seed "$s" --steps "$steps" --eval-every "$eval_every" --checkpoint-every 0 \
      --batch 64 --min-len 10 --max-len 30 --lr 3e-4 --log-z-lr "$log_z_lr" --log-z-init "$log_z_init" \
      --objective "$objective" --g "$g" --cv "$cv" --replay "$replay" ${extra[@]+"${extra[@]}"} --out "$dir" >"$out/$v-s$s.log" 2>&1 \
      || { echo "run $dir failed:" >&2; tail -5 "$out/$v-s$s.log" >&2; exit 1; }
  done
done
python3 scripts/explosion_table.py "$out" --order "$all"
