//go:build librbd

package cephconn

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ceph/go-ceph/rados"
)

// Connect connects to the cluster. Cancelling ctx abandons a connection
// attempt that is still waiting for a monitor (librados waits up to
// client_mount_timeout, 300 s by default, and cannot be interrupted):
// Connect returns ctx's error at once and the attempt is left to the
// exiting process.
func Connect(ctx context.Context, o Options) (*rados.Conn, error) {
	var conn *rados.Conn
	var err error
	if o.User != "" {
		conn, err = rados.NewConnWithUser(o.User)
	} else {
		conn, err = rados.NewConn()
	}
	if err != nil {
		return nil, fmt.Errorf("ceph: librados: %w", err)
	}
	if o.Conf != "" {
		err = conn.ReadConfigFile(o.Conf)
	} else {
		err = conn.ReadDefaultConfigFile() // honours $CEPH_CONF
	}
	if err != nil {
		return nil, fmt.Errorf("ceph: reading the Ceph configuration %s: %w", cmp.Or(o.Conf, "($CEPH_CONF or /etc/ceph/ceph.conf)"), err)
	}
	// CEPH_ARGS, as every Ceph command reads it (tests set
	// --rados_osd_op_timeout there).
	if err := conn.ParseDefaultConfigEnv(); err != nil {
		return nil, fmt.Errorf("ceph: CEPH_ARGS: %w", err)
	}
	if o.OpTimeout > 0 {
		secs := strconv.Itoa(int(max(o.OpTimeout, time.Second).Seconds()))
		for _, k := range []string{"rados_osd_op_timeout", "rados_mon_op_timeout"} {
			if err := conn.SetConfigOption(k, secs); err != nil {
				return nil, fmt.Errorf("ceph: option %s=%s: %w", k, secs, err)
			}
		}
	}
	connected := make(chan error, 1)
	go func() { connected <- conn.Connect() }()
	select {
	case err := <-connected:
		if err != nil {
			return nil, fmt.Errorf("ceph: connecting to the cluster: %w", err)
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("ceph: connecting to the cluster: %w", ctx.Err())
	}
	return conn, nil
}
