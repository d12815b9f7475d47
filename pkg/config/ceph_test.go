package config

import (
	"errors"
	"testing"

	"github.com/backy/backy/pkg/cephconn"
)

// TestCephKeys: ceph-conf and ceph-user of [global] hold for every job,
// a job's own override them one by one; a relative path, a name with
// "client." or characters Ceph does not take, and an empty value are bad
// values naming the key and its line.
func TestCephKeys(t *testing.T) {
	c, err := Parse("ceph.toml", []byte(`[global]
ceph-conf = "/etc/ceph/site-a.conf"
ceph-user = "backup"

[schedules.daily]
daily = { interval = "1d", keep = 7 }

[jobs.a]
schedule = "daily"
source = { type = "rbd", pool = "rbd", image = "a" }

[jobs.b]
schedule = "daily"
source = { type = "rbd", pool = "rbd", image = "b" }
repository = "rados:backy/b"
ceph-conf = "/etc/ceph/site-b/../site-b.conf"

[jobs.c]
schedule = "daily"
source = { type = "file", path = "/dev/vg/c" }
ceph-user = "backy.c"
`))
	if err != nil {
		t.Fatal(err)
	}
	if g := c.Global.Ceph; g != (cephconn.Options{Conf: "/etc/ceph/site-a.conf", User: "backup"}) {
		t.Errorf("global: %+v", g)
	}
	for job, want := range map[string]cephconn.Options{
		"a": {Conf: "/etc/ceph/site-a.conf", User: "backup"},
		"b": {Conf: "/etc/ceph/site-b.conf", User: "backup"},
		"c": {Conf: "/etc/ceph/site-a.conf", User: "backy.c"},
	} {
		if got := c.Jobs[job].Ceph; got != want {
			t.Errorf("job %s: %+v, want %+v", job, got, want)
		}
	}
	c, err = Parse("none.toml", []byte("[global]\n"))
	if err != nil || c.Global.Ceph != (cephconn.Options{}) {
		t.Errorf("without the keys: %+v, %v", c, err)
	}

	for text, want := range map[string]string{
		"[global]\nceph-conf = \"ceph.conf\"\n":    `config: bad.toml:2: key "global.ceph-conf": "ceph.conf" is not an absolute path`,
		"[global]\nceph-user = \"client.admin\"\n": `config: bad.toml:2: key "global.ceph-user": "client.admin": give the name without "client." ("admin")`,
		"[global]\nceph-user = \"back up\"\n":      `config: bad.toml:2: key "global.ceph-user": "back up" is not a Ceph client name: letters, digits, '.', '_' or '-'`,
		"[global]\nceph-conf = \"\"\n":             `config: bad.toml:2: key "global.ceph-conf" must not be empty`,
		"[global]\nceph-user = 7\n":                `config: bad.toml:2: key "global.ceph-user" must be a string, not an integer`,
		"[jobs.x]\nschedule = \"d\"\nceph-conf = \"rel\"\nsource = { type = \"file\", path = \"/x\" }\n[schedules.d]\nd = { interval = \"1d\", keep = 1 }\n": `config: bad.toml:3: key "jobs.x.ceph-conf": "rel" is not an absolute path`,
	} {
		_, err := Parse("bad.toml", []byte(text))
		if err == nil || err.Error() != want {
			t.Errorf("%q:\n got %v\nwant %s", text, err, want)
		}
		if !errors.Is(err, ErrBadValue) {
			t.Errorf("%q: %v is not a bad value", text, err)
		}
	}
}
