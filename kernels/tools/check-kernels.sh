#!/usr/bin/env bash
# CPU-side syntax/type check of the NVRTC kernel sources (no CUDA toolkit needed).
# g++ -fsyntax-only against kernels/tools/cuda_shim.h, mimicking NVRTC: no
# standard headers (-nostdinc), no <cstdint> types, no INFINITY macro.
#
# Kiln compiles the Kernels folder as ONE translation unit: common.cuh (and any
# other *.cuh) first, then the .cu files. So this script checks
#   1. each .cu on its own, with the *.cuh files pre-included (localised errors;
#      also flags a .cu that leans on helpers from another .cu), and
#   2. all *.cuh + all *.cu (sorted by name) as one TU (duplicate definitions).
#
# Usage: kernels/tools/check-kernels.sh [FILE.cu ...] [-DNAME=VALUE ...]
#   no FILE args -> every kernels/Kiln.Kernels.Cuda/Kernels/*.cu, plus the one-TU check
#   FILE args    -> just those (the folder's *.cuh pre-included only for files in it)
#   extra -D/-U/-W args go to g++ (a -DHEAD_DIM=... replaces the default 64)
# Env:  CXX (default g++), KILN_CHECK_WERROR=1 (warnings fail too),
#       KILN_CHECK_ALLOW_INFINITY=1 (let the shim define INFINITY).
# Exit: 0 if everything passes (or there is nothing to check), 1 otherwise.
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KDIR="$ROOT/kernels/Kiln.Kernels.Cuda/Kernels"
SHIM="$ROOT/kernels/tools/cuda_shim.h"
CXX="${CXX:-g++}"

files=(); extra=()
for a in "$@"; do
  case "$a" in -*) extra+=("$a") ;; *) files+=("$(cd "$(dirname "$a")" && pwd)/$(basename "$a")") ;; esac
done
shopt -s nullglob
whole=0; [ ${#files[@]} -eq 0 ] && { files=("$KDIR"/*.cu); whole=1; }
# Headers NVRTC sees first: common.cuh, then any other *.cuh, by name.
headers=()
[ -f "$KDIR/common.cuh" ] && headers+=("$KDIR/common.cuh")
for h in "$KDIR"/*.cuh; do [ "$h" != "$KDIR/common.cuh" ] && headers+=("$h"); done
if [ ${#files[@]} -eq 0 ]; then
  echo "check-kernels: no .cu files found in ${KDIR#"$ROOT"/}/"
  exit 0
fi

flags=(-std=c++17 -fsyntax-only -Wall -Wno-unused -Wno-unknown-pragmas
       -nostdinc -nostdinc++ -DKILN_NVRTC -include "$SHIM")
case " ${extra[*]:-} " in *" -DHEAD_DIM="*) ;; *) flags+=(-DHEAD_DIM=64) ;; esac
[ "${KILN_CHECK_WERROR:-0}" = 1 ] && flags+=(-Werror)
[ "${KILN_CHECK_ALLOW_INFINITY:-0}" = 1 ] && flags+=(-DKILN_SHIM_INFINITY)
flags+=("${extra[@]}")
pre=(); for h in "${headers[@]}"; do pre+=(-include "$h"); done

fail=0
report() {  # report NAME RC OUTPUT
  if [ "$2" -eq 0 ]; then
    if [ -n "$3" ]; then echo "OK   $1 (warnings)"; echo "$3" | sed 's/^/     /'; else echo "OK   $1"; fi
  else
    echo "FAIL $1"; echo "$3" | sed 's/^/     /'; fail=1
  fi
}

for f in "${files[@]}"; do
  p=(); case "$f" in "$KDIR"/*) p=("${pre[@]}") ;; esac  # .cuh only for files of the folder
  out="$("$CXX" "${flags[@]}" "${p[@]}" -x c++ "$f" 2>&1)"; rc=$?
  report "${f#"$ROOT"/}" $rc "$out"
done

# Whole folder as one translation unit, as NVRTC gets it.
if [ $whole = 1 ] && { [ ${#files[@]} -gt 1 ] || [ ${#headers[@]} -gt 0 ]; }; then
  tu="$(mktemp --suffix=.cu)"
  for f in "${headers[@]}" "${files[@]}"; do printf '#include "%s"\n' "$f"; done > "$tu"
  out="$("$CXX" "${flags[@]}" -x c++ "$tu" 2>&1)"; rc=$?
  rm -f "$tu"
  report "<all ${#headers[@]} .cuh + ${#files[@]} .cu as one TU>" $rc "$out"
fi

if [ $fail -eq 0 ]; then echo "check-kernels: all OK"; else echo "check-kernels: FAILURES"; fi
exit $fail
