#!/usr/bin/env bash
# Proves "from a fresh clone on a machine with nothing installed, the README's commands
# install, build and pass": builds a minimal Debian 12 (bookworm, debootstrap minbase)
# chroot, clones the repository's committed HEAD into it, and runs the README's two
# commands there, timed: scripts/test.sh, then scripts/quickstart.sh.
#
# Run as root on a Debian host. The chroot has no CUDA toolkit, so this is a CPU build.
#
#   scripts/chroot_check.sh [--dir DIR] [--fresh] [--log FILE] [--mirror URL]
#                           [--shared DIR] [--no-nice] [--main-args "ARGS"]
#
#   --dir DIR        where the chroot lives (default /var/tmp/qilin-chroot; ~3-5 GB once
#                    the packages are in)
#   --fresh          delete DIR and debootstrap it again. Without it an existing chroot is
#                    reused, and the packages setup.sh installed last time are still there:
#                    only a run on a fresh chroot proves "nothing installed".
#   --log FILE       full output (default DIR.log, beside the chroot)
#   --mirror URL     Debian mirror (default: the host's apt sources' bookworm mirror)
#   --shared DIR     copied to /root/shared beside the checkout (default ../shared)
#   --no-nice        do not run the chroot commands under nice -n 19
#   --main-args ARGS passed to scripts/quickstart.sh (word-split), e.g.
#                    "--set optim.epochs=1" for a shorter run
#
# Exits non-zero if the chroot cannot be set up or if either command fails.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=/var/tmp/qilin-chroot
fresh=0
log=""
mirror=""
shared="$repo/../shared"
nice_cmd=(nice -n 19)
main_args=""

while (($#)); do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --fresh) fresh=1; shift ;;
    --log) log="$2"; shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --shared) shared="$2"; shift 2 ;;
    --no-nice) nice_cmd=(); shift ;;
    --main-args) main_args="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "chroot_check: unknown argument: $1" >&2; exit 2 ;;
  esac
done

die() { echo "chroot_check: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, chroot, mount)"
dir=$(realpath -m "$dir")
case "$dir" in
  /|/bin*|/boot*|/dev*|/etc*|/lib*|/proc*|/sbin*|/sys*|/usr*|/var|/root|/home|/work)
    die "refusing to use $dir as the chroot directory" ;;
esac
[[ -n "$log" ]] || log="$dir.log"
shared=$(realpath "$shared") || die "no shared directory at $shared"

say() { echo "== chroot_check [$(date -u +%H:%M:%S)] $*" | tee -a "$log"; }

# ---- the host's Debian mirror ----------------------------------------------------------
# The first bookworm (not -security) URI in the enabled apt sources, deb822 or one-line.
host_uri() {  # $1: suite regex
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk -v re="$1" '
      /^[[:space:]]*$/ { if (uri != "" && suites ~ re) { print uri; exit } uri=""; suites=""; next }
      /^URIs:/ { uri=$2 }
      /^Suites:/ { suites=$0 }
      END { if (uri != "" && suites ~ re) print uri }' "$f" | head -n 1
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    sed -e 's/\[[^]]*\]//' "$f" | awk -v re="$1" '$1 == "deb" && $3 ~ re { print $2; exit }'
  done
}
if [[ -z "$mirror" ]]; then
  mirror=$(host_uri '(^|[[:space:]])bookworm([[:space:]]|$)' | head -n 1)
  [[ -n "$mirror" ]] || mirror=http://deb.debian.org/debian
fi
security=$(host_uri 'bookworm-security' | head -n 1)

# ---- mounts: set up, and always torn down -----------------------------------------------
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
  done
  mounted=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Anything still mounted under the chroot (a run that was killed hard): unmount it.
unmount_stale() {
  local m
  while read -r m; do
    [[ -n "$m" ]] && { umount "$m" 2>/dev/null || umount -l "$m"; }
  done < <(findmnt -rn -o TARGET | awk -v d="$dir" 'index($0, d "/") == 1' | sort -r)
}

mkdir -p "$(dirname "$dir")"
: > "$log"
commit=$(git -C "$repo" rev-parse HEAD)
say "commit $commit ($(git -C "$repo" log -1 --format=%s HEAD))"
say "chroot $dir, mirror $mirror${security:+, security $security}, log $log"

# ---- debootstrap ------------------------------------------------------------------------
if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap on the host"
  DEBIAN_FRONTEND=noninteractive apt-get update -q 2>&1 | tee -a "$log"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap 2>&1 | tee -a "$log"
fi

unmount_stale
if ((fresh)) && [[ -e "$dir" ]]; then
  say "--fresh: removing the old chroot"
  if findmnt -rn -o TARGET | awk -v d="$dir" 'index($0, d "/") == 1' | grep -q .; then
    die "something is still mounted under $dir; not deleting it"
  fi
  rm -rf --one-file-system "$dir"
