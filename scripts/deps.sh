#!/bin/bash
# deps.sh: make sure every tool the test suite needs is installed.
# As root on Debian it installs the missing packages with apt-get; otherwise
# it names exactly what is missing and fails, so no test is skipped silently.
# --demo: only what `make demo` needs; --bench adds the benchmark peers;
# --fresh adds debootstrap for `make test-fresh`.
# The default (what make test and CI run) also builds the fuse2fs that
# backy-nbd mount prefers (below, build_fuse2fs) when it is not there yet;
# --fuse2fs does only that, with the packages it needs (for a backup
# server that runs backy-nbd mount).
set -euo pipefail

# fuse2fs from e2fsprogs 1.47.4 (Debian's orig tarball; its sha256 is the one
# in Debian's signed e2fsprogs_1.47.4-1.dsc) with one patch (build_fuse2fs),
# built against libfuse2 so that it takes -o direct_io, and installed
# beside, not over, Debian's own /usr/bin/fuse2fs: a damaged chunk then
# reaches the reader of a file on it as EIO (pkg/nbdmount/fuse2fs.go,
# docs/nbd.md). BACKY_E2FSPROGS_URL replaces the download (a mirror, or a
# file:// URL of the same tarball).
E2FS_VERSION=1.47.4
E2FS_PATCHED=$E2FS_VERSION-backy1 # what its --version says
E2FS_SHA256=2cec05f39c20ee621f14926195664e66e6017190ac8e4bbdb16d86082e43c5da
E2FS_URL=${BACKY_E2FSPROGS_URL:-http://deb.debian.org/debian/pool/main/e/e2fsprogs/e2fsprogs_${E2FS_VERSION}.orig.tar.gz}
FUSE2FS=/usr/local/lib/backy/fuse2fs-${E2FS_PATCHED}/fuse2fs

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
	# to build fuse2fs (build_fuse2fs)
	"curl curl"
	"make make"
	"/usr/include/fuse/fuse.h libfuse-dev"
)
case "${1:-}" in
--demo) NEEDS=("mke2fs e2fsprogs" "cmp diffutils") ;;
--bench) NEEDS+=("borg borgbackup" "restic restic" "fio fio") ;;
--fresh) NEEDS=("debootstrap debootstrap") ;;
--fuse2fs) NEEDS=("curl curl" "make make" "gcc gcc" "pkg-config pkg-config" "/usr/include/fuse/fuse.h libfuse-dev" "fusermount3 fuse3") ;;
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
if [ ${#missing[@]} -gt 0 ]; then
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "deps: installing ${missing[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq "${missing[@]}" >&2
	else
		echo "deps: missing Debian packages: ${missing[*]}" >&2
		echo "deps: install them (apt-get install ${missing[*]}) or run this as root" >&2
		exit 1
	fi
fi

# build_fuse2fs builds fuse2fs alone (the libraries it links statically,
# then misc/fuse2fs; about 30 CPU-seconds) in a temporary directory.
# configure prefers libfuse3 when its pkg-config file is there, and
# libfuse 3.14 (bookworm's) has no direct_io option, so pkg-config is
# pointed at nothing: configure then takes libfuse2, as Debian's fuse2fs
# does. The patch: a read error is no longer noted in the superblock of a
# file system opened read-only. fuse2fs writes that note through its
# read-only device; the write fails (EBADF) and leaves the block dirty in
# unix_io's cache, where every later attempt to reuse its slot fails again:
# after one damaged read, every cache miss failed with "Bad file
# descriptor". Its version becomes $E2FS_PATCHED, which is how
# backy-nbd mount knows it.
build_fuse2fs() {
	[ -x "$FUSE2FS" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing $FUSE2FS (fuse2fs $E2FS_VERSION built from source): run this as root" >&2
		exit 1
	fi
	echo "deps: building fuse2fs $E2FS_PATCHED into $FUSE2FS" >&2
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	curl -fsS --retry 3 -o "$tmp/e2fsprogs.tar.gz" "$E2FS_URL"
	if ! echo "$E2FS_SHA256  $tmp/e2fsprogs.tar.gz" | sha256sum -c --quiet - >/dev/null 2>&1; then
		echo "deps: $E2FS_URL: sha256 is not $E2FS_SHA256" >&2
		exit 1
	fi
	tar -xzf "$tmp/e2fsprogs.tar.gz" -C "$tmp"
	src=$tmp/e2fsprogs-$E2FS_VERSION
	sed -i 's|^\t/\* Make a note in the error log \*/$|\tif (!(fs->flags \& EXT2_FLAG_RW))\n\t\treturn ret; /* backy: not on a read-only device */\n&|' "$src/misc/fuse2fs.c"
	if [ "$(grep -c 'return ret; /\* backy: not on a read-only device \*/$' "$src/misc/fuse2fs.c")" != 1 ]; then
		echo "deps: patching $src/misc/fuse2fs.c failed" >&2
		exit 1
	fi
	mkdir "$tmp/build"
	if ! (cd "$tmp/build" &&
		PKG_CONFIG_LIBDIR=/nonexistent "$src/configure" --disable-nls \
			--disable-debugfs --disable-imager --disable-resizer --disable-defrag \
			--disable-uuidd --disable-e2initrd-helper --without-libarchive &&
		sed -i "s|^#define E2FSPROGS_VERSION \"$E2FS_VERSION\"\$|#define E2FSPROGS_VERSION \"$E2FS_PATCHED\"|" "$src/version.h" &&
		make -j"$(nproc)" libs && make -C misc fuse2fs) >"$tmp/log" 2>&1; then
		tail -n 30 "$tmp/log" >&2
		echo "deps: building fuse2fs $E2FS_VERSION failed (above: the end of its log)" >&2
		exit 1
	fi
	version=$("$tmp/build/misc/fuse2fs" --version 2>&1 || true)
	if [[ $version != *"fuse2fs $E2FS_PATCHED "*"FUSE library version: 2."* ]]; then
		echo "deps: the fuse2fs built is not $E2FS_PATCHED with libfuse2: $version" >&2
		exit 1
	fi
	install -D -m 0755 "$tmp/build/misc/fuse2fs" "$FUSE2FS.new"
	mv "$FUSE2FS.new" "$FUSE2FS"
}
case "${1:-}" in
--demo | --fresh) ;;
*) build_fuse2fs ;;
esac
exit 0
