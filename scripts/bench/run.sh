#!/bin/bash
# run.sh: backy's side-by-side benchmark (`make bench`).
#
# Builds a realistic VM disk image (scripts/bench/mkimage.sh: a 3 GiB ext4
# file system made by mke2fs -d from ~1.2 GiB of real files, holes
# elsewhere) and a copy with 1% of its 4 MiB blocks overwritten with random
# data, then measures on the same disk, in one run, for backy, borg, restic
# and cp: a full backup, an unchanged re-backup, a backup of the changed
# image, a restore of it to a file, and the peak memory of each; then the
# peak memory of backy-store and backy-restore on a 1 TiB sparse image.
# Every figure is the median of BENCH_RUNS runs; the tools take turns within
# each run. Results go to docs/benchmarks.md (BENCH_OUT) with the machine's
# description.
#
# Environment: BENCH_RUNS (3), BENCH_DIR (bench/, on the disk measured),
# BENCH_OUT (docs/benchmarks.md), BENCH_IMAGE_SIZE (3G), BENCH_DATA_MIB
# (1200), BENCH_HUGE (1T; 0 skips the sparse memory run), BENCH_TOOLS
# ("backy backy-plain borg restic cp"), BACKY_BIN (bin/, built when missing).
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${BENCH_RUNS:-3}
W=$(mkdir -p "${BENCH_DIR:-$root/bench}" && cd "${BENCH_DIR:-$root/bench}" && pwd)
out=${BENCH_OUT:-$root/docs/benchmarks.md}
img_size=${BENCH_IMAGE_SIZE:-3G}
data_mib=${BENCH_DATA_MIB:-1200}
huge=${BENCH_HUGE:-1T}
tools=${BENCH_TOOLS:-backy backy-plain borg restic cp}
bin=${BACKY_BIN:-$root/bin}
T=/usr/bin/time
cmdline="${BENCH_CMDLINE:-BENCH_RUNS=$runs scripts/bench/run.sh}"

for need in mke2fs borg restic $T; do
	command -v "$need" >/dev/null || [ -x "/usr/sbin/$need" ] || {
		echo "bench: $need is missing (Debian packages: e2fsprogs borgbackup restic time)" >&2
		exit 1
	}
done
if [ ! -x "$bin/backy-store" ] || [ ! -x "$bin/backy-extract" ] || [ ! -x "$bin/backy-restore" ]; then
	(cd "$root" && mkdir -p "$bin" && go build -o "$bin/" ./cmd/backy-extract ./cmd/backy-store ./cmd/backy-restore)
fi
export PATH="$bin:$PATH"
export BORG_BASE_DIR=$W/borg-base BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR=$W/restic-cache

log() { echo "bench: $*" >&2; }
v_backy="backy $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)"
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
top_start=$(ps -eo pcpu=,comm= --sort=-pcpu | head -6 | awk '{printf "%s%s %s%%", (NR>1?", ":""), $2, $1}')

# ---- images ----
img=$W/vm.img changed=$W/vm-changed.img
"$root/scripts/bench/mkimage.sh" "$img" "$img_size" "$data_mib"
bytes=$(stat -c %s "$img")
blocks=$(((bytes + 4194303) / 4194304))
nchange=$(((blocks + 99) / 100))
if [ ! -f "$changed" ] || [ "$changed" -ot "$img" ]; then
	cp --sparse=always "$img" "$changed.tmp"
	# 1% of the 4 MiB blocks, chosen with a fixed seed, overwritten with random data.
	for b in $(awk -v n="$blocks" -v k="$nchange" 'BEGIN { srand(42); while (c < k) { b = int(rand() * n); if (!(b in s)) { s[b] = 1; c++; print b } } }'); do
		dd if=/dev/urandom of="$changed.tmp" bs=4M seek="$b" count=1 conv=notrunc iflag=fullblock status=none
	done
	mv "$changed.tmp" "$changed"
fi
alloc_mib=$(du -m "$img" | cut -f1)

# ---- measuring ----
res=$W/results.tsv
: >"$res"
rssmax() { { sort -n "$@" 2>/dev/null || true; } | tail -1; }  # no rss file (the pty restore): empty

