package nbdmount

import "testing"

func TestParseMountinfo(t *testing.T) {
	cases := []struct {
		line string
		want mountEntry
		ok   bool
	}{
		{`36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue`, mountEntry{"/mnt/parent", "ext3"}, true},
		{`612 30 0:52 / /tmp/a\040b/p1 rw,nosuid,nodev,relatime shared:300 - fuse.ext4 /tmp/a\040b/.images/.p1.fuse2fs rw,user_id=0`, mountEntry{"/tmp/a b/p1", "fuse.ext4"}, true},
		{`613 30 0:53 / /tmp/x\134y rw - fuse.backy backy-nbd rw`, mountEntry{`/tmp/x\y`, "fuse.backy"}, true},
		{`no separator here`, mountEntry{}, false},
		{`1 2 3 - fuse x`, mountEntry{}, false},
	}
	for _, c := range cases {
		got, ok := parseMountinfo(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("parseMountinfo(%q) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
	if got := unescapeOctal(`a\04`); got != `a\04` {
		t.Errorf("a cut escape: %q", got)
	}
}

func TestLeftoverNames(t *testing.T) {
	for name, want := range map[string]bool{
		"p1": true, "p12.img": true, "disk": true, "disk.img": true,
		"p": false, "p1.iso": false, "home": false, "p1/x": false, "diskette": false,
	} {
		if leftover.MatchString(name) != want {
			t.Errorf("leftover %q: %v, want %v", name, !want, want)
		}
	}
}
