// Package cephconn connects to a Ceph cluster through librados (go-ceph),
// the one way every part of backy that talks to Ceph directly does it: the
// librbd engine of pkg/rbd and the RADOS repository backend of pkg/repo.
//
// Connect exists only with the build tags "librbd,pacific"; Options is
// always there, so that code without the tags can carry the settings.
package cephconn

import "time"

// Options says how to reach the cluster; the zero value is Ceph's
// defaults.
type Options struct {
	Conf string // Ceph configuration file; "" for $CEPH_CONF or Ceph's default
	User string // Ceph client name without "client."; "" for Ceph's default
	// OpTimeout, if set, bounds every operation (rados_osd_op_timeout and
	// rados_mon_op_timeout, whole seconds), over the configuration file
	// and CEPH_ARGS: the fleet's leases need operations that give up.
	OpTimeout time.Duration
}
