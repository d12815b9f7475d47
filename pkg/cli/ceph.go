package cli

import "github.com/backy/backy/pkg/cephconn"

// Ceph is the pair of flags of every command that reaches a Ceph cluster,
// for an RBD source or a rados:POOL/JOB repository. Embed it in a kong
// flag struct.
type Ceph struct {
	CephConf string `help:"Ceph configuration file (default: $CEPH_CONF, /etc/ceph/ceph.conf)." placeholder:"FILE"`
	CephUser string `help:"Ceph client name, without \"client.\" (default: Ceph's, admin)." placeholder:"NAME"`
}

// Conn is how to reach the cluster.
func (c Ceph) Conn() cephconn.Options { return cephconn.Options{Conf: c.CephConf, User: c.CephUser} }
