#!/bin/bash
# rados.sh: backy on a Ceph RADOS pool against the directory backend, in one
# run and on the same image (`make bench`; issue #12's targets).
#
# Starts a throw-away test cluster (scripts/ceph-cluster.sh: one monitor,
# one memory-backed OSD, so the pool's figures are those of RADOS and the
# network stack, not of a disk) and measures:
#  1. on the realistic image of scripts/bench/mkimage.sh (the one run.sh
#     uses): a full backup, an unchanged re-backup (backy-extract file
#     --base-from) and a restore to a file, into and from a directory
#     repository and a rados:POOL/JOB repository, the two taking turns in
#     each run; every figure is the median of BENCH_RUNS runs; peak RSS of
#     every process (/usr/bin/time); CPU seconds (user + system) of the
#     backy processes and, for RADOS, of the OSD during the step (figures
#     a loaded machine does not change much, unlike the wall times);
#  2. BENCH_RADOS_CLONES jobs, each backed up from its own clone of the
#     image with 1% of its 4 MiB blocks overwritten with random data (its
#     own changes), into one pool: the bytes of the pool's chunk objects,
#     against one image's chunks plus every clone's own chunks, both as a
#     directory repository measures them (the image alone; then each
#     clone's backup on top of it writes only its own chunks);
#  3. a purge of a pool with BENCH_RADOS_PURGE_CHUNKS chunk objects and
#     BENCH_RADOS_PURGE_REVISIONS revisions of 10 jobs (made by
#     scripts/bench/radosfill, 10% of the chunks named by no revision), and
#     of a pool a tenth of that size, to show how the sweep's cost grows.
#
# The result is Markdown on stdout; the exit status is 1 when a target is
# missed: RADOS within 1.5x of the directory's time for backup, re-backup
# and restore; every process under 128 MiB peak RSS; the clones' pool at
# most 1.1x one image's chunks plus their own.
#
# Environment: BENCH_RUNS (3), BENCH_DIR (bench/), BENCH_IMAGE_SIZE (3G),
# BENCH_DATA_MIB (1200), BENCH_RADOS_CLONES (10), BENCH_RADOS_PURGE_CHUNKS
# (100000), BENCH_RADOS_PURGE_REVISIONS (1000), BACKY_BIN (bin/, built
# when missing).
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${BENCH_RUNS:-3}
W=$(mkdir -p "${BENCH_DIR:-$root/bench}" && cd "${BENCH_DIR:-$root/bench}" && pwd)
img_size=${BENCH_IMAGE_SIZE:-3G}
data_mib=${BENCH_DATA_MIB:-1200}
clones=${BENCH_RADOS_CLONES:-10}
purge_chunks=${BENCH_RADOS_PURGE_CHUNKS:-100000}
purge_revs=${BENCH_RADOS_PURGE_REVISIONS:-1000}
bin=${BACKY_BIN:-$root/bin}
T=/usr/bin/time
tags=librbd,pacific

for need in mke2fs ceph rados ceph-mon ceph-osd $T; do
	command -v "$need" >/dev/null || [ -x "/usr/sbin/$need" ] || {
		echo "bench: $need is missing (Debian packages: e2fsprogs ceph-common ceph-mon ceph-osd time)" >&2
		exit 1
	}
done
log() { echo "bench: $*" >&2; }
if [ ! -x "$bin/backy-store" ] || [ ! -x "$bin/backy-extract" ] || [ ! -x "$bin/backy-restore" ]; then
	(cd "$root" && mkdir -p "$bin" && go build -tags "$tags" -o "$bin/" ./cmd/backy-extract ./cmd/backy-store ./cmd/backy-restore)
fi
export PATH="$bin:$PATH"
tmpbin=$(mktemp -d)
(cd "$root" && go build -tags "$tags" -o "$tmpbin/" ./scripts/bench/radosfill)

# ---- cluster ----
R=$W/rados
rm -rf "$R"
mkdir -p "$R"
cluster=$R/ceph
cleanup() {
	"$root/scripts/ceph-cluster.sh" stop "$cluster" >/dev/null 2>&1 || true
	rm -rf "$tmpbin"
}
trap cleanup EXIT
eval "export $("$root/scripts/ceph-cluster.sh" start "$cluster")"
mkpool() { ceph osd pool create "$1" 8 8 replicated >/dev/null 2>&1 && ceph osd pool application enable "$1" backy >/dev/null 2>&1; }
rmpool() { ceph osd pool rm "$1" "$1" --yes-i-really-really-mean-it >/dev/null 2>&1; }
# pool_bytes POOL: the bytes of POOL's chunk objects, by listing them (the
# test cluster has no manager: rados df reports no pools).
pool_bytes() { "$tmpbin/radosfill" -pool "$1" -du | cut -d' ' -f2; }

