package daemon

import "testing"

// TestPipelinesCarryTheJobsCeph: ceph-conf and ceph-user of backy.conf
// reach every command of a run that may talk to Ceph (the RBD source, a
// --base-from on a RADOS repository, backy-store), and no other.
func TestPipelinesCarryTheJobsCeph(t *testing.T) {
	const ceph = "\nceph-conf = \"/etc/ceph/b.conf\"\nceph-user = \"backup\"\n"
	rbd := jobWith(t, `{ type = "rbd", pool = "ssd", image = "vm1" }`, `repository = "rados:backy/vm1"`+ceph)
	file := jobWith(t, `{ type = "file", path = "/dev/vg0/vm1" }`, `repository = "rados:backy/vm1"`+ceph)
	cmd := jobWith(t, `{ type = "command", command = "get-stream" }`, `ceph-user = "other"`)
	for _, tc := range []struct {
		got  pipeline
		want string
	}{
		{backupPipeline(testBins, rbd, []string{"daily"}),
			"/usr/bin/backy-extract rbd ssd/vm1 --base-from rados:backy/vm1 --ceph-conf /etc/ceph/b.conf --ceph-user backup | /usr/bin/backy-store -b rados:backy/vm1 --ceph-conf /etc/ceph/b.conf --ceph-user backup --tags daily"},
		{backupPipeline(testBins, file, []string{"daily"}),
			"/usr/bin/backy-extract file /dev/vg0/vm1 --base-from rados:backy/vm1 --ceph-conf /etc/ceph/b.conf --ceph-user backup | /usr/bin/backy-store -b rados:backy/vm1 --ceph-conf /etc/ceph/b.conf --ceph-user backup --tags daily"},
		{verifyPipeline(testBins, rbd, "abcdefghijklmnop", "backy-abcdefghijklmnop"),
			"/usr/bin/backy-extract rbd ssd/vm1@backy-abcdefghijklmnop --sample 1% --ceph-conf /etc/ceph/b.conf --ceph-user backup | /usr/bin/backy-store -b rados:backy/vm1 --ceph-conf /etc/ceph/b.conf --ceph-user backup verify -r abcdefghijklmnop --against -"},
		{verifyPipeline(testBins, file, "abcdefghijklmnop", ""),
			"/usr/bin/backy-extract file /dev/vg0/vm1 --sample 1% | /usr/bin/backy-store -b rados:backy/vm1 --ceph-conf /etc/ceph/b.conf --ceph-user backup verify -r abcdefghijklmnop --against -"},
		{expirePipeline(testBins, rbd), "/usr/bin/backy-store -b rados:backy/vm1 --ceph-conf /etc/ceph/b.conf --ceph-user backup expire --schedule daily=1d:9,weekly=7d:5"},
		{purgePipeline(testBins, rbd), "/usr/bin/backy-store -b rados:backy/vm1 --ceph-conf /etc/ceph/b.conf --ceph-user backup purge --min-interval 24h0m0s"},
		{backupPipeline(testBins, cmd, []string{"daily"}),
			"/bin/sh -c get-stream | /usr/bin/backy-store -b /srv/backy/vm1 --ceph-user other --tags daily"},
	} {
		if got := tc.got.String(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}