# step TOOL STEP RUN CMD: time CMD plus a sync of the disk; each process of
# CMD writes its peak RSS (KiB) into $W/rss.* via /usr/bin/time.
step() {
	local tool=$1 name=$2 run=$3
	shift 3
	rm -f "$W"/rss.*
	sync
	local t0 t1
	t0=$(date +%s.%N)
	"$@"
	sync
	t1=$(date +%s.%N)
	local rss
	rss=$(rssmax "$W"/rss.*)
	printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$name" "$run" "$(fsub "$t1" "$t0")" "${rss:-0}" >>"$res"
	log "$(printf '%-6s %-9s run %d: %6.2f s, %s KiB' "$tool" "$name" "$run" "$(fsub "$t1" "$t0")" "${rss:-0}")"
}

backy_backup() { $T -f %M -o "$W/rss.extract" backy-extract file --base-from "$W/repo-backy" "$1" 2>"$W/backy-extract.log" | $T -f %M -o "$W/rss.store" backy-store -b "$W/repo-backy" >/dev/null 2>"$W/backy.log"; }
backy_restore() { $T -f %M -o "$W/rss.restore" backy-restore -b "$W/repo-backy" "$W/out.img"; }
# backy-plain: every stream full, as without --base-from (what a pipe from
# another host without the repository gives).
backy-plain_backup() { $T -f %M -o "$W/rss.extract" backy-extract file "$1" | $T -f %M -o "$W/rss.store" backy-store -b "$W/repo-backy-plain" >/dev/null 2>"$W/backy.log"; }
# The same restore with stderr on a pseudo-terminal (script(1)), so that the
# progress line is drawn: issue 14 asks that it costs no measurable time.
backy_restore_tty() {
	script -qec "stty rows 40 cols 120; backy-restore -b '$W/repo-backy' '$W/out.img'" /dev/null >"$W/tty.out"
	grep -q '% \[' "$W/tty.out" || { log "backy-restore on a pseudo-terminal drew no progress line"; exit 1; }
}
# The same under script(1) with --quiet: what the pseudo-terminal costs
# without the line, so the line's own cost is the difference of the two.
backy_restore_ttyq() {
	script -qec "stty rows 40 cols 120; backy-restore -q -b '$W/repo-backy' '$W/out.img'" /dev/null >"$W/tty.out"
	! grep -q '% \[' "$W/tty.out" || { log "backy-restore --quiet drew a progress line"; exit 1; }
}
backy-plain_restore() { $T -f %M -o "$W/rss.restore" backy-restore -b "$W/repo-backy-plain" "$W/out.img"; }
borg_backup() { (cd "$(dirname "$1")" && $T -f %M -o "$W/rss.borg" borg create --chunker-params fixed,4194304 --compression lz4 --files-cache=disabled --sparse "$W/repo-borg::$2" "$(basename "$1")"); }
borg_restore() { mkdir -p "$W/out-borg" && (cd "$W/out-borg" && $T -f %M -o "$W/rss.borg" borg extract --sparse "$W/repo-borg::changed") && mv "$W/out-borg/vm-changed.img" "$W/out.img"; }
restic_backup() { $T -f %M -o "$W/rss.restic" restic -q -r "$W/repo-restic" backup --stdin --stdin-filename vm.img <"$1" >/dev/null; }
restic_restore() { $T -f %M -o "$W/rss.restic" restic -q -r "$W/repo-restic" dump latest vm.img >"$W/out.img"; }
cp_backup() { mkdir -p "$W/repo-cp" && $T -f %M -o "$W/rss.cp" cp --sparse=always "$1" "$W/repo-cp/$2.img"; }
cp_restore() { $T -f %M -o "$W/rss.cp" cp --sparse=always "$W/repo-cp/changed.img" "$W/out.img"; }

clean() { rm -rf "$W"/repo-* "$W/out.img" "$W/out-borg" "$BORG_BASE_DIR" "$RESTIC_CACHE_DIR"; }

declare -A reposize
for run in $(seq 1 "$runs"); do
	for tool in $tools; do
		clean
		case $tool in
		borg) borg init -e none "$W/repo-borg" ;;
		restic) restic -q init -r "$W/repo-restic" >/dev/null ;;
		esac
		step "$tool" full "$run" "${tool}_backup" "$img" full
		step "$tool" unchanged "$run" "${tool}_backup" "$img" unchanged
		step "$tool" changed "$run" "${tool}_backup" "$changed" changed
		reposize[$tool]=$(du -sm "$W/repo-$tool" | cut -f1)
		step "$tool" restore "$run" "${tool}_restore"
		if [ "$run" = 1 ]; then
			if ! cmp -s "$W/out.img" "$changed"; then
				log "$tool: the restored image differs from the one backed up"
				exit 1
			fi
		fi
		if [ "$tool" = backy ]; then
			step backy restore-tty "$run" backy_restore_tty
			step backy restore-ttyq "$run" backy_restore_ttyq
			[ "$run" != 1 ] || cmp -s "$W/out.img" "$changed" || { log "backy: the restore on a terminal differs"; exit 1; }
		fi
	done
