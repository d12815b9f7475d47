#!/bin/bash
# mkimage.sh IMG [SIZE] [DATA_MIB]: build a realistic VM disk image without
# root or loop devices: an ext4 file system of SIZE (default 3G) made by
# mke2fs -d from about DATA_MIB (default 1200) MiB of real files copied from
# /usr/local/go, /usr/share and /usr/lib (in path order, so the same machine
# gives the same image); the rest of the image is holes. An IMG already
# built with the same SIZE and DATA_MIB (recorded in IMG's .stamp file) is
# kept, so the benchmarks share one image and build it once.
set -euo pipefail

img=${1:?usage: mkimage.sh IMG [SIZE] [DATA_MIB]}
size=${2:-3G}
data_mib=${3:-1200}
stamp=${img%.img}.stamp
if [ -f "$img" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$size $data_mib" ]; then
	exit 0
fi
echo "mkimage: building $img" >&2
staging=$(mktemp -d "$(dirname "$img")/staging.XXXXXX")
trap 'rm -rf "$staging"' EXIT

limit=$((data_mib * 1024 * 1024))
# Regular files under 64 MiB, smallest trees first; stop at the limit.
find /usr/local/go /usr/share /usr/lib -xdev -type f -readable -size -64M -printf '%s\t%p\n' 2>/dev/null |
	sort -t $'\t' -k2,2 |
	awk -F'\t' -v limit="$limit" 'full == 0 && sum + $1 > limit { full = 1 } full == 0 { sum += $1; print $2 }' |
	tar -cf - --no-recursion -T - 2>/dev/null |
	tar -xf - -C "$staging"

got=$(du -sb "$staging" | cut -f1)
if [ "$got" -lt $((limit * 9 / 10)) ]; then
	echo "mkimage: only $((got >> 20)) MiB of files found, want $data_mib MiB" >&2
	exit 1
fi
rm -f "$img"
truncate -s "$size" "$img"
mke2fs -q -F -t ext4 -d "$staging" "$img"
echo "$size $data_mib" >"$stamp"
echo "mkimage: $img: $size ext4 image holding $((got >> 20)) MiB of files ($(du -m "$img" | cut -f1) MiB allocated)" >&2
