#!/usr/bin/env bash
# Runs on the GPU machine, builds nothing: the CUDA tests, Kiln's GPU benchmark, and Hugging Face transformers on
# the same 1.24B Llama configuration, then prints one table. Needs .gpu/kiln-gpu.tar.xz from bench/gpu/publish.sh.
# Every step has a time limit, so one that hangs cannot spend the machine's whole loan.
# Usage: bash bench/gpu/run.sh [OUTDIR]
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${1:-${OUT:-/tmp/kiln-gpu-out}}"
mkdir -p "$out" /tmp/kiln-gpu
tar -C /tmp/kiln-gpu -xJf .gpu/kiln-gpu.tar.xz
bin=/tmp/kiln-gpu/publish
export LD_LIBRARY_PATH="/usr/local/cuda/targets/x86_64-linux/lib:/usr/local/cuda-13.0/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}"
export KILN_CUDA_CACHE=/tmp/kiln-cuda-cache DOTNET_CLI_TELEMETRY_OPTOUT=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt"

[ -n "${SKIP_TESTS:-}" ] || {
echo "== CUDA tests"
timeout 240 "$bin/Kiln.Kernels.Cuda.Tests" 2>&1 | tee -p "$out/tests.log" | grep -v "^\s*at \|^\s*Stack Trace:" | head -120
}
echo "== Kiln benchmark"
timeout 300 "$bin/Kiln.Bench.Cuda" --json "$out/kiln.json" ${KILN_BENCH_ARGS:---compare-fused --compare-tuning --long-prompt 3840 --profile --gemv-sweep} 2>&1 | tee "$out/kiln.log"
[ -n "${SKIP_Q8:-}" ] || {
echo "== Kiln benchmark, Q8 weights"
timeout 180 "$bin/Kiln.Bench.Cuda" --json "$out/kiln-q8.json" --weights q8 --no-engine 2>&1 | tee "$out/kiln-q8.log"
}
[ -n "${SKIP_HF:-}" ] && exit 0
echo "== transformers baseline"
timeout 300 python3 bench/gpu/transformers_baseline.py --json "$out/hf.json" 2>&1 | tee "$out/hf.log" | grep -v Warning
echo "== table"
python3 bench/gpu/table.py "$out/kiln.json" "$out/hf.json" | tee "$out/table.md"
[ -f "$out/kiln-q8.json" ] && python3 bench/gpu/table.py "$out/kiln-q8.json" "$out/hf.json" | tee -a "$out/table.md"
