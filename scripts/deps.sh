#!/bin/bash
# deps.sh: make sure every tool the test suite needs is installed.
# As root on Debian it installs the missing packages with apt-get; otherwise
# it names exactly what is missing and fails, so no test is skipped silently.
# --demo: only what `make demo` needs; --bench adds the benchmark peers;
# --fresh adds debootstrap for `make test-fresh`.
set -euo pipefail

# command-or-file  debian-package
NEEDS=(
	"rbd ceph-common"
	"monmaptool ceph-base"
	"ceph-mon ceph-mon"
	"ceph-osd ceph-osd"
	"/usr/include/rbd/librbd.h librbd-dev"
	"/usr/include/rados/librados.h librados-dev"
	"nbdinfo libnbd-bin"
	"nbdcopy libnbd-bin"
	"nbdfuse nbdfuse"
	"fusermount3 fuse3"
	"qemu-img qemu-utils"
	"qemu-io qemu-utils"
	"qemu-nbd qemu-utils"
	"mke2fs e2fsprogs"
	"debugfs e2fsprogs"
	"fuse2fs fuse2fs"
	"mkfs.xfs xfsprogs"
	"sfdisk fdisk"
	"sgdisk gdisk"
	"/usr/sbin/qemu-ga qemu-guest-agent"
	"fsfreeze util-linux"
	"losetup mount"
	"go-md2man go-md2man"
	"/usr/bin/time time"
	"gcc gcc"
	"pkg-config pkg-config"
	"systemd-analyze systemd"
	"logrotate logrotate"
	"zsh zsh"
	"setpriv util-linux"
	"faketime faketime"
	"iptables iptables"
)
case "${1:-}" in
--demo) NEEDS=("mke2fs e2fsprogs" "cmp diffutils") ;;
--bench) NEEDS+=("borg borgbackup" "restic restic" "fio fio") ;;
--fresh) NEEDS=("debootstrap debootstrap") ;;
esac

missing=()
for need in "${NEEDS[@]}"; do
	what=${need% *} pkg=${need#* }
	if [[ $what == /* ]]; then
		[ -e "$what" ] && continue
	else
		command -v "$what" >/dev/null 2>&1 && continue
		[ -x "/usr/sbin/$what" ] && continue
	fi
	missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	echo "deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >&2
	exit 0
fi
echo "deps: missing Debian packages: ${missing[*]}" >&2
echo "deps: install them (apt-get install ${missing[*]}) or run this as root" >&2
exit 1
