#!/usr/bin/env bash
# Where a training step's time goes, by phase: `perf record` of steady-state
# training steps (`bench steady`), then scripts/phases.py over the stacks.
#   scripts/phases.sh [hypergrid|peptide] [batch] [steps]
# defaults: hypergrid 16 6000. Needs `perf` (linux-tools) and python3. Builds
# the bench with frame pointers into target/frames so that it leaves the
# normal build alone.
set -euo pipefail
cd "$(dirname "$0")/.."
task=${1:-hypergrid} batch=${2:-16} steps=${3:-6000}
command -v perf >/dev/null || { echo "phases.sh: perf is not installed" >&2; exit 2; }
export CARGO_TARGET_DIR=target/frames
RUSTFLAGS="-C force-frame-pointers=yes -C symbol-mangling-version=v0" \
  cargo build --release --example bench
data=$(mktemp)
trap 'rm -f "$data"' EXIT
perf record -q -F 4000 -g -o "$data" "$CARGO_TARGET_DIR/release/examples/bench" steady "$task" "$batch" "$steps"
perf script -i "$data" -F ip,sym 2>/dev/null | python3 scripts/phases.py
