#!/usr/bin/env bash
# Compiles Kiln's kernels with the real NVRTC, as the CUDA backend does at warm-up, on a machine without a GPU, and
# fails on any error or warning. NVRTC is a library, not a GPU: CUDA's libnvrtc.so.13 or .12, or Debian 12's
# libnvrtc11.2 (CUDA 11.8, from non-free: kernels/tools/install-nvrtc.sh) serve. Its ptxas reports each kernel's
# registers, stack frame and spills, printed as a table: what the GPU will run, where check-ptx.sh (clang) and
# check-kernels.sh (g++) see only the source.
#
# The options are KernelCompiler.Compile's (-default-device, C++17, -DKILN_NVRTC, the shape's defines) plus
# -Xptxas -v for the report.
#
# Usage: kernels/tools/check-nvrtc.sh [--arch sm_90] [-DHEAD_DIM=64] [-DGQA_GROUP=4] [--all] [--keep DIR]
#        --all lists every kernel; without it only those with a stack frame or spills, and the largest register count.
# Env:   NVRTC (a libnvrtc to use; default: the first found where CudaLibraries looks), CC (default cc).
# Exit:  0 compiled without warnings, 1 NVRTC refused the source or warned, 2 no NVRTC or no C compiler.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KDIR="$ROOT/kernels/Kiln.Kernels.Cuda/Kernels"
CC="${CC:-cc}"

arch=sm_90; defines=(); keep=""; all=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    --all) all=1; shift ;;
    *) defines+=("$1"); shift ;;
  esac
done
case " ${defines[*]:-} " in *" -DHEAD_DIM="*) ;; *) defines+=(-DHEAD_DIM=64) ;; esac

find_nvrtc() {
  local folder name
  for folder in ${CUDA_PATH:+"$CUDA_PATH/targets/x86_64-linux/lib" "$CUDA_PATH/lib64"} \
                /usr/local/cuda{,-13.0,-13,-12.9,-12.8,-12}/{targets/x86_64-linux/lib,lib64} /usr/lib/x86_64-linux-gnu; do
    for name in libnvrtc.so.13 libnvrtc.so.12 libnvrtc.so.11.2; do
      [ -e "$folder/$name" ] && { echo "$folder/$name"; return; }
    done
  done
}
nvrtc="${NVRTC:-$(find_nvrtc)}"
[ -n "$nvrtc" ] && [ -e "$nvrtc" ] || { echo "check-nvrtc: needs NVRTC (CUDA's libnvrtc, or on Debian 12 kernels/tools/install-nvrtc.sh)"; exit 2; }
command -v "$CC" > /dev/null || { echo "check-nvrtc: needs a C compiler ($CC) to build its NVRTC driver"; exit 2; }

work="${keep:-$(mktemp -d)}"; mkdir -p "$work"
[ -n "$keep" ] || trap 'rm -rf "$work"' EXIT
. "$ROOT/kernels/tools/translation-unit.sh"
write_translation_unit "$KDIR" "$work/kernels.cu"
"$CC" -O1 -o "$work/nvrtc_compile" "$ROOT/kernels/tools/nvrtc_compile.c" -ldl || exit 2

"$work/nvrtc_compile" "$nvrtc" "$work/kernels.cu" "--gpu-architecture=$arch" --std=c++17 -default-device -DKILN_NVRTC \
  "${defines[@]}" -Xptxas -v > "$work/log.txt" 2>&1
status=$?
version="$(head -1 "$work/log.txt")"
what="${defines[*]}, $arch, $version from $nvrtc"
if [ $status -ne 0 ]; then
  echo "check-nvrtc: NVRTC could not compile the kernels ($what):"; grep -v '^ptxas' "$work/log.txt"; exit "$status"
fi

# ptxas -v gives, per function: "Function properties for NAME", its stack and spills, then "Used N registers".
# Functions NVRTC adds (the float64 sin/cos's argument reduction, __internal_*) are not kernels.
awk '/Function properties for/ { name = $NF }
     /bytes stack frame/ { stack[name] = $3; stores[name] = $(NF - 7); loads[name] = $(NF - 3) }
     /Used [0-9]+ registers/ { for (i = 1; i <= NF; i++) if ($i == "Used") regs[name] = $(i + 1) }
     END { for (n in regs) if (n !~ /^__internal/) printf "%-32s %4d %6d %6d %6d\n", n, regs[n], stack[n], stores[n], loads[n] }' \
  "$work/log.txt" | LC_ALL=C sort > "$work/kernels.txt"
kernels=$(grep -c . "$work/kernels.txt")
header="$(printf '  %-32s %4s %6s %6s %6s' kernel regs stack spill+ spill-)"
if [ "$all" = 1 ]; then
  echo "$header"; sed 's/^/  /' "$work/kernels.txt"
else
  notable="$(awk '$3 > 0 || $4 > 0 || $5 > 0' "$work/kernels.txt")"
  [ -z "$notable" ] || { echo "$header  (bytes a thread: stack frame, spill stores, spill loads)"; echo "$notable" | sed 's/^/  /'; }
  sort -k2,2n "$work/kernels.txt" | tail -1 | awk '{ printf "  most registers: %s, %d\n", $1, $2 }'
fi

# A warning is printed once per template instance: the distinct ones, counted, then the first in full.
warnings="$(grep -i ': warning' "$work/log.txt" | LC_ALL=C sort | uniq -c || true)"
if [ -n "$warnings" ]; then
  echo "check-nvrtc: NVRTC warned ($what):"; echo "$warnings"
  grep -i -m1 -A3 ': warning' "$work/log.txt"; exit 1
fi
echo "check-nvrtc: all $kernels kernels compiled without warnings ($what)"
