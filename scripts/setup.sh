#!/usr/bin/env bash
# Installs every build, test and reference dependency of qilin from Debian packages.
# Idempotent: a no-op (no apt-get at all) when everything is already installed.
# Works as root on a fresh Debian 12 machine; uses sudo when not root.
# The CUDA toolkit (nvcc, cuBLAS, cuDNN, NCCL) is not a Debian package here: it is only
# detected and reported (DESIGN.md §3).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libopenblas-openmp-dev libhwy-dev zlib1g-dev libdnnl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libfmt-dev libcli11-dev libyaml-cpp-dev
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  python3 python3-numpy python3-torch python3-torchvision python3-matplotlib
  dataset-fashion-mnist
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} package(s): ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#packages[@]} Debian packages present"
fi

if command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  echo "setup: CUDA toolkit found: $($nvcc_bin --version | tail -n 2 | head -n 1)"
else
  echo "setup: no CUDA toolkit found (CPU build only)"
fi
