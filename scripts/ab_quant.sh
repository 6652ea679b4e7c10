#!/usr/bin/env bash
# A/B of the quant kernels in one process: kernels/cpu/quant.cpp as it is in the working tree
# against the same file at REV, renamed into namespace qilin::kernels::cpu_old and linked
# beside it (bench/ab_quant.cpp times both in interleaved rounds; > 1 means the working tree
# is faster). The figures in docs/PERFORMANCE.md marked "A/B in one process" on the quant
# kernels come from this comparison.
#
#   scripts/ab_quant.sh REV [ab_quant options]
#   scripts/ab_quant.sh HEAD~1                                   # 1 thread, 16 KB and 512 KB
#   scripts/ab_quant.sh HEAD~1 --threads 2 --sizes 262144 --rows 256   # a 1 MB weight per channel
#   taskset -c 0,1 scripts/ab_quant.sh b61a719 --threads 2 --sizes 5000000
#
# Needs the Release build in build/ (scripts/test.sh or cmake); rebuilds the libraries it
# links. REV's quant.cpp must declare the same four entry points (the file's layout since
# 2026-11-27: namespace qilin::kernels::cpu, its HWY_NAMESPACE and quant_detail).
set -euo pipefail
cd "$(dirname "$0")/.."

if (($# < 1)) || [[ "$1" == -* ]]; then
  sed -n '2,16p' "$0"
  exit 2
fi
rev="$1"
shift

git rev-parse --verify --quiet "$rev^{commit}" >/dev/null || {
  echo "ab_quant.sh: $rev is not a commit" >&2
  exit 2
}
[[ -f build/build.ninja ]] || {
  echo "ab_quant.sh: no build/ (configure the Release build first: scripts/test.sh)" >&2
  exit 2
}
ninja -C build qilin_base qilin_core qilin_kernels >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The old header and file in their own namespace: the header's include, the include guard,
# the self-include that foreach_target.h re-reads per SIMD target, and the namespaces;
# parallel_for stays the current one.
git show "$rev:kernels/cpu/quant.h" |
  sed -e 's/^namespace qilin::kernels::cpu {/namespace qilin::kernels::cpu_old {/' \
      -e 's/^}  \/\/ namespace qilin::kernels::cpu\b/}  \/\/ namespace qilin::kernels::cpu_old/' \
      >"$work/quant_old.h"
git show "$rev:kernels/cpu/quant.cpp" |
  sed -e 's#"kernels/cpu/quant.cpp"#"quant_old.cpp"#' \
      -e 's#"kernels/cpu/quant.h"#"quant_old.h"#' \
      -e 's/QILIN_KERNELS_CPU_QUANT_ONCE/QILIN_KERNELS_CPU_QUANT_OLD_ONCE/g' \
      -e 's/^namespace qilin::kernels::cpu::quant_detail {/namespace qilin::kernels::cpu_old::quant_detail {\nusing qilin::kernels::cpu::parallel_for;/' \
      -e 's/^namespace qilin::kernels::cpu {/namespace qilin::kernels::cpu_old {\nusing qilin::kernels::cpu::parallel_for;/' \
      -e 's/^}  \/\/ namespace qilin::kernels::cpu\b/}  \/\/ namespace qilin::kernels::cpu_old/' \
      >"$work/quant_old.cpp"
grep -q 'namespace qilin::kernels::cpu_old {' "$work/quant_old.cpp" &&
  grep -q 'namespace qilin::kernels::cpu_old {' "$work/quant_old.h" || {
  echo "ab_quant.sh: $rev's kernels/cpu/quant.h or quant.cpp does not have the expected namespaces" >&2
  exit 2
}

flags=(-O3 -DNDEBUG -march=x86-64-v3 -fopenmp -DHWY_SHARED_DEFINE -std=c++17 -I"$work" -I.)
g++ "${flags[@]}" -c "$work/quant_old.cpp" -o "$work/quant_old.o"
g++ "${flags[@]}" bench/ab_quant.cpp "$work/quant_old.o" build/core/libqilin_core.a \
  build/kernels/libqilin_kernels.a build/core/libqilin_base.a -lhwy -o "$work/ab_quant"
echo "ab_quant: working tree ($(git rev-parse --short HEAD)$(git diff --quiet -- kernels/cpu/quant.cpp || echo ' + changes')) against $rev"
"$work/ab_quant" "$@"
