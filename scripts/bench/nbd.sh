#!/bin/bash
# nbd.sh: backy-nbd against qemu-nbd, measured in one run.
#
# Builds a realistic VM disk (scripts/bench/mkimage.sh: a 3 GiB ext4 file
# system made by mke2fs -d from ~1 GiB of real files, holes elsewhere),
# backs it up with backy-extract | backy-store, then serves the revision with
# backy-nbd and the raw image with qemu-nbd (read-only, 8 shared
# connections) and copies each with nbdcopy to null: (libnbd's default: 4
# connections, 64 requests of 256 KiB in flight on each), and again with one
# connection. backy-nbd's revision is named by its id: only that name gets
# multi-conn (a moving name such as latest makes nbdcopy use one connection
# whatever --connections says, docs/nbd.md). The servers take turns within
# each run; every figure is the median of BENCH_RUNS runs after one warm-up
# copy each, so both read from the page cache. Also reported: the CPU seconds each server used per copy
# and backy-nbd's peak RSS.
#
# Then random 64 KiB reads at queue depth 16 over one connection (fio's nbd
# engine, libnbd underneath) of the same revision, served by this tree's
# backy-nbd and by backy-nbd as of commit 4213479 (the last one that
# served one request at a time per connection), built from that commit in a
# temporary tree and serving a repository its own tools made of the image
# (the repository format changed since); each run takes BENCH_FIO_SECONDS seconds per server, the
# servers taking turns; the figure is the median of BENCH_RUNS runs.
#
# The result is Markdown on stdout; the exit status is 1 when a target is
# missed: backy-nbd at 0.9x qemu-nbd's speed with 4 connections, random
# reads at 1.5x those of 4213479.
#
# Environment: BENCH_RUNS (5), BENCH_DIR (bench/), BENCH_IMAGE_SIZE (3G),
# BENCH_DATA_MIB (1024), BENCH_FIO_SECONDS (15), BENCH_PORT (19000;
# qemu-nbd gets the next port, the old backy-nbd the one after).
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${BENCH_RUNS:-5}
W=$(mkdir -p "${BENCH_DIR:-$root/bench}" && cd "${BENCH_DIR:-$root/bench}" && pwd)
img_size=${BENCH_IMAGE_SIZE:-3G}
data_mib=${BENCH_DATA_MIB:-1024}
fio_seconds=${BENCH_FIO_SECONDS:-15}
port=${BENCH_PORT:-19000}
qport=$((port + 1)) oport=$((port + 2))
old_commit=4213479

for need in nbdcopy qemu-nbd mke2fs fio; do
	command -v "$need" >/dev/null || [ -x "/usr/sbin/$need" ] || {
		echo "bench: $need is missing (Debian packages: libnbd-bin qemu-utils e2fsprogs fio)" >&2
		exit 1
	}
done
log() { echo "bench: $*" >&2; }

bin=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$bin"
}
trap cleanup EXIT
(cd "$root" && go build -o "$bin/" ./cmd/backy-extract ./cmd/backy-store ./cmd/backy-nbd)
log "building backy-nbd of $old_commit"
mkdir "$bin/old"
git -C "$root" archive "$old_commit" | tar -x -C "$bin/old"
mkdir "$bin/$old_commit"
(cd "$bin/old" && go build -o "$bin/$old_commit/" ./cmd/backy-extract ./cmd/backy-store ./cmd/backy-nbd)

# ---- image and repository ----
img=$W/nbd-vm.img repo=$W/nbd-repo
PATH=$PATH:/usr/sbin "$root/scripts/bench/mkimage.sh" "$img" "$img_size" "$data_mib"
# The repository is made afresh by the binaries measured (a few seconds), so
# it always holds chunks as they write them; a kept one once held chunks of
# an older compression setting and measured that.
rm -rf "$repo" "$repo-$old_commit"
log "backing up $img into $repo"
id=$("$bin/backy-extract" file "$img" | "$bin/backy-store" -b "$repo")
# The old server reads the repository format of its time: its own tools
# back the image up once more.
"$bin/$old_commit/backy-extract" file "$img" | "$bin/$old_commit/backy-store" -b "$repo-$old_commit" >/dev/null
bytes=$(stat -c %s "$img")

# ---- servers ----
"$bin/backy-nbd" -b "$repo" -p "$port" 2>"$W/nbd-backy.log" &
bpid=$!
pids+=("$bpid")
qemu-nbd -r -t -e 8 -f raw -x '' -b 127.0.0.1 -p "$qport" "$img" 2>"$W/nbd-qemu.log" &
qpid=$!
pids+=("$qpid")
"$bin/$old_commit/backy-nbd" -b "$repo-$old_commit" -p "$oport" 2>"$W/nbd-old.log" &
opid=$!
pids+=("$opid")
for p in "$port" "$qport" "$oport"; do
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
		sleep 0.05
	done
done
declare -A uri=([backy-nbd]="nbd://127.0.0.1:$port/$id" [qemu-nbd]="nbd://127.0.0.1:$qport/")
declare -A pid=([backy-nbd]=$bpid [qemu-nbd]=$qpid)

# cpu PID: user+system seconds the process has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
now() { date +%s.%N; }

