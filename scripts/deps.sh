#!/usr/bin/env bash
# Install what gptq-c builds and tests with, from Debian bookworm's packages.
# Usage: scripts/deps.sh [build|test|hip]   (test: what the tests need; hip: the
# toolchain that compiles the HIP plugin for AMD gfx942)
set -euo pipefail
want=(meson ninja-build pkg-config gcc libc6-dev
      libopenblas-dev liblapacke-dev libomp-dev libcjson-dev libpcre2-dev libutf8proc-dev)
case "${1:-build}" in
# python3-torch: the independent PyTorch loaders (tools/load_ctensors_torch.py) the tests run
test) want+=(libcriterion-dev clang python3 python3-numpy python3-torch) ;;
hip) want+=(hipcc libamdhip64-dev rocm-device-libs clang-19 lld-19 llvm-19) ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
