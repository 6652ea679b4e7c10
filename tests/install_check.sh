#!/usr/bin/env bash
# `cmake --install` puts train, qilin, the configs and the sweep plot script under a prefix,
# and the installed programs find the installed configs by name (issue 3). CTest runs this
# with the build directory; it installs into a temporary prefix and removes it.
set -euo pipefail
build_dir=$1
prefix=$(mktemp -d /tmp/qilin_install.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "install_check: $*" >&2; exit 1; }

cmake --install "$build_dir" --prefix "$prefix" > /dev/null
for f in bin/train bin/qilin share/qilin/configs/quickstart.yaml share/qilin/configs/vit_fp32.yaml \
         share/qilin/configs/README.md share/qilin/scripts/plot_sweep.py; do
  [[ -e "$prefix/$f" ]] || fail "$f was not installed"
done
# The installed copy comes before the source tree's.
"$prefix/bin/qilin" configs --format csv | grep -q "^quickstart,.*,$prefix/share/qilin/configs/quickstart.yaml$" \
  || fail "qilin configs does not list the installed quickstart.yaml"
"$prefix/bin/train" --help | grep -q "quickstart" || fail "train --help does not list the shipped configs"
# A short run of an installed config by name.
"$prefix/bin/train" --config quickstart --set run.out_dir="$prefix/runs" --set data.train_subset=256 \
  --set data.val_size=128 --set optim.epochs=1 --set optim.warmup_epochs=0 --set log.progress=lines \
  > "$prefix/log.txt" 2>&1 || { cat "$prefix/log.txt"; fail "train --config quickstart failed"; }
[[ -f "$prefix/runs/quickstart/summary.json" ]] || fail "the run wrote no summary.json"
echo "install_check: ok ($prefix)"
