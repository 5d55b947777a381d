# Sourced by the kernel checks: writes Kiln's kernels as the one translation unit KernelCompiler.Source gives NVRTC,
# the .cuh files first, then the .cu files, each in ordinal order of their names.
# Usage: write_translation_unit KERNELS_DIR OUT_FILE
write_translation_unit() {
  local dir="$1" out="$2" f
  : > "$out"
  for f in $(cd "$dir" && LC_ALL=C ls *.cuh) $(cd "$dir" && LC_ALL=C ls *.cu); do
    printf '// ---- %s\n' "$f" >> "$out"; cat "$dir/$f" >> "$out"; printf '\n' >> "$out"
  done
}