# ---- image ----
img=$W/vm.img
"$root/scripts/bench/mkimage.sh" "$img" "$img_size" "$data_mib"
bytes=$(stat -c %s "$img")
blocks=$(((bytes + 4194303) / 4194304))
nchange=$(((blocks + 99) / 100))

# ---- 1: backup, re-backup, restore ----
res=$R/results.tsv
: >"$res"
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
# osd_cpu: the CPU seconds the cluster's OSD has used so far.
osd_cpu() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$(cat "$cluster/run/osd.0.pid")/stat"; }
# step KIND STEP CMD...: time CMD; each process writes its peak RSS (KiB)
# and CPU seconds into $R/rss.* through /usr/bin/time.
step() {
	local kind=$1 name=$2
	shift 2
	rm -f "$R"/rss.*
	sync
	local t0 t1 c0 c1 rss cpu
	c0=$(osd_cpu)
	t0=$(date +%s.%N)
	"$@"
	sync
	t1=$(date +%s.%N)
	c1=$(osd_cpu)
	rss=$(cut -d' ' -f1 "$R"/rss.* | sort -n | tail -1)
	cpu=$(awk '{ s += $2 + $3 } END { printf "%.2f", s }' "$R"/rss.*)
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$name" "$(fsub "$t1" "$t0")" "$rss" "$cpu" "$(fsub "$c1" "$c0")" >>"$res"
	log "$(printf '%-5s %-9s %6.2f s, %s KiB, CPU %s s, OSD %s s' "$kind" "$name" "$(fsub "$t1" "$t0")" "$rss" "$cpu" "$(fsub "$c1" "$c0")")"
}
backup() { # LOCATION IMAGE [--base-from]
	local base=()
	[ "${3:-}" = diff ] && base=(--base-from "$1")
	$T -f '%M %U %S' -o "$R/rss.extract" backy-extract file "${base[@]}" "$2" 2>>"$R/extract.log" |
		$T -f '%M %U %S' -o "$R/rss.store" backy-store -b "$1" >/dev/null 2>>"$R/store.log"
}
restore() { $T -f '%M %U %S' -o "$R/rss.restore" backy-restore -b "$1" "$R/out.img" 2>>"$R/restore.log"; }

for run in $(seq "$runs"); do
	for kind in dir rados; do
		if [ "$kind" = dir ]; then
			loc=$R/repo
			rm -rf "$loc"
		else
			mkpool bench
			loc=rados:bench/vm
		fi
		step "$kind" backup backup "$loc" "$img"
		step "$kind" rebackup backup "$loc" "$img" diff
		step "$kind" restore restore "$loc"
		cmp "$img" "$R/out.img" || { log "$kind: the restore differs from the image"; exit 1; }
		rm -f "$R/out.img"
		if [ "$kind" = dir ]; then rm -rf "$loc"; else rmpool bench; fi
	done
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
fig() { awk -F'\t' -v k="$1" -v s="$2" '$1 == k && $2 == s { print $3 }' "$res" | median; }
peak() { awk -F'\t' -v k="$1" -v s="$2" '$1 == k && $2 == s { print $4 }' "$res" | sort -n | tail -1; }
# cpu KIND STEP: the median CPU seconds of the backy processes (and, for
# RADOS, the OSD); osd KIND STEP: of the OSD alone.
cpu() { awk -F'\t' -v k="$1" -v s="$2" '$1 == k && $2 == s { print (k == "rados" ? $5 + $6 : $5) }' "$res" | median; }
osd() { awk -F'\t' -v k="$1" -v s="$2" '$1 == k && $2 == s { print $6 }' "$res" | median; }
verdict=0
echo "RADOS (test cluster: one memstore OSD, size 1) against a directory repository, $(numfmt --to=iec "$bytes") image ($data_mib MiB of files), median of $runs runs:"
echo
echo "| step | directory s | RADOS s | RADOS / directory | peak RSS directory MiB | peak RSS RADOS MiB | CPU s directory | CPU s RADOS (of which OSD) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for s in backup rebackup restore; do
	d=$(fig dir "$s") r=$(fig rados "$s")
	ratio=$(awk -v d="$d" -v r="$r" 'BEGIN { printf "%.2f", r / d }')
	pd=$(($(peak dir "$s") / 1024)) pr=$(($(peak rados "$s") / 1024))
	echo "| $s | $d | $r | ${ratio}x | $pd | $pr | $(cpu dir "$s") | $(cpu rados "$s") ($(osd rados "$s")) |"
	if awk -v r="$ratio" 'BEGIN { exit !(r > 1.5) }' || [ "$pr" -ge 128 ]; then verdict=1; fi
