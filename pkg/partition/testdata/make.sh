#!/bin/bash
# Makes the partition table test vectors NAME.img.gz (small sparse images,
# gzip-compressed). Needs sfdisk (fdisk) and sgdisk (gdisk). Run here.
set -euo pipefail
# MBR: two primaries, an extended partition with two logicals
rm -f mbr.img gpt.img
truncate -s 8M mbr.img
sfdisk -q mbr.img <<'T'
label: dos
start=2048, size=2048, type=83
start=4096, size=1024, type=82
start=6144, size=8000, type=5
start=7168, size=2048, type=83
start=10240, size=3000, type=8e
T
# GPT: three named partitions
truncate -s 8M gpt.img
sgdisk -n 1:2048:+1M -t 1:EF00 -c 1:efi -n 2:0:+4M -t 2:8300 -c 2:root -n 3:0:+1M -t 3:8200 -c 3:swap gpt.img >/dev/null
gzip -9 -f mbr.img gpt.img
