#!/usr/bin/env bash
# Builds, here, what bench/gpu/run.sh runs on the GPU machine (which has no .NET): the CUDA tests and the GPU
# benchmark, published self-contained for linux-x64 into one folder, packed as .gpu/kiln-gpu.tar.xz.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .gpu/publish && mkdir -p .gpu
for project in tests/Kiln.Kernels.Cuda.Tests bench/Kiln.Bench.Cuda; do
  dotnet publish "$project" -c Release -r linux-x64 --self-contained -o .gpu/publish 2>&1 | grep -E "error|warning" && exit 1; true
done
tar -C .gpu -cJf .gpu/kiln-gpu.tar.xz publish
ls -lh .gpu/kiln-gpu.tar.xz
