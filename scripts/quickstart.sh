#!/usr/bin/env bash
# The README's main command: installs dependencies, builds, and trains the quick-start ViT
# on Fashion-MNIST (configs/quickstart.yaml) into runs/quickstart/. Extra arguments go to
# the train program, e.g. --set optim.epochs=1.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
exec build/bin/train --config quickstart "$@"
