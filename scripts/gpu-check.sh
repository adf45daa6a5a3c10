#!/usr/bin/env bash
# Builds, on this (GPU-less) machine, everything the GPU check needs into gpu-out/
# (git-ignored): the CUDA test binary, the GPU benchmark, and gpu-out/run.sh, which runs
# them on a machine with an NVIDIA GPU and its driver (no Rust, no network needed there).
# Prints the one command to run there.
#
# Linking here uses the STUB libcuda of scripts/stub-libcuda.sh; the stub is never copied
# into gpu-out/, and run.sh refuses to run if the binaries would load a stub.
set -euo pipefail
source "$(dirname "$0")/cuda-env.sh"
cd "$ROOT"

[ -f "$STUB_DIR/lib64/libcuda.so.1" ] || scripts/stub-libcuda.sh >/dev/null
export CUDA_LIBRARY_PATH="$STUB_DIR"

OUT="$ROOT/gpu-out"
rm -rf "$OUT"
mkdir -p "$OUT"

test_bin="$(cargo test --release --features cuda --test cuda --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cuda" and m.get("executable"):
        print(m["executable"])')"
cargo build --release --features cuda --example gpu_bench 2>&1 | grep -E "^(warning|error)" || true
bench_bin="$ROOT/target/release/examples/gpu_bench"
[ -x "$test_bin" ] && [ -x "$bench_bin" ] || { echo "gpu-check.sh: build failed" >&2; exit 1; }

scripts/stub-libcuda.sh --verify "$test_bin" "$bench_bin" >/dev/null
objcopy --strip-debug "$test_bin" "$OUT/cuda-tests"
objcopy --strip-debug "$bench_bin" "$OUT/gpu_bench"
git rev-parse --short HEAD >"$OUT/COMMIT" 2>/dev/null || true
glibc="$(objdump -T "$OUT/cuda-tests" "$OUT/gpu_bench" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1)"

cat >"$OUT/run.sh" <<'RUN'
#!/usr/bin/env bash
# GPU check: the CUDA tests with REQUIRE_GPU=1 (a missing GPU fails them), then the
# GPU benchmark. Needs the NVIDIA driver (libcuda.so.1); prints a short table last.
set -uo pipefail
cd "$(dirname "$0")"
chmod +x cuda-tests gpu_bench 2>/dev/null || true
lib="$(ldd ./cuda-tests | awk '/libcuda.so.1/ {print $3}')"
if [ -z "$lib" ] || [ "$lib" = "not" ]; then echo "run.sh: no libcuda.so.1 (NVIDIA driver) on this machine"; exit 1; fi
if grep -qa "stub libcuda" "$lib"; then echo "run.sh: $lib is the STUB libcuda, not the driver: unset LD_LIBRARY_PATH"; exit 1; fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "driver library: $lib; build $(cat COMMIT 2>/dev/null)"
t0=$(date +%s)
REQUIRE_GPU=1 timeout 300 ./cuda-tests --test-threads=4 >tests.log 2>&1
tests_rc=$?
t1=$(date +%s)
grep -E "^test |panicked|GFN_TEST_SEED|identical" tests.log | grep -v " ok$" | head -60
timeout 240 ./gpu_bench >bench.log 2>&1
bench_rc=$?
t2=$(date +%s)
echo
echo "==================== GPU check ===================="
printf '%-48s %s\n' "tests (REQUIRE_GPU=1)" "$(grep -E '^test result' tests.log | tail -1) [rc $tests_rc, $((t1 - t0)) s]"
printf '%-48s %s\n' "benchmark" "rc $bench_rc, $((t2 - t1)) s"
sed -n '/^$/,$p' bench.log | sed '/^$/d'
[ "$bench_rc" = 0 ] || tail -5 bench.log
exit $((tests_rc | bench_rc))
RUN
chmod +x "$OUT/run.sh"
du -sh "$OUT" | cut -f1 | xargs echo "gpu-out/:"
ls -la "$OUT"
echo "binaries need glibc >= ${glibc#GLIBC_} on the GPU machine"
echo
echo "On the GPU machine, from the repository root (gpu-out/ carried along):"
echo
echo "    bash gpu-out/run.sh"
