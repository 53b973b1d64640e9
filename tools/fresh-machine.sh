#!/usr/bin/env bash
# fresh-machine.sh -- try the README's quick start as a new user would, on a brand-new Debian 12 system: a minimal
# root made with mmdebstrap, given only what the README assumes (Node.js and npm, this machine's npm and CA setup),
# the repository's files as a clone would have them (tracked and new files, with their changes; nothing ignored),
# then inside it: `npm start`, every command of its closing hint as printed, and (unless --no-test) `npm test`.
# What a developer installed by hand on this machine cannot help there.
#
#   tools/fresh-machine.sh [--no-test] [--keep] [--mirror URL]
#
# Needs root and mmdebstrap (apt-get install mmdebstrap); the Debian mirror must be reachable. The system lives under
# /var/tmp/weft-fresh.XXXXXX, in a mount namespace of its own, and is removed at the end (--keep leaves its files).
# Only processes in that namespace are ever stopped, by PID. Exit status: that of the first step that failed.
set -euo pipefail

TEST=1 KEEP=0 MIRROR=http://deb.debian.org/debian
while [ $# -gt 0 ]; do
  case "$1" in
    --no-test) TEST=0; shift ;;
    --keep) KEEP=1; shift ;;
    --mirror) MIRROR=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,12{s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "fresh-machine: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "fresh-machine: needs root (chroot, mounts, network namespaces)" >&2; exit 2; }
command -v mmdebstrap >/dev/null || { echo "fresh-machine: needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 2; }
REPO=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
NODE=$(command -v node)
NPM_DIR=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")

WORK=$(mktemp -d /var/tmp/weft-fresh.XXXXXX)
ROOT=$WORK/root
NS=$WORK/mnt.ns
say() { printf '\n=== fresh-machine: %s\n' "$*"; }

# The processes of the fresh system are those in its mount namespace (and the lab's agents, in namespaces made from
# it, which `weft lab down` stops); each was started by this script.
stop_inside() {
  local ns pid
  ns=$(stat -L -c %i "$NS" 2>/dev/null) || return 0
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "mnt:[$ns]" ] && kill -9 "$pid" 2>/dev/null || true
  done
}
cleanup() {
  set +e
  [ -e "$NS" ] && nsenter --mount="$NS" -- /bin/bash -c 'cd /root/weft 2>/dev/null && [ -x node_modules/.bin/weft ] && PATH=/usr/sbin:/usr/bin:/sbin:/bin npx weft lab down' >/dev/null 2>&1
  stop_inside
  umount "$NS" 2>/dev/null
  umount -l "$WORK" 2>/dev/null
  if [ "$KEEP" = 1 ]; then echo "fresh-machine: kept $ROOT"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
# A private mount, so that the namespace below can be bound to a file in it.
mount --bind "$WORK" "$WORK"
mount --make-private "$WORK"

say "a minimal Debian 12 (mmdebstrap, $MIRROR)"
# Twice at most: a mirror that fails once is not what this checks.
mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$ROOT" "$MIRROR" \
  || { rm -rf "$ROOT"; sleep 5; mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm "$ROOT" "$MIRROR"; }

say "what the README assumes: Node.js $("$NODE" --version) and npm, and this machine's npm and CA setup"
install -m 0755 "$NODE" "$ROOT/usr/bin/node"
mkdir -p "$ROOT/usr/lib/node_modules"
cp -a "$NPM_DIR" "$ROOT/usr/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOT/usr/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOT/usr/bin/npx"
for f in /etc/npmrc /usr/etc/npmrc /root/.npmrc /etc/ssl/certs/ca-certificates.crt /etc/resolv.conf ${NODE_EXTRA_CA_CERTS:-}; do
  [ -f "$f" ] && { mkdir -p "$ROOT$(dirname "$f")"; cp -L "$f" "$ROOT$f"; }
done
# The machine's way out, when it is set in the environment rather than in files (nothing else of it goes in).
PASS=()
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY NODE_EXTRA_CA_CERTS; do
  [ -n "${!v:-}" ] && PASS+=("$v=${!v}")
done
mkdir -p "$ROOT/root/weft"
git -C "$REPO" ls-files -z --cached --others --exclude-standard | (cd "$REPO" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$ROOT/root/weft"

# Its own mount namespace whose root *is* the fresh system (pivot_root, not chroot): `ip netns` and the lab's
# `nsenter --mount` reset a process's root to its namespace's root, which a chroot would let escape to the host.
touch "$NS"
unshare --mount="$NS" --propagation private -- /bin/sh -euc '
  mount --bind "$1" "$1"
  mount -t proc proc "$1/proc"
  mount -t sysfs sysfs "$1/sys"
  mount --rbind /dev "$1/dev"
  mount -t tmpfs -o mode=0755 tmpfs "$1/run"
  mount -t tmpfs -o mode=1777 tmpfs "$1/tmp"
  cd "$1" && mkdir -p .host && pivot_root . .host && umount -l /.host && rmdir /.host
' fresh "$ROOT"
# /boot and /lib/modules of the host are what a VM suite would boot; the quick start never needs them.

inside() { nsenter --mount="$NS" -- /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb "${PASS[@]}" /bin/bash -c "cd /root/weft && $1"; }

say "npm start"
if ! inside 'npm start' | tee "$ROOT/quickstart.log"; then
  say "npm start failed; the agents' last log lines"
  inside 'for n in $(ls /run/weft-lab/lab 2>/dev/null); do [ -f /run/weft-lab/lab/$n/agent.log ] && { echo "--- $n"; tail -n 5 /run/weft-lab/lab/$n/agent.log; }; done' || true
  exit 1
fi
mapfile -t HINT < <(sed -n '/^weft quickstart: the lab is up. Try:$/,$p' "$ROOT/quickstart.log" | tail -n +2 | sed -E 's/[[:space:]]+#.*$//; s/^[[:space:]]+//' | grep -v '^$')
[ "${#HINT[@]}" -gt 0 ] || { echo "fresh-machine: npm start printed no hint" >&2; exit 1; }
for line in "${HINT[@]}"; do
  say "$line"
  read -r -a argv <<<"$line"
  inside "$(printf '%q ' "${argv[@]}")"
done

if [ "$TEST" = 1 ]; then
  say "npm test"
  inside 'npm test'
fi
say "done: the quick start works on a fresh Debian 12"
