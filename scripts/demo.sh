#!/usr/bin/env bash
# The README's main command (until the train program exists): installs dependencies,
# builds, and runs the engine's demo, a small ViT learning Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
exec build/bin/qilin_demo "$@"