done
clean
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 1 TiB sparse image: peak memory of backy-store and backy-restore ----
huge_line=""
if [ "$huge" != 0 ]; then
	h=$W/huge.img
	rm -rf "$h" "$W/repo-huge" "$W/huge-out.img"
	truncate -s "$huge" "$h"
	hsize=$(stat -c %s "$h")
	for off in 0 $((hsize / 4194304 / 3)) $((hsize / 4194304 - 1)); do
		dd if=/dev/urandom of="$h" bs=4M seek="$off" count=1 conv=notrunc status=none
	done
	t0=$(date +%s.%N)
	$T -f %M -o "$W/rss.hextract" backy-extract file "$h" | $T -f %M -o "$W/rss.hstore" backy-store -b "$W/repo-huge" >/dev/null 2>&1
	t1=$(date +%s.%N)
	$T -f %M -o "$W/rss.hrestore" backy-restore -b "$W/repo-huge" "$W/huge-out.img"
	t2=$(date +%s.%N)
	[ "$(stat -c %s "$W/huge-out.img")" = "$hsize" ] || { log "huge restore has the wrong size"; exit 1; }
	for off in 0 $((hsize / 4194304 / 3)) $((hsize / 4194304 - 1)); do
		cmp -s <(dd if="$h" bs=4M skip="$off" count=1 status=none) <(dd if="$W/huge-out.img" bs=4M skip="$off" count=1 status=none) ||
			{ log "huge restore differs at block $off"; exit 1; }
	done
	hs=$(cat "$W/rss.hstore") hr=$(cat "$W/rss.hrestore") he=$(cat "$W/rss.hextract")
	huge_line=$(printf '| %s sparse image, 3 blocks of data | %.2f s | %d MiB | %d MiB | %.2f s | %d MiB |' \
		"$huge" "$(fsub "$t1" "$t0")" $((he / 1024)) $((hs / 1024)) "$(fsub "$t2" "$t1")" $((hr / 1024)))
	huge_ok=$([ $((hs / 1024)) -lt 128 ] && [ $((hr / 1024)) -lt 128 ] && echo met || echo "NOT met")
	rm -rf "$h" "$W/repo-huge" "$W/huge-out.img" "$W"/rss.*
fi

# ---- per-core rates of backy's chunk work on this image ----
# BenchmarkChunkCodec runs hash, compress and decompress+verify on one core
# over the image's own 4 MiB blocks. Multiplied out over the data and the
# cores they give a floor under any arrangement of the pipeline.
codec_lines=""
rate() { awk -v n="$1" '$1 ~ "^BenchmarkChunkCodec/" n "-" { for (i = 1; i < NF; i++) if ($(i + 1) == "MB/s") print $i }' "$W/codec.txt"; }
if (cd "$root" && BACKY_BENCH_IMAGE=$img go test -run '^$' -bench ChunkCodec -benchtime 40x ./pkg/repo) >"$W/codec.txt" 2>&1; then
	cores_n=$(nproc)
	data_mb=$(awk -v m="$alloc_mib" 'BEGIN { printf "%.0f", m * 1048576 / 1e6 }')
	r_hash=$(rate hash) r_comp=$(rate compress) r_dec=$(rate 'decompress[+]verify')
	ratio_c=$(awk '$1 ~ "^BenchmarkChunkCodec/compress-" { for (i = 1; i < NF; i++) if ($(i + 1) == "ratio") print $i }' "$W/codec.txt")
	floor() { awk -v d="$data_mb" -v c="$cores_n" -v h="$r_hash" -v z="$r_comp" -v x="$r_dec" -v w="$1" \
		'BEGIN { t = (w == "full") ? 1 / h + 1 / z : (w == "hash") ? 1 / h : 1 / x; printf "%.2f", d * t / c }'; }
	codec_lines=$(
		printf '| hash (BLAKE3) | %s MB/s |\n' "$r_hash"
		printf '| compress (zstd as backy-store sets it; ratio %s) | %s MB/s |\n' "$ratio_c" "$r_comp"
		printf '| decompress and verify | %s MB/s |\n' "$r_dec"
		echo
		echo "Floors for the $data_mb MB of data on $cores_n cores, counting only this work (no reading, checksums, pipe or writes):"
		echo
		printf -- '- full backup (hash and compress every byte): %s s\n' "$(floor full)"
		printf -- '- unchanged re-backup (hash every byte): %s s\n' "$(floor hash)"
		printf -- '- restore (decompress and verify every byte): %s s\n' "$(floor dec)"
	)
