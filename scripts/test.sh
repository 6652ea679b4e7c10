#!/usr/bin/env bash
# The README's test command: installs dependencies, builds (Release), runs the whole test
# suite, then builds with AddressSanitizer + UndefinedBehaviorSanitizer (Debug) and runs the
# suite again. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
jobs=$(nproc)

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

if [[ "${QILIN_SKIP_SANITIZE:-0}" != "1" ]]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DQILIN_SANITIZE=ON \
        -DQILIN_BUILD_BENCH=OFF
  cmake --build build-asan -j "$jobs"
  # OpenMP's runtime keeps thread-local buffers alive at exit: not leaks of ours.
  ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs"
fi