res=$W/nbd-results.tsv
: >"$res"
for srv in backy-nbd qemu-nbd; do # warm-up: page cache, connections
	nbdcopy "${uri[$srv]}" null:
done
for run in $(seq "$runs"); do
	for conns in 4 1; do
		for srv in backy-nbd qemu-nbd; do
			c0=$(cpu "${pid[$srv]}") t0=$(now)
			nbdcopy --connections="$conns" "${uri[$srv]}" null:
			t1=$(now) c1=$(cpu "${pid[$srv]}")
			printf '%s\t%s\t%s\t%s\n' "$srv" "$conns" "$(awk -v a="$t1" -v b="$t0" 'BEGIN { print a - b }')" \
				"$(awk -v a="$c1" -v b="$c0" 'BEGIN { print a - b }')" >>"$res"
			log "run $run, $conns connections, $srv: $(tail -1 "$res" | cut -f3)s"
		done
	done
done

# ---- random reads, this tree against 4213479 ----
declare -A furi=([backy-nbd]="nbd://127.0.0.1:$port/latest" [$old_commit]="nbd://127.0.0.1:$oport/latest")
fres=$W/nbd-fio.tsv
: >"$fres"
# randread PORT-URI: fio's terse line; field 7 is KiB/s, 8 IOPS.
randread() {
	fio --output-format=terse --terse-version=3 --name=randread --ioengine=nbd --uri="$1" \
		--rw=randread --bs=64k --iodepth=16 --numjobs=1 --time_based --runtime="${fio_seconds}" \
		--randrepeat=0 --norandommap | grep '^3;' # not fio's "connected" notice
}
for srv in backy-nbd "$old_commit"; do # warm-up: page cache, chunk cache
	fio_seconds=5 randread "${furi[$srv]}" >/dev/null
done
for run in $(seq "$runs"); do
	for srv in backy-nbd "$old_commit"; do
		line=$(randread "${furi[$srv]}")
		printf '%s\t%s\t%s\n' "$srv" "$(echo "$line" | cut -d';' -f7)" "$(echo "$line" | cut -d';' -f8)" >>"$fres"
		log "run $run, random 64 KiB reads at depth 16, $srv: $(tail -1 "$fres" | cut -f3) IOPS"
	done
done
rss=$(awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$bpid/status")

# ---- report ----
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
fig() { awk -F'\t' -v s="$1" -v c="$2" -v f="$3" '$1 == s && $2 == c { print $f }' "$res" | median; }
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
echo "nbdcopy of a $(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 2^30 }') GiB revision ($data_mib MiB of files in ext4, the rest holes) to null:,"
echo "median of $runs runs; $(nproc) cores ($cpu_model); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| nbdcopy | server | seconds | MiB/s | server CPU s | vs qemu-nbd |"
echo "| --- | --- | --- | --- | --- | --- |"
verdict=0
for conns in 4 1; do
	q=$(fig qemu-nbd "$conns" 3)
	for srv in backy-nbd qemu-nbd; do
		t=$(fig "$srv" "$conns" 3) c=$(fig "$srv" "$conns" 4)
		ratio=$(awk -v q="$q" -v t="$t" 'BEGIN { printf "%.2f", q / t }')
		echo "| --connections=$conns | $srv | $t | $(awk -v b="$bytes" -v t="$t" 'BEGIN { printf "%.0f", b / t / 1048576 }') | $c | ${ratio}x |"
		if [ "$conns" = 4 ] && [ "$srv" = backy-nbd ] && awk -v r="$ratio" 'BEGIN { exit !(r < 0.9) }'; then
			verdict=1
		fi
	done
done
echo
echo "fio --ioengine=nbd --rw=randread --bs=64k --iodepth=16, one connection, ${fio_seconds} s per run, median of $runs runs:"
echo
echo "| server | MiB/s | IOPS | vs $old_commit |"
echo "| --- | --- | --- | --- |"
ffig() { awk -F'\t' -v s="$1" -v f="$2" '$1 == s { print $f }' "$fres" | median; }
fold=$(ffig "$old_commit" 3)
for srv in backy-nbd "$old_commit"; do
	iops=$(ffig "$srv" 3)
	fratio=$(awk -v o="$fold" -v n="$iops" 'BEGIN { printf "%.2f", n / o }')
	echo "| backy-nbd ${srv/backy-nbd/(this tree)} | $(awk -v k="$(ffig "$srv" 2)" 'BEGIN { printf "%.0f", k / 1024 }') | $iops | ${fratio}x |"
	[ "$srv" = backy-nbd ] && rratio=$fratio
done
echo
echo "backy-nbd peak RSS: $rss MiB (cache 32 chunks = 128 MiB)."
if [ "$verdict" = 0 ]; then
	echo "Target (backy-nbd at least 0.9x qemu-nbd's speed with 4 connections): met."
else
	echo "Target (backy-nbd at least 0.9x qemu-nbd's speed with 4 connections): MISSED."
fi
if awk -v r="$rratio" 'BEGIN { exit !(r >= 1.5) }'; then
	echo "Target (random reads at depth 16 at least 1.5x $old_commit): met."
else
	echo "Target (random reads at depth 16 at least 1.5x $old_commit): MISSED."
	verdict=1
fi
exit "$verdict"