done
echo

# ---- 2: clones of one image in one pool ----
# The directory measures the ideal: the image alone, then each clone's own
# chunks (its backup on top of the image writes nothing else).
mkpool clones
dir=$R/repo-ideal
rm -rf "$dir"
backup "$dir" "$img"
chunk_bytes() { find "$1/chunks" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
ideal=$(chunk_bytes "$dir")
one=$ideal
clone=$R/clone.img
for i in $(seq "$clones"); do
	cp --sparse=always "$img" "$clone"
	for b in $(awk -v n="$blocks" -v k="$nchange" -v seed="$i" 'BEGIN { srand(seed); while (c < k) { b = int(rand() * n); if (!(b in s)) { s[b] = 1; c++; print b } } }'); do
		dd if=/dev/urandom of="$clone" bs=4M seek="$b" count=1 conv=notrunc iflag=fullblock status=none
	done
	before=$(chunk_bytes "$dir")
	backup "$dir" "$clone"
	ideal=$((ideal + $(chunk_bytes "$dir") - before))
	backup "rados:clones/vm$i" "$clone"
	log "clone $i of $clones stored"
done
rm -f "$clone"
rm -rf "$dir"
pool=$(pool_bytes clones)
cratio=$(awk -v p="$pool" -v i="$ideal" 'BEGIN { printf "%.3f", p / i }')
echo "$clones jobs from clones of the image, each with 1% of its blocks ($nchange of $blocks) its own:"
echo
echo "| one image's chunks MiB | image + the clones' own chunks MiB | the pool's chunk objects MiB | pool / (image + own) |"
echo "| --- | --- | --- | --- |"
echo "| $((one >> 20)) | $((ideal >> 20)) | $((pool >> 20)) | ${cratio}x |"
echo
if awk -v r="$cratio" 'BEGIN { exit !(r > 1.1) }'; then verdict=1; fi
rmpool clones

# ---- 3: purge of a large pool ----
echo "Pool purge (backy-store purge of one job sweeps the pool; 10 jobs, 10% of the chunks named by no revision, grace 0):"
echo
echo "| chunks | revisions | fill s | purge s | removed | purge output |"
echo "| --- | --- | --- | --- | --- | --- |"
for scale in 10 1; do
	n=$((purge_chunks / scale)) revs=$((purge_revs / scale))
	[ "$revs" -ge 10 ] || revs=10
	per=$(((n * 9 / 10 + revs - 1) / revs + 1))
	mkpool purge
	t0=$(date +%s.%N)
	"$tmpbin/radosfill" -pool purge -jobs 10 -chunks "$n" -revisions "$revs" -per "$per" -garbage 10
	t1=$(date +%s.%N)
	BACKY_RADOS_GRACE=0s $T -f %M -o "$R/rss.purge" backy-store -b rados:purge/job0 purge 2>"$R/purge.log"
	t2=$(date +%s.%N)
	out=$(grep 'purge:' "$R/purge.log" | tail -1)
	removed=$(echo "$out" | sed -n 's/.*removed \([0-9]*\) of.*/\1/p')
	echo "| $n | $revs | $(fsub "$t1" "$t0") | $(fsub "$t2" "$t1") | ${removed:-?} | ${out#backy-store: } |"
	rmpool purge
done
echo
if [ "$verdict" = 0 ]; then
	echo "Targets (RADOS within 1.5x of the directory, peak RSS under 128 MiB, the clones' pool at most 1.1x): met."
else
	echo "Targets (RADOS within 1.5x of the directory, peak RSS under 128 MiB, the clones' pool at most 1.1x): MISSED."
fi
exit "$verdict"
