#!/bin/bash
# mount.sh: backy-nbd mount against fuse2fs on the raw image, in one run.
#
# Builds a realistic VM disk (scripts/bench/mkimage.sh: an ext4 file system
# of BENCH_IMAGE_SIZE made by mke2fs -d from BENCH_DATA_MIB of real files,
# holes elsewhere), backs it up with backy-extract | backy-store, and
# measures
#  (a) from starting `backy-nbd mount` to the first `ls` of the revision's
#      root directory that lists it (target: under 2 s), median of
#      BENCH_RUNS mounts;
#  (b) `cp -a` of the directory in the image (at most four levels deep)
#      closest to BENCH_COPY_MIB
#      (default 500) MiB, out of the mounted revision and out of fuse2fs -o
#      ro,norecovery on the raw image file, taking turns, each mounted
#      afresh for every copy (so FUSE caches start cold, the page cache of
#      the repository and the image warm), into a tmpfs (/dev/shm: a copy
#      to disk varies with the disk's writeback, 0.2-1.4 s of cp's system
#      time per copy on the bench machine); median of BENCH_RUNS copies each
#      after one warm-up copy each (target: at least half fuse2fs's speed).
#
# The result is Markdown on stdout; the exit status is 1 when a target is
# missed. Environment: BENCH_RUNS (5), BENCH_DIR (bench/), BENCH_IMAGE_SIZE
# (3G), BENCH_DATA_MIB (1024), BENCH_COPY_MIB (500).
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${BENCH_RUNS:-5}
W=$(mkdir -p "${BENCH_DIR:-$root/bench}" && cd "${BENCH_DIR:-$root/bench}" && pwd)
img_size=${BENCH_IMAGE_SIZE:-3G}
data_mib=${BENCH_DATA_MIB:-1024}
copy_mib=${BENCH_COPY_MIB:-500}

for need in fuse2fs fusermount3 mke2fs; do
	command -v "$need" >/dev/null || [ -x "/usr/sbin/$need" ] || {
		echo "bench: $need is missing (Debian packages: fuse2fs fuse3 e2fsprogs)" >&2
		exit 1
	}
done
log() { echo "bench: $*" >&2; }

bin=$(mktemp -d)
T=$(mktemp -d "$W/mount.XXXXXX")
out=$(mktemp -d /dev/shm/backy-bench.XXXXXX 2>/dev/null || mktemp -d "$T/out.XXXXXX")
out_fs=$(df --output=fstype "$out" | tail -1)
mpid=
cleanup() {
	[ -n "$mpid" ] && kill "$mpid" 2>/dev/null && wait "$mpid" 2>/dev/null
	for m in $(awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/self/mounts | tac); do
		fusermount3 -uz "$m" 2>/dev/null || true
	done
	rm -rf "$bin" "$T" "$out"
}
trap cleanup EXIT
(cd "$root" && go build -o "$bin/" ./cmd/backy-extract ./cmd/backy-store ./cmd/backy-nbd)
PATH=$bin:$PATH

img=$W/mount-vm.img
"$root/scripts/bench/mkimage.sh" "$img" "$img_size" "$data_mib"
repo=$T/repo
backy-extract file "$img" 2>/dev/null | backy-store -b "$repo" >/dev/null 2>&1
mnt=$T/mnt raw=$T/raw
mkdir -p "$mnt" "$raw"

now() { date +%s.%N; }
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# mount_rev: start backy-nbd mount in the background, wait for its README
mount_rev() {
	backy-nbd -b "$repo" mount "$mnt" 2>"$T/mount.log" &
	mpid=$!
	until [ -e "$mnt/README.txt" ]; do
		kill -0 "$mpid" 2>/dev/null || { cat "$T/mount.log" >&2; exit 1; }
		sleep 0.01
	done
}
umount_rev() {
	kill -INT "$mpid"
	wait "$mpid" || { log "backy-nbd mount exited $?"; cat "$T/mount.log" >&2; exit 1; }
	mpid=
}

log "(a) command to first ls, $runs runs"
starts=()
for _ in $(seq "$runs"); do
	t0=$(now)
	backy-nbd -b "$repo" mount "$mnt" 2>"$T/mount.log" &
	mpid=$!
	until [ -n "$(ls "$mnt/disk" 2>/dev/null)" ]; do
		kill -0 "$mpid" 2>/dev/null || { cat "$T/mount.log" >&2; exit 1; }
		sleep 0.005
	done
	t1=$(now)
	starts+=("$(echo "$t1 - $t0" | bc)")
	until [ -e "$mnt/README.txt" ]; do sleep 0.01; done
	umount_rev
done
start=$(printf '%s\n' "${starts[@]}" | median)

