#!/usr/bin/env bash
# Fuzzes qilin's file readers with libFuzzer (Debian's clang, ASan + UBSan): installs what is
# missing, builds tests/fuzz/ in build-fuzz/, replays every past finding
# (tests/fuzz/regressions/<target>/), then fuzzes each target for --seconds and prints a
# summary. Exits non-zero on any finding: a crash, a sanitizer report, a hang (-timeout), an
# allocation or RSS above 2 GB, a leak, or a regression input that fails again.
#
#   scripts/fuzz.sh                          # every target, 600 s each
#   scripts/fuzz.sh --seconds 60 fuzz_idx    # one target, one minute
#   scripts/fuzz.sh --seconds 0              # build and replay regressions + seeds only
#   scripts/fuzz.sh --minimize fuzz_idx tests/fuzz/crashes/fuzz_idx/crash-<sha1>
#
# Options: --seconds N (per target, default 600), --jobs N (fuzzing processes per target,
# default 1: leaves the other cores free; N > 1 uses libFuzzer's -fork=N).
# Raw artifacts land in tests/fuzz/crashes/<target>/ (not committed); logs and the grown
# corpora in build-fuzz/. docs/FUZZING.md records the runs and how findings become tests.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600
jobs=1
minimize=()
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --minimize) minimize=("$2" "$3"); shift 3 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

fuzz_dir=tests/fuzz
build_dir=build-fuzz
# The targets are the qilin_fuzz_target(...) lines of tests/fuzz/CMakeLists.txt.
mapfile -t all_targets < <(sed -n 's/^qilin_fuzz_target(\([a-z0-9_]*\) .*/\1/p' "$fuzz_dir/CMakeLists.txt")
((${#targets[@]})) || targets=("${all_targets[@]}")
for t in "${targets[@]}" "${minimize[@]:0:1}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || {
    echo "fuzz.sh: unknown target '$t' (targets: ${all_targets[*]})" >&2; exit 2; }
done

# ---- dependencies: qilin's own (scripts/setup.sh), then clang with libFuzzer and libomp ----
scripts/setup.sh
clang_packages=(clang libclang-rt-14-dev libomp-dev)
missing=()
for p in "${clang_packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "fuzz.sh: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# ---- build ----
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  CC=clang CXX=clang++ cmake -S "$fuzz_dir" -B "$build_dir" -G Ninja \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
fi
build_targets=("${targets[@]}")
((${#minimize[@]})) && build_targets=("${minimize[0]}")
cmake --build "$build_dir" -j "$(nproc)" --target "${build_targets[@]}"

# The readers are single-threaded; one OpenMP thread keeps each fuzzing process on one core.
export OMP_NUM_THREADS=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Findings: a hang past timeout_s, an allocation or RSS past rss_limit_mb (a corrupt header
# must never make a reader ask for gigabytes).
timeout_s=10
rss_limit_mb=2048
common_flags=(-timeout="$timeout_s" -rss_limit_mb="$rss_limit_mb" -print_final_stats=1)

if ((${#minimize[@]})); then
  target="${minimize[0]}" crash="${minimize[1]}"
  out="$fuzz_dir/regressions/$target/$(basename "$crash")-min"
  mkdir -p "$(dirname "$out")"
  "$build_dir/bin/$target" "${common_flags[@]}" -minimize_crash=1 -max_total_time=120 \
    -exact_artifact_path="$out" "$crash" || true
  [[ -f "$out" ]] || { echo "fuzz.sh: minimization produced nothing (does $crash still fail?)" >&2; exit 1; }
  echo "fuzz.sh: minimized reproducer: $out ($(stat -c %s "$out") bytes)"
  exit 0
fi

# Prints the value after "<key>" on the last line of a log that has it, e.g. "cov: 123".
last_field() {
  grep -o "$2 *[0-9/]*[0-9][a-zA-Z]*" "$1" | tail -n 1 | sed "s/^$2 *//" || true
}

findings=0
summary="$build_dir/summary.txt"
mkdir -p "$build_dir/logs"
{
  echo "qilin fuzz run $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), ${seconds}s per target, jobs $jobs"
  printf '%-20s %8s %12s %8s %8s %8s %12s  %s\n' target seconds execs exec/s cov ft corpus result
} > "$summary"

for target in "${targets[@]}"; do
  bin="$build_dir/bin/$target"
  seeds="$fuzz_dir/corpus/$target"
  regressions="$fuzz_dir/regressions/$target"
  crashes="$fuzz_dir/crashes/$target"
  corpus="$build_dir/corpus/$target"
  log="$build_dir/logs/$target.log"
  mkdir -p "$crashes" "$corpus"
  : > "$log"
  result=ok

  # Every past finding and every seed, once each: a regression fails here before fuzzing.
  replay=()
  for d in "$regressions" "$seeds"; do
    [[ -d "$d" ]] && while IFS= read -r -d '' f; do replay+=("$f"); done < <(find "$d" -type f -print0)
  done
  if ((${#replay[@]})); then
    replay_log="$build_dir/logs/$target.replay.log"
    if ! "$bin" "${common_flags[@]}" "${replay[@]}" > "$replay_log" 2>&1; then
      failed=$(sed -n 's/^Running: //p' "$replay_log" | tail -n 1)
      result="REGRESSION ${failed:-?} (log: $replay_log)"
    fi
  fi

  if [[ "$result" == ok && "$seconds" -gt 0 ]]; then
    flags=("${common_flags[@]}" -max_total_time="$seconds" -artifact_prefix="$crashes/")
    [[ -f "$fuzz_dir/$target.dict" ]] && flags+=(-dict="$fuzz_dir/$target.dict")
    ((jobs > 1)) && flags+=(-fork="$jobs")
    before=$(find "$crashes" -type f | wc -l)
    echo "fuzz.sh: $target for ${seconds}s (log: $log)"
    rc=0
    "$bin" "${flags[@]}" "$corpus" "$seeds" > "$log" 2>&1 || rc=$?
    after=$(find "$crashes" -type f | wc -l)
    if ((rc != 0 || after > before)); then
      kind=$(grep -o -m1 -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer): [a-z-]+|runtime error|fuzz_[a-z_]+: .*' "$log" || true)
      result="FINDING rc=$rc ${kind:-see log} ($crashes/)"
    fi
  fi

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null | tail -n 1)
  [[ -n "$execs" ]] || execs=$(grep -o '^#[0-9]*' "$log" 2>/dev/null | tail -n 1 | tr -d '#' || true)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" 2>/dev/null | tail -n 1)
  [[ -n "$rate" ]] || rate=$(grep -o 'exec/s:* *[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)
  cov=$(last_field "$log" 'cov:' 2>/dev/null)
  ft=$(last_field "$log" 'ft:' 2>/dev/null)
  corp=$(last_field "$log" 'corp:' 2>/dev/null)
  [[ "$result" == ok ]] || findings=$((findings + 1))
  printf '%-20s %8s %12s %8s %8s %8s %12s  %s\n' "$target" "$seconds" "${execs:--}" "${rate:--}" \
    "${cov:--}" "${ft:--}" "${corp:--}" "$result" >> "$summary"
done

cat "$summary"
if ((findings)); then
  echo "fuzz.sh: $findings target(s) with findings. A new one: minimize it (--minimize TARGET FILE)" \
       "into $fuzz_dir/regressions/TARGET/ and fix the reader; a REGRESSION: a known finding" \
       "fails again, its fix is missing (docs/FUZZING.md, Findings)" >&2
  exit 1
fi
echo "fuzz.sh: no findings"
