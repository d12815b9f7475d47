#!/bin/bash
# ceph-cluster.sh - a throw-away Ceph cluster for tests.
#
#   scripts/ceph-cluster.sh start DIR   start a cluster with all its state in DIR
#   scripts/ceph-cluster.sh env DIR     print the environment that reaches it
#   scripts/ceph-cluster.sh stop DIR    kill its daemons and remove DIR
#
# The cluster has one monitor and one OSD (memstore: the data lives in the
# OSD's memory), no manager, no authentication, and listens on 127.0.0.1
# only, on a free port picked at start. It has one pool, "rbd" (size 1,
# application rbd). Everything it owns - ceph.conf, the monitor store, pid
# files, admin sockets, logs - is under DIR, so several clusters can run
# side by side. start prints CEPH_CONF=DIR/ceph.conf on stdout, so
#
#   eval "export $(scripts/ceph-cluster.sh start /tmp/c)"
#   rbd ls
#
# works. It needs only Debian's ceph-mon, ceph-osd and ceph-common packages
# (ceph-base brings monmaptool) and runs the daemons directly, without
# systemd. stop is idempotent: a missing DIR is fine.
set -euo pipefail

prog=ceph-cluster.sh
marker=.backy-ceph-cluster

# on_die is set by start: a failed start kills the daemons it started
# (DIR with its logs stays, for stop to remove).
on_die=
die() {
	echo "$prog: error: $*" >&2
	if [ -n "$on_die" ]; then
		$on_die
	fi
	exit 1
}

log() {
	echo "$prog: $*" >&2
}

usage() {
	echo "usage: $prog start|stop|env DIR" >&2
	exit 2
}

# absdir DIR prints DIR as an absolute path (DIR need not exist).
absdir() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$PWD" "$1" ;;
	esac
}