# the directory to copy: the one closest to copy_mib MiB, four levels deep at most
mount_rev
dir=$(cd "$mnt/disk" && du -m --max-depth=4 . 2>/dev/null | awk -v want="$copy_mib" '
	{ d = $1 - want; if (d < 0) d = -d; if (best == "" || d < bd) { best = $2; bd = d; size = $1 } }
	END { sub(/^\.\//, "", best); print best }')
dir_mib=$(cd "$mnt/disk" && du -sm "$dir" | cut -f1)
umount_rev
log "(b) cp -a of $dir ($dir_mib MiB), $runs runs each after a warm-up"

# CPU seconds of a process and its descendants (utime + stime), from /proc
tick=$(getconf CLK_TCK)
ptree() { echo "$1"; local c; for c in $(pgrep -P "$1"); do ptree "$c"; done; }
cpu_of() {
	local p
	for p in $(ptree "$1"); do cut -d')' -f2 "/proc/$p/stat" 2>/dev/null; done |
		awk -v t="$tick" '{ s += $12 + $13 } END { printf "%.2f\n", s / t }'
}
# timed_cp SRC SERVER_PID: copies SRC to $out; prints the wall seconds and
# the CPU seconds of cp plus the file system processes under SERVER_PID
timed_cp() {
	rm -rf "$out"; mkdir -p "$out"
	local c0 c1 t0 t1 cp_cpu
	c0=$(cpu_of "$2") t0=$(now)
	/usr/bin/time -f '%U %S' -o "$T/cp.time" cp -a "$1" "$out/"
	t1=$(now) c1=$(cpu_of "$2")
	cp_cpu=$(awk '{ print $1 + $2 }' "$T/cp.time")
	echo "$(echo "$t1 - $t0" | bc) $(echo "$c1 - $c0 + $cp_cpu" | bc)"
}
copy_backy() {
	mount_rev
	timed_cp "$mnt/disk/$dir" "$mpid"
	umount_rev
}
# fuse2fs in the foreground like the one backy-nbd mount starts
copy_fuse2fs() {
	fuse2fs -f -o ro,norecovery "$img" "$raw" 2>/dev/null &
	local fpid=$!
	until mountpoint -q "$raw"; do
		kill -0 "$fpid" 2>/dev/null || { log "fuse2fs on $img exited"; exit 1; }
		sleep 0.01
	done
	timed_cp "$raw/$dir" "$fpid"
	fusermount3 -u "$raw"
	wait "$fpid"
}
copy_backy >/dev/null
copy_fuse2fs >/dev/null
backy=() f2fs=() backy_cpu=() f2fs_cpu=()
for _ in $(seq "$runs"); do
	read -r w c < <(copy_backy)
	backy+=("$w") backy_cpu+=("$c")
	read -r w2 c2 < <(copy_fuse2fs)
	f2fs+=("$w2") f2fs_cpu+=("$c2")
	log "mount: $w s wall, $c s CPU; fuse2fs on the raw image: $w2 s wall, $c2 s CPU"
done
rm -rf "$out"
tb=$(printf '%s\n' "${backy[@]}" | median)
tf=$(printf '%s\n' "${f2fs[@]}" | median)
cb=$(printf '%s\n' "${backy_cpu[@]}" | median)
cf=$(printf '%s\n' "${f2fs_cpu[@]}" | median)
ratio=$(echo "scale=2; $tf / $tb" | bc)
cratio=$(echo "scale=2; $cf / $cb" | bc)

cat <<MD
### backy-nbd mount ($(date -u +%Y-%m-%d), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))

Image: $img_size ext4 with $data_mib MiB of files; copies into $out_fs; $runs runs each, medians.

| what | figure | target |
| --- | --- | --- |
| \`backy-nbd mount\` to the first \`ls\` of the revision | $(printf '%.2f' "$start") s | < 2 s |
| \`cp -a\` of $dir ($dir_mib MiB) out of the mounted revision | $(printf '%.2f' "$tb") s ($(echo "$dir_mib / $tb" | bc) MiB/s) | |
| \`cp -a\` of the same out of fuse2fs on the raw image | $(printf '%.2f' "$tf") s ($(echo "$dir_mib / $tf" | bc) MiB/s) | |
| speed of the mount relative to fuse2fs on the raw image | $(printf '%.2f' "$ratio")x | >= 0.5x |
| CPU seconds of the copy out of the mount (cp, backy-nbd, its fuse2fs) | $(printf '%.2f' "$cb") s | |
| CPU seconds of the copy out of fuse2fs on the raw image (cp, fuse2fs) | $(printf '%.2f' "$cf") s | |
| CPU of fuse2fs on the raw image relative to the mount | $(printf '%.2f' "$cratio")x | |
MD
ok=1
[ "$(echo "$start < 2" | bc)" = 1 ] || { log "target missed: start $start s"; ok=0; }
[ "$(echo "$ratio >= 0.5" | bc)" = 1 ] || { log "target missed: ${ratio}x fuse2fs"; ok=0; }
[ "$ok" = 1 ]
