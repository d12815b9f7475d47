#!/bin/bash
# test-fresh.sh: proves that `make demo` works as the first command on a
# fresh Debian 12 (bookworm) machine with only Go, make and a C compiler,
# without trusting any package installed on this host: it debootstraps a
# bookworm chroot from the mirror apt is configured with, copies the Go
# toolchain (/usr/local/go, where Go comes from on these machines) into it,
# clones this repository's HEAD into it and runs `make demo` there as root.
# Slow (a few minutes): `make test-fresh`, not part of `make test`.
# BACKY_FRESH_KEEP=1 keeps the chroot for a look afterwards. The downloaded
# packages are kept in BACKY_FRESH_CACHE (default /var/cache/backy-fresh;
# debootstrap checks them against the archive's signatures every time), so a
# second run does not fetch them again. The chroot trusts the certificate
# authorities the host trusts (/etc/ssl/certs/ca-certificates.crt), so that
# Go can fetch modules where the network inspects TLS.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "test-fresh: needs root (debootstrap, chroot, mounts)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "test-fresh: debootstrap missing (scripts/deps.sh --fresh installs it)" >&2; exit 1; }
goroot=${GOROOT_FRESH:-/usr/local/go}
[ -x "$goroot/bin/go" ] || { echo "test-fresh: no Go toolchain in $goroot" >&2; exit 1; }

# The mirror apt uses here: the first Debian URI of sources.list(.d).
mirror=$({ grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list || true; } |
	grep -v security | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '/debian/ {print $1; exit}')
[ -n "$mirror" ] || { echo "test-fresh: found no Debian mirror in /etc/apt/sources.list*" >&2; exit 1; }

root=$(mktemp -d /var/tmp/backy-fresh.XXXXXX)
mounts=()
cleanup() {
	local i
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
		umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" || true
	done
	if findmnt -rn -o TARGET | grep -q "^$root"; then
		echo "test-fresh: mounts left under $root; not removing it" >&2
		return
	fi
	[ -n "${BACKY_FRESH_KEEP:-}" ] && { echo "test-fresh: kept $root" >&2; return; }
	rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mnt() { mount "$@"; mounts+=("${@: -1}"); }

t0=$(date +%s)
echo "test-fresh: debootstrap bookworm (minbase + make, gcc, git) from $mirror into $root"
cache=${BACKY_FRESH_CACHE:-/var/cache/backy-fresh}
mkdir -p "$cache"
debootstrap --cache-dir="$cache" --variant=minbase --include=make,gcc,libc6-dev,git,ca-certificates \
	bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
	{ tail -20 "$root.debootstrap.log" >&2; rm -f "$root.debootstrap.log"; exit 1; }
rm -f "$root.debootstrap.log"
t1=$(date +%s)
echo "test-fresh: chroot ready in $((t1 - t0))s; copying Go from $goroot"
mkdir -p "$root/usr/local"
cp -a "$goroot" "$root/usr/local/go"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
git clone -q --no-hardlinks "$repo" "$root/root/backy"
git -C "$root/root/backy" checkout -q "$(git -C "$repo" rev-parse HEAD)"
mnt -t proc proc "$root/proc"
mnt -t sysfs sysfs "$root/sys"
mnt --bind /dev "$root/dev"
mnt --bind /dev/pts "$root/dev/pts"

echo "test-fresh: in the chroot: cd backy && make demo"
t2=$(date +%s)
env -i HOME=/root TERM=dumb PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	chroot "$root" /bin/sh -c 'cd /root/backy && make demo' </dev/null
t3=$(date +%s)
echo "test-fresh: make demo passed in a fresh bookworm chroot in $((t3 - t2))s (debootstrap $((t1 - t0))s, all $((t3 - t0))s)"
