#!/usr/bin/env bash
# Compiles Kiln's kernels to PTX with clang's CUDA device compiler (no CUDA toolkit needed) and fails if any kernel
# keeps an array in local memory. A per-thread array the compiler cannot put in registers (indexed by a value it
# cannot resolve, or whose address it must keep) lives in local memory: every access is then a memory access, in the
# hot loop of a kernel that is otherwise bound by its weight or key loads. g++ (check-kernels.sh) cannot see this;
# a device compiler's optimiser can. clang is not NVRTC, so a pass here is evidence, not proof, and a failure names
# the kernel to look at.
#
# The translation unit is built the way KernelCompiler.Source builds NVRTC's: the .cuh files first, then the .cu
# files, in ordinal order of their names.
#
# Usage: kernels/tools/check-ptx.sh [-DHEAD_DIM=64] [-DGQA_GROUP=4] [--keep DIR]
# Env:   CLANG (default: clang-14, else clang), KILN_PTX_ARCH (default sm_80: the newest clang 14 knows; the
#        kernels' Hopper-only instructions are then left out, which changes no array's placement).
# Exit:  0 if every kernel is free of local memory, 1 if not, 2 if clang is missing or the sources do not compile.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KDIR="$ROOT/kernels/Kiln.Kernels.Cuda/Kernels"
SHIM="$ROOT/kernels/tools/clang_cuda_shim.h"
CLANG="${CLANG:-$(command -v clang-14 || command -v clang || true)}"
ARCH="${KILN_PTX_ARCH:-sm_80}"
[ -n "$CLANG" ] || { echo "check-ptx: needs clang (clang-14 on Debian 12) with the NVPTX target"; exit 2; }

defines=(); keep=""
while [ $# -gt 0 ]; do
  case "$1" in --keep) keep="$2"; shift 2 ;; *) defines+=("$1"); shift ;; esac
done
case " ${defines[*]:-} " in *" -DHEAD_DIM="*) ;; *) defines+=(-DHEAD_DIM=64) ;; esac

work="${keep:-$(mktemp -d)}"; mkdir -p "$work"
[ -n "$keep" ] || trap 'rm -rf "$work"' EXIT
. "$ROOT/kernels/tools/translation-unit.sh"
write_translation_unit "$KDIR" "$work/kernels.cu"

if ! out="$("$CLANG" -x cuda --cuda-device-only --cuda-gpu-arch="$ARCH" -nocudainc -nocudalib -Xclang -target-feature -Xclang +ptx75 \
      -std=c++17 -O3 -Wno-pass-failed -include "$SHIM" "${defines[@]}" -S "$work/kernels.cu" -o "$work/kernels.ptx" 2>&1)"; then
  echo "check-ptx: clang could not compile the kernels (${defines[*]}):"; echo "$out"; exit 2
fi

# One line per kernel: its name and the bytes of local memory it reserves (0 when it has no depot).
report="$(awk '/^\.visible \.entry/ { if (name != "") print name, bytes; name = $3; sub(/\(.*/, "", name); bytes = 0 }
               /\.local .*__local_depot/ { match($0, /\[[0-9]+\]/); bytes = substr($0, RSTART + 1, RLENGTH - 2) }
               END { if (name != "") print name, bytes }' "$work/kernels.ptx")"
kernels=$(echo "$report" | grep -c .)
spilled="$(echo "$report" | awk '$2 > 0')"
if [ -n "$spilled" ]; then
  echo "check-ptx: kernels with arrays in local memory (${defines[*]}, $ARCH; bytes per thread):"
  echo "$spilled" | sed 's/^/  /'
  exit 1
fi
echo "check-ptx: all $kernels kernels keep their arrays in registers (${defines[*]}, $ARCH)"
