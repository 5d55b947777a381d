#!/usr/bin/env bash
# Installs NVRTC without a GPU or the CUDA toolkit, so check-nvrtc.sh, its test and `kiln kernels` compile Kiln's
# kernels with the real compiler: Debian 12's libnvrtc11.2 (NVRTC of CUDA 11.8: sm_70 to sm_90), from Debian's
# non-free component, which this adds to apt's sources (bookworm only). Needs root. Optional: every check that
# needs NVRTC skips, saying so, without it.
set -eu
if ls /usr/lib/x86_64-linux-gnu/libnvrtc.so.* > /dev/null 2>&1; then
  echo "install-nvrtc: already installed: $(ls /usr/lib/x86_64-linux-gnu/libnvrtc.so.* | head -1)"; exit 0
fi
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] || { echo "install-nvrtc: written for Debian 12 (bookworm); this is ${PRETTY_NAME:-unknown}: install CUDA's NVRTC instead"; exit 2; }
cat > /etc/apt/sources.list.d/kiln-nvrtc.sources <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libnvrtc11.2
echo "install-nvrtc: installed $(ls /usr/lib/x86_64-linux-gnu/libnvrtc.so.11.*)"