else
	log "BenchmarkChunkCodec failed: $(tail -3 "$W/codec.txt")"
fi

# ---- report ----
med() { # med TOOL STEP COLUMN
	awk -F'\t' -v t="$1" -v s="$2" -v c="$3" '$1 == t && $2 == s { print $c }' "$res" | sort -g |
		awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
spread() { # spread TOOL STEP: "median (min–max)" of the seconds
	awk -F'\t' -v t="$1" -v s="$2" '$1 == t && $2 == s { print $4 }' "$res" | sort -g |
		awk -v m="$(med "$1" "$2" 4)" '{ a[NR] = $1 } END { if (NR > 1) printf "%.2f (%.2f–%.2f)", m, a[1], a[NR]; else printf "%.2f", m }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f×", a / b; else print "-" }'; }

cpu=$(lscpu | awk -F: '/^Model name/ { gsub(/^ +/, "", $2); print $2; exit }')
cores=$(nproc)
mem=$(free -h | awk '/^Mem:/ { print $2 }')
disk=$(df -h "$W" | awk 'NR == 2 { print $1 ", " $2 " (" $5 " used), mounted on " $6 }')
fstype=$(df -T "$W" | awk 'NR == 2 { print $2 }')
kernel=$(uname -r)
v_borg=$(borg --version) v_restic=$(restic version | cut -d' ' -f1-2) v_cp=$(cp --version | head -1)
v_go=$(go version 2>/dev/null | cut -d' ' -f3 || true)

{
	cat <<EOF
# Benchmarks

Generated by \`make bench\` (scripts/bench/run.sh) — do not edit by hand; rerun it.
Every figure is the **median of $runs runs**, all tools measured in the same run
on the same disk, taking turns within each run.

## What is measured

- **Image**: a $img_size ext4 disk image built without root by
  \`truncate -s $img_size vm.img && mke2fs -t ext4 -d STAGING vm.img\` from about
  $data_mib MiB of real files (/usr/local/go, /usr/share, /usr/lib), holes elsewhere
  ($alloc_mib MiB allocated). The *changed* image is a copy with $nchange of its $blocks
  4 MiB blocks (1%) overwritten with random data (\`dd conv=notrunc\`, fixed seed).
- **full**: first backup into an empty repository; **unchanged**: the same image
  again; **1% changed**: the changed image; **restore**: the changed image's backup
  to a file. Each time includes a final \`sync\`, so every tool's data is on disk;
  a \`sync\` (not timed) runs before each step. No cache was dropped for any tool:
  the source images are in the page cache for every tool alike.
- **peak RSS**: the largest "Maximum resident set size" (\`/usr/bin/time\`) of the
  processes of a step (for backy: backy-extract, backy-store, backy-restore).
- The tools:
  - backy: \`backy-extract file --base-from REPO vm.img | backy-store -b REPO\`
    (every chunk is read and hashed; only chunks whose hash differs from the newest
    revision's cross the pipe); restore \`backy-restore -b REPO out.img\`
  - backy-plain: \`backy-extract file vm.img | backy-store -b REPO\`: every stream full
    (what a pipe from a host without the repository gives); restore the same
  - borg: \`borg create --chunker-params fixed,4194304 --compression lz4 --files-cache=disabled --sparse REPO::NAME vm.img\`
    (unencrypted repository; the files cache is disabled because it would skip an
    unchanged image without reading it, which a block device or RBD source cannot do);
    restore \`borg extract --sparse\`
  - restic: \`restic backup --stdin --stdin-filename vm.img < vm.img\` (default repository
    format and compression); restore \`restic dump latest vm.img > out.img\`
  - cp: \`cp --sparse=always vm.img REPO/NAME.img\`, restore the same way back.

## Results (seconds: median of $runs, with the fastest and slowest run)

| tool | full | unchanged | 1% changed | restore | peak RSS backup | peak RSS restore | repository after 3 backups |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
EOF
	for tool in $tools; do
		rb=$(for s in full unchanged changed; do med "$tool" "$s" 5; done | sort -n | tail -1)
		printf '| %s | %s | %s | %s | %s | %d MiB | %d MiB | %s MiB |\n' "$tool" \
			"$(spread "$tool" full)" "$(spread "$tool" unchanged)" "$(spread "$tool" changed)" "$(spread "$tool" restore)" \
			$((${rb%.*} / 1024)) $(($(med "$tool" restore 5 | cut -d. -f1) / 1024)) "${reposize[$tool]:-?}"
	done
	if [[ " $tools " == *" backy "* ]]; then
		cat <<EOF

The progress line: the same backy restore with stderr on a pseudo-terminal
(\`script\`, the line redrawn 4 times a second) took $(spread backy restore-tty) s,
against $(spread backy restore-ttyq) s on the same pseudo-terminal with \`--quiet\`
(no line: the difference is the line's cost) and $(spread backy restore) s with
stderr not a terminal.
EOF
	fi
	cat <<EOF

## backy against each peer

How many times faster backy is (the peer's median time divided by backy's;
below 1× backy is slower).

| backy | peer | full | unchanged | 1% changed | restore |
| --- | --- | ---: | ---: | ---: | ---: |
EOF
	for mine in backy backy-plain; do
		[[ " $tools " == *" $mine "* ]] || continue
		for tool in $tools; do
			case $tool in backy | backy-plain) continue ;; esac
			printf '| %s | %s |' "$mine" "$tool"
			for s in full unchanged changed restore; do printf ' %s |' "$(ratio "$(med "$tool" "$s" 4)" "$(med "$mine" "$s" 4)")"; done
			echo
		done
	done
	if [[ " $tools " == *" borg "* && " $tools " == *" cp "* ]]; then
		b() { med backy "$1" 4; }
		chk() { if awk -v a="$1" -v b="$2" -v k="$3" 'BEGIN { exit !(a >= k * b) }'; then echo met; else echo "NOT met"; fi; }
		cat <<EOF

## Targets (issue 3)

| target | measured | |
| --- | --- | --- |
| full backup at least 2× faster than borg | $(ratio "$(med borg full 4)" "$(b full)") | $(chk "$(med borg full 4)" "$(b full)" 2) |
| unchanged re-backup at least 3× faster than borg | $(ratio "$(med borg unchanged 4)" "$(b unchanged)") | $(chk "$(med borg unchanged 4)" "$(b unchanged)" 3) |
| restore at least 2× faster than borg extract | $(ratio "$(med borg restore 4)" "$(b restore)") | $(chk "$(med borg restore 4)" "$(b restore)" 2) |
| restore no slower than cp | $(ratio "$(med cp restore 4)" "$(b restore)") | $(chk "$(med cp restore 4)" "$(b restore)" 1) |
EOF
		[ -n "$huge_line" ] && echo "| peak memory of backy-store and backy-restore under 128 MiB on a $huge sparse image | see below | $huge_ok |"
	fi
	if [ -n "$huge_line" ]; then
		cat <<EOF

## Memory on a $huge sparse image

\`truncate -s $huge huge.img\`, three 4 MiB blocks of random data written into it
(at the start, a third of the way and the end), then
\`backy-extract file huge.img | backy-store -b REPO\` and \`backy-restore -b REPO out.img\`
(restored to a sparse file, checked for size and the three blocks).

| image | backup time | backy-extract peak RSS | backy-store peak RSS | restore time | backy-restore peak RSS |
| --- | ---: | ---: | ---: | ---: | ---: |
$huge_line
EOF
	fi
	if [ -n "$codec_lines" ]; then
		cat <<EOF

## Per-core rates on this image (the floor under any pipeline)

\`BACKY_BENCH_IMAGE=vm.img go test -run '^\$' -bench ChunkCodec -benchtime 40x ./pkg/repo\`:
one core, 40 of the image's non-zero 4 MiB blocks.

| work | one core |
| --- | ---: |
$codec_lines
EOF
	fi
	cat <<EOF

## Machine and run

- date: $started; command: \`$cmdline\`
- CPU: $cpu, $cores cores; memory: $mem; kernel $kernel
- disk: $disk, $fstype; images, repositories and restores all on it
- versions: $v_backy ($v_go), $v_borg, $v_restic, $v_cp
- **other processes were running**: this machine is shared (other engineers'
  builds and tests). Load average at the start: $load_start; at the end: $load_end.
  Busiest processes at the start: $top_start. Treat the figures as comparisons
  within this run, not as absolute speeds.

Raw per-run figures (tool, step, run, seconds, peak RSS KiB) are in
\`bench/results.tsv\` after a run.
EOF
} >"$out"
log "wrote $out"
