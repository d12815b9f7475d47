#!/bin/bash
# demo.sh: the main job of backy on a generated disk image, step by step:
# back up, change the image, back up again, restore both revisions and
# compare them with the images they came from.
set -euo pipefail
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin}
export PATH=$BIN:$PATH
work=$(mktemp -d "${TMPDIR:-/tmp}/backy-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# Bold headings only on a terminal, and never with NO_COLOR set.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
	say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	say() { printf '\n== %s\n' "$*"; }
fi

say "making a 512 MiB ext4 disk image with real files (mke2fs -d)"
mkdir -p files
cp -r /usr/share/doc files/ 2>/dev/null || true
cp -r /usr/include files/ 2>/dev/null || true
truncate -s 512M vm.img
mke2fs -q -F -t ext4 -d files vm.img
du -h --apparent-size vm.img | sed 's/^/apparent: /'
du -h vm.img | sed 's/^/on disk:  /'

say "first backup: backy-extract file vm.img | backy-store -b repo --tags daily"
rev1=$(backy-extract file vm.img | backy-store -b repo --tags daily)
cp --sparse=always vm.img vm-1.img

say "changing the image: writing 8 MiB of new data at 100 MiB"
head -c 8M /dev/urandom | dd of=vm.img bs=1M seek=100 conv=notrunc status=none

say "second backup: backy-extract file --base-from repo vm.img | backy-store -b repo --tags daily"
say "(every chunk is read and hashed; only the changed ones cross the pipe and are written)"
rev2=$(backy-extract file --base-from repo vm.img | backy-store -b repo --tags daily)

say "backy-store status"
backy-store -b repo status

say "restoring both revisions and comparing them with their sources"
backy-restore -b repo -r "$rev1" restored-1.img
backy-restore -b repo -r latest - | cmp - vm.img && echo "revision $rev2 (latest, via stdout) == current vm.img"
cmp restored-1.img vm-1.img && echo "revision $rev1 == vm.img as it was at the first backup"
du -h restored-1.img | sed 's/^/restored file on disk (holes kept): /'

say "repository size"
du -sh repo
echo
echo "demo: both revisions restored bit for bit"
