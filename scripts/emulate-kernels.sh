#!/usr/bin/env bash
# Host emulation of every kernel (no GPU): compiles kernels/*.cu as C++ for the CPU with
# kernels/emu/prelude.h (one OS thread per CUDA thread, emulated warp shuffles and
# barriers) and runs kernels/emu/check.cpp, which compares each kernel with a C++
# reference on random inputs. Checks the kernels' indexing and algorithms; NOT a
# substitute for running tests/cuda.rs on a GPU. Usage: scripts/emulate-kernels.sh [seed]
set -euo pipefail
source "$(dirname "$0")/cuda-env.sh"
cd "$ROOT"
CXX="${CXX_EMU:-clang++-16}"
command -v "$CXX" >/dev/null || { echo "emulate-kernels.sh: $CXX not found (apt-get install clang-16)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp kernels/*.cu kernels/common.h kernels/emu/prelude.h kernels/emu/check.cpp "$work/"
flags=(-std=c++20 -O2 -pthread -ffp-contract=fast -Wno-unused-function -Wno-unknown-cuda-version)
for cu in "$work"/*.cu; do
    "$CXX" "${flags[@]}" -x c++ -c "$cu" -o "${cu%.cu}.o"
done
"$CXX" "${flags[@]}" "$work"/*.o "$work/check.cpp" -o "$work/check"
"$work/check" "$@"