fi

created=0
debootstrap_s=0
if [[ ! -x "$dir/usr/bin/apt-get" ]]; then
  rm -rf --one-file-system "$dir"
  say "debootstrap --variant=minbase bookworm $dir $mirror"
  t0=$(date +%s)
  set +e
  debootstrap --variant=minbase bookworm "$dir" "$mirror" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  set -e
  ((rc == 0)) || die "debootstrap failed (exit $rc), see $log"
  debootstrap_s=$(($(date +%s) - t0))
  created=1
else
  say "reusing the existing chroot (pass --fresh to start from nothing)"
fi

# ---- apt inside: the host's mirror, network settings and proxy ----------------------------
cp -L /etc/resolv.conf "$dir/etc/resolv.conf"
rm -f "$dir/etc/apt/sources.list"
{
  printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$mirror"
  printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  if [[ -n "$security" ]]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' "$security"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  fi
} > "$dir/etc/apt/sources.list.d/debian.sources"
# Host apt settings that concern reaching the mirror (proxy, snapshot-style Valid-Until),
# not what is installed.
for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
  [[ -f "$f" ]] || continue
  if grep -Eqi 'Acquire::(https?::)?Proxy|Acquire::Check-(Valid-Until|Date)|Acquire::https?::Proxy' "$f"; then
    mkdir -p "$dir/etc/apt/apt.conf.d"
    dest="$dir/etc/apt/apt.conf.d/$(basename "$f")"
    [[ "$f" == /etc/apt/apt.conf ]] && dest="$dir/etc/apt/apt.conf.d/00host-apt-conf"
    cp "$f" "$dest"
    say "copied apt setting $f"
  fi
done
# No daemons start inside the chroot.
printf '#!/bin/sh\nexit 101\n' > "$dir/usr/sbin/policy-rc.d"
chmod 755 "$dir/usr/sbin/policy-rc.d"

for m in proc sys dev dev/pts dev/shm; do
  mkdir -p "$dir/$m"
  mount --bind "/$m" "$dir/$m"
  mounted+=("$dir/$m")
done

# ---- the committed HEAD, and ../shared beside it ----------------------------------------
rm -rf --one-file-system "$dir/root/qilin" "$dir/root/shared"
git clone -q "$repo" "$dir/root/qilin" 2>&1 | tee -a "$log"
git -C "$dir/root/qilin" checkout -q "$commit"
cp -a "$shared" "$dir/root/shared"
say "cloned $commit into /root/qilin; copied $shared to /root/shared"

in_chroot() {
  chroot "$dir" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "${nice_cmd[@]}" /bin/bash -c "$1"
}
count_pkgs() { in_chroot "dpkg-query -W -f='\${db:Status-Abbrev}\n' | grep -c '^ii'"; }

pkgs_before=$(count_pkgs)
say "packages installed in the chroot before: $pkgs_before"

run_timed() {  # $1: label, $2: command inside /root/qilin; sets rc_<label>, s_<label>
  local t0 rc
  say "running $2"
  t0=$(date +%s)
  set +e
  in_chroot "cd /root/qilin && $2" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  set -e
  printf -v "rc_$1" %d "$rc"
  printf -v "s_$1" %d "$(($(date +%s) - t0))"
  say "$2: exit $rc, $(($(date +%s) - t0)) s"
}

run_timed test "scripts/test.sh"
pkgs_after=$(count_pkgs)
run_timed main "scripts/quickstart.sh${main_args:+ $main_args}"

size=$(du -sh --one-file-system "$dir" | cut -f1)
# When setup.sh's apt-get install ran (the last one in the chroot's apt history).
apt_span=""
((pkgs_after == pkgs_before)) || apt_span=$(awk '/^Start-Date:/ { s = $2 " " $3 } /^End-Date:/ { e = $3 } END { if (s != "") print s " to " e }' \
  "$dir/var/log/apt/history.log" 2>/dev/null || true)
{
  echo
  echo "== chroot_check summary"
  echo "commit:        $commit"
  echo "chroot:        $dir ($([[ $created == 1 ]] && echo "fresh debootstrap, ${debootstrap_s} s" || echo reused)), $size"
  echo "packages:      $pkgs_before before, $pkgs_after after scripts/test.sh ($((pkgs_after - pkgs_before)) installed)"
  echo "apt install:   ${apt_span:-none this run} (UTC, inside scripts/test.sh's setup step)"
  echo "scripts/test.sh: exit $rc_test, ${s_test} s"
  echo "scripts/quickstart.sh: exit $rc_main, ${s_main} s"
  echo "log:           $log"
} | tee -a "$log"

((rc_test == 0 && rc_main == 0))