# port_free PORT succeeds when nothing listens on 127.0.0.1:PORT or *:PORT.
port_free() {
	local hex
	hex=$(printf '%04X' "$1")
	! grep -qE "^ *[0-9]+: [0-9A-F]+:$hex [0-9A-F]+:0000 0A" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

pick_port() {
	local port i
	for i in $(seq 1 50); do
		port=$((20000 + RANDOM % 30000))
		if port_free "$port"; then
			echo "$port"
			return 0
		fi
	done
	die "no free port found"
}

# ours PID succeeds when PID is a ceph daemon started with this DIR's ceph.conf.
ours() {
	local pid=$1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$dir/ceph.conf"
}

# stop_daemons kills this cluster's daemons outright: its data is
# throw-away, so there is nothing to shut down cleanly.
stop_daemons() {
	local pidfile pid pids="" alive i
	for pidfile in "$dir"/run/*.pid; do
		[ -e "$pidfile" ] || continue
		pid=$(cat "$pidfile" 2>/dev/null || true)
		case $pid in '' | *[!0-9]*) continue ;; esac
		if ours "$pid"; then
			kill -KILL "$pid" 2>/dev/null || true
			pids="$pids $pid"
		fi
	done
	for i in $(seq 1 100); do
		alive=""
		for pid in $pids; do
			if ours "$pid"; then alive="$alive $pid"; fi
		done
		[ -n "$alive" ] || return 0
		pids=$alive
		sleep 0.05
	done
	log "daemons$alive did not die"
}

cmd_stop() {
	if [ ! -e "$dir" ]; then
		return 0
	fi
	[ -d "$dir" ] || die "$dir is not a directory"
	if [ ! -e "$dir/$marker" ]; then
		# Refuse to remove a directory we did not make, unless it is empty.
		rmdir "$dir" 2>/dev/null || die "$dir was not made by $prog; not removing it"
		return 0
	fi
	stop_daemons
	rm -rf -- "$dir"
}

cmd_env() {
	[ -e "$dir/$marker" ] || die "no cluster in $dir"
	echo "CEPH_CONF=$dir/ceph.conf"
}

write_conf() {
	local fsid=$1 port=$2
	cat >"$dir/ceph.conf" <<EOF
# Written by $prog; the cluster dies with this directory.
[global]
fsid = $fsid
mon_host = v2:127.0.0.1:$port
mon_initial_members = a
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_msgr1 = false
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
auth_supported = none
run_dir = $dir/run
pid_file = $dir/run/\$name.pid
admin_socket = $dir/run/\$name.asok
log_file = $dir/log/\$name.log
log_to_stderr = false
err_to_stderr = true
mon_cluster_log_file = $dir/log/cluster.log
crash_dir = $dir/crash
exporter_sock_dir = $dir/run
keyring = /dev/null
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
mgr_initial_modules =
client_mount_timeout = 30
rados_mon_op_timeout = 120
rados_osd_op_timeout = 120

[mon]
mon_data = $dir/mon
mon_osd_reporter_subtree_level = osd
mon_data_avail_crit = 1
mon_data_avail_warn = 2

[osd]
osd_data = $dir/osd
osd_objectstore = memstore
memstore_device_bytes = 4294967296
osd_op_num_shards = 1
osd_op_num_threads_per_shard = 2
osd_max_object_name_len = 256
osd_max_object_namespace_len = 64
[client]
# Every client process gets its own admin socket: concurrent rbd commands
# sharing one fail to bind it and print "(17) File exists".
admin_socket = $dir/run/\$name.\$pid.\$cctid.asok
EOF
}

cmd_start() {
	command -v ceph-mon >/dev/null || die "ceph-mon not found (Debian package ceph-mon)"
	command -v ceph-osd >/dev/null || die "ceph-osd not found (Debian package ceph-osd)"
	command -v monmaptool >/dev/null || die "monmaptool not found (Debian package ceph-base)"
	command -v ceph >/dev/null || die "ceph not found (Debian package ceph-common)"
	command -v rbd >/dev/null || die "rbd not found (Debian package ceph-common)"
	case $dir in *[[:space:]]* | *[\'\"\$\\]*) die "$dir: path must not contain blanks or quotes" ;; esac
	if [ -e "$dir" ]; then
		[ -d "$dir" ] || die "$dir exists and is not a directory"
		[ -z "$(ls -A "$dir")" ] || die "$dir exists and is not empty"
	fi
	mkdir -p "$dir"
	: >"$dir/$marker"
	on_die=stop_daemons
	trap 'die "interrupted"' INT TERM
	mkdir -p "$dir/mon" "$dir/osd" "$dir/run" "$dir/log" "$dir/crash"

	local started=$SECONDS fsid port osd_uuid try conf=$dir/ceph.conf
	fsid=$(cat /proc/sys/kernel/random/uuid)
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)

	# The port is picked before the monitor binds it; if someone else wins
	# the race, the monitor fails to start and we try another port.
	for try in 1 2 3 4 5; do
		port=$(pick_port)
		write_conf "$fsid" "$port"
		rm -rf "$dir/mon" && mkdir -p "$dir/mon"
		monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" \
			"$dir/monmap" >/dev/null 2>&1 || die "monmaptool failed"
		ceph-mon -c "$conf" -i a --mkfs --monmap "$dir/monmap" \
			>"$dir/log/mkfs-mon.out" 2>&1 || die "ceph-mon --mkfs failed: $(tail -n 3 "$dir/log/mkfs-mon.out")"
		if ceph-mon -c "$conf" -i a >>"$dir/log/mon.out" 2>&1 &&
			timeout 20 ceph -c "$conf" --connect-timeout 15 mon stat >/dev/null 2>&1; then
			break
		fi
		stop_daemons
		[ "$try" -lt 5 ] || die "monitor did not come up; see $dir/log"
		log "monitor failed on port $port, retrying"
	done

	local id
	id=$(ceph -c "$conf" osd new "$osd_uuid" 2>>"$dir/log/ceph.err") || die "ceph osd new failed"
	[ "$id" = 0 ] || die "unexpected osd id $id"
	ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" \
		>"$dir/log/mkfs-osd.out" 2>&1 || die "ceph-osd --mkfs failed: $(tail -n 3 "$dir/log/mkfs-osd.out")"
	ceph-osd -c "$conf" -i 0 >>"$dir/log/osd.out" 2>&1 || die "ceph-osd failed to start; see $dir/log"

	local i
	for i in $(seq 1 600); do
		if ceph -c "$conf" osd dump 2>/dev/null | grep -q '^osd\.0 up'; then
			break
		fi
		[ "$i" -lt 600 ] || die "osd.0 did not come up; see $dir/log"
		sleep 0.1
	done

	# osd_pool_default_size = 1 makes it a pool of size 1.
	ceph -c "$conf" osd pool create rbd 8 8 replicated >/dev/null 2>>"$dir/log/ceph.err" ||
		die "creating pool rbd failed"
	ceph -c "$conf" osd pool application enable rbd rbd >/dev/null 2>>"$dir/log/ceph.err" ||
		die "enabling application rbd failed"
	# rbd ls waits until the pool's placement groups are active.
	timeout 60 rbd -c "$conf" ls rbd >/dev/null 2>>"$dir/log/ceph.err" ||
		die "pool rbd is not usable; see $dir/log"

	log "cluster up in $((SECONDS - started))s (mon on 127.0.0.1:$port)"
	echo "CEPH_CONF=$conf"
}

[ $# -eq 2 ] || usage
[ -n "$2" ] || usage
dir=$(absdir "$2")
dir=${dir%/}
case $1 in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
*) usage ;;
esac
