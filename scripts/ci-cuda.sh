#!/usr/bin/env bash
# CI for the GPU backend on a machine without a GPU. Installs what is missing (idempotent:
# nothing is downloaded when it is already there), then:
#   1. builds the stub libcuda (scripts/stub-libcuda.sh) so the cuda feature links and runs;
#   2. cargo clippy --release --features cuda --all-targets -- -D warnings;
#   3. cargo test --release --features cuda --lib --test cuda (GPU tests print SKIPPED; the
#      launcher-signature, error-path and CPU-reference tests run; the other test files do not
#      touch the feature-gated code and run in the plain `cargo test` of .ci/run);
#   4. scripts/kernels.sh --check (committed PTX fresh; ptxas sm_80/sm_90, no spills);
#   5. scripts/emulate-kernels.sh: every kernel in a host emulation against C++ references,
#      and, with CI_CUDA_EMU_RUST=1, tests/cuda.rs on the emulated backend (--features
#      cuda-emu): the GPU code path, GpuTrainer included, against the CPU engine at reduced
#      sizes. Off by default: about 6 minutes on an idle 2-core machine, far more under load
#      (it runs 256 OS threads per emulated block).
# Needs: a Rust toolchain with clippy, python3 with pip, and root for apt-get (only when
# clang-16 is missing).
set -euo pipefail
source "$(dirname "$0")/cuda-env.sh"
cd "$ROOT"
t_start=$(date +%s)
step() { echo "== ci-cuda: $* ($(($(date +%s) - t_start)) s)"; }

step "toolchain"
if ! command -v "$CLANG" >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq clang-16 >/dev/null
fi
if ! nvcc_dir >/dev/null; then
    mkdir -p "$GFN_CUDA_TOOLS"
    if python3 -m venv "$GFN_CUDA_TOOLS/venv" 2>/dev/null; then
        "$GFN_CUDA_TOOLS/venv/bin/pip" install -q --disable-pip-version-check "nvidia-cuda-nvcc-cu12==$NVCC_PIP_VERSION"
    else
        rm -rf "$GFN_CUDA_TOOLS/venv"
        python3 -m pip install -q --disable-pip-version-check --target "$GFN_CUDA_TOOLS/site" \
            "nvidia-cuda-nvcc-cu12==$NVCC_PIP_VERSION"
    fi
fi
nvcc_dir >/dev/null || { echo "ci-cuda: nvidia-cuda-nvcc-cu12 did not install" >&2; exit 1; }

step "stub libcuda"
scripts/stub-libcuda.sh >/dev/null
export CUDA_LIBRARY_PATH="$STUB_DIR"
export LD_LIBRARY_PATH="$STUB_DIR/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

step "cargo clippy --features cuda, --features cuda-emu"
cargo clippy --release --features cuda --all-targets -- -D warnings
cargo clippy --release --features cuda-emu --all-targets -- -D warnings

step "cargo test --features cuda (stub libcuda: GPU tests skip)"
cargo test --release --features cuda --lib --test cuda

step "kernels.sh --check"
scripts/kernels.sh --check

step "emulate-kernels.sh"
scripts/emulate-kernels.sh
if [ "${CI_CUDA_EMU_RUST:-0}" = 1 ]; then
    step "emulate-kernels.sh --rust (tests/cuda.rs on the emulated backend)"
    scripts/emulate-kernels.sh --rust
fi

step "done"
