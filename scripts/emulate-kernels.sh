#!/usr/bin/env bash
# Host emulation of the GPU backend (no GPU): kernels/*.cu compiled as C++ for the CPU
# with kernels/emu/prelude.h (one OS thread per CUDA thread, emulated warp shuffles and
# barriers, blocks one after another).
#   scripts/emulate-kernels.sh [seed]   kernels/emu/check.cpp: every kernel against a C++
#                                       reference on random inputs
#   scripts/emulate-kernels.sh --rust   tests/cuda.rs with --features cuda-emu: the Rust
#                                       backend (buffers, launchers, GpuTrainer) running
#                                       on the emulated kernels, against the CPU engine
# Checks indexing, algorithms and the host orchestration; NOT a substitute for running
# tests/cuda.rs on a GPU (memory model, scheduling, PTX, driver and cust are not exercised).
set -euo pipefail
source "$(dirname "$0")/cuda-env.sh"
cd "$ROOT"
CXX="${CXX_EMU:-clang++-16}"
command -v "$CXX" >/dev/null || { echo "emulate-kernels.sh: $CXX not found (apt-get install clang-16)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp kernels/*.cu kernels/common.h kernels/emu/*.h kernels/emu/*.cpp "$work/"
flags=(-std=c++20 -O2 -pthread -fPIC -ffp-contract=fast -Wno-unused-function)
# each kernel file sees kernels.h, so a declaration that disagrees with its definition fails here
for cu in "$work"/*.cu; do
    "$CXX" "${flags[@]}" -x c++ -include "$work/kernels.h" -c "$cu" -o "${cu%.cu}.o"
done

if [ "${1:-}" = --rust ]; then
    shift
    lib="$ROOT/target/cuda-emu"
    mkdir -p "$lib"
    "$CXX" "${flags[@]}" -c "$work/launch.cpp" -o "$work/launch.o"
    rm -f "$lib/libgfn_emu.a"
    ar rcs "$lib/libgfn_emu.a" "$work"/*.o
    export LIBRARY_PATH="$lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
    GFN_EMU_STAMP="$(cat "$work"/*.o | sha256sum | cut -c1-16)"
    export GFN_EMU_STAMP
    # one test at a time: the emulation is one pool of 256 threads behind a lock
    cargo test --release --features cuda-emu --test cuda -- --test-threads=1 "$@"
    exit
fi

"$CXX" "${flags[@]}" "$work"/*.o "$work/check.cpp" -o "$work/check"
"$work/check" "$@"
