# Sourced by the CUDA scripts: where the kernel toolchain and the stub live.
#   GFN_CUDA_TOOLS  folder with the venv (or pip --target site/) holding nvidia-cuda-nvcc-cu12;
#                   outside the work tree by default so that fresh clones (CI) reuse it
#                   (default: ~/.cache/gflownet-cuda-tools)
#   CLANG           the CUDA-capable clang (default: clang-16, Debian's package)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GFN_CUDA_TOOLS="${GFN_CUDA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/gflownet-cuda-tools}"
CLANG="${CLANG:-clang-16}"
NVCC_PIP_VERSION="12.9.86"
STUB_DIR="$ROOT/.cuda-stub"
# The pip wheel's files (ptxas, libdevice), wherever the venv put site-packages.
nvcc_dir() {
    local d
    for d in "$GFN_CUDA_TOOLS"/venv/lib/python3*/site-packages/nvidia/cuda_nvcc "$GFN_CUDA_TOOLS"/site/nvidia/cuda_nvcc; do
        [ -x "$d/bin/ptxas" ] && { echo "$d"; return 0; }
    done
    return 1
}
