#!/usr/bin/env bash
# The long reliability checks that CI runs only in short form (RELIABILITY.md
# records their results):
#   fuzzing   the config parser, the checkpoint reader and the external-reward
#             line parser with GFN_FUZZ_CASES cases each (default 50000)
#   sigkill   40 SIGKILLs at random moments over four 120-step runs, each
#             resumed to byte-identical files
#   soak      every objective x g, default and too-small log Z learning rate,
#             GFN_SOAK_STEPS steps (default 20000) with default settings, or with
#             a small policy and short peptides when GFN_SOAK_SMALL is set
# Usage: scripts/reliability.sh [fuzz|sigkill|soak|all]
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
export GFN_FUZZ_CASES="${GFN_FUZZ_CASES:-50000}"
run() { echo "== $* ($(date -u +%H:%M:%S))"; "$@"; }
if [ "$what" = fuzz ] || [ "$what" = all ]; then
    run cargo test --release --test fuzz
    run cargo test --release --lib reward::external
    run cargo test --release --test checkpoint -- decoder_never_panics reader_never_panics
fi
if [ "$what" = sigkill ] || [ "$what" = all ]; then
    cargo build --release --example train
    run cargo test --release --test reliability -- --ignored --nocapture
fi
if [ "$what" = soak ] || [ "$what" = all ]; then
    run cargo test --release --test soak -- --ignored --nocapture
fi
echo "== done ($(date -u +%H:%M:%S))"
