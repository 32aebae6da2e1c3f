#!/usr/bin/env bash
# Installs what graft needs on Debian 12 (the CUDA toolkit is expected at /usr/local/cuda, optional).
# Fast when everything is already there: it only calls apt-get for missing packages.
set -euo pipefail
packages=(cmake g++ make libhdf5-dev libopenblas-dev libcli11-dev libstb-dev libgtest-dev libbenchmark-dev
          python3-torchvision python3-h5py python3-numpy dataset-fashion-mnist
          clang libclang-rt-14-dev llvm-14)  # the sanitizer + libFuzzer stage (tools/ci_sanitize.sh)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install_deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
