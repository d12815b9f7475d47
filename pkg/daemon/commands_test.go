package daemon

import (
	"os"
	"strings"
	"testing"

	"github.com/backy/backy/pkg/config"
)

var testBins = Bins{Extract: "/usr/bin/backy-extract", Store: "/usr/bin/backy-store", Shell: "/bin/sh"}

func jobWith(t *testing.T, src string, extra string) config.Job {
	t.Helper()
	c, err := config.Parse("t", []byte(`[global]
base-dir = "/srv/backy"
[schedules.s]
daily = { interval = "1d", keep = 9 }
weekly = { interval = "1w", keep = 5 }
[jobs.vm1]
schedule = "s"
source = `+src+"\n"+extra))
	if err != nil {
		t.Fatal(err)
	}
	return c.Jobs["vm1"]
}

func TestPipelinesAreWhatAPersonWouldType(t *testing.T) {
	file := jobWith(t, `{ type = "file", path = "/dev/vg0/vm 1" }`, "verify-sample = 2.5")
	rbd := jobWith(t, `{ type = "rbd", pool = "ssd", image = "vm1" }`, "full-always = true")
	fullFile := jobWith(t, `{ type = "file", path = "/dev/vg0/vm1" }`, "full-always = true")
	cmd := jobWith(t, `{ type = "command", command = "ssh h backy-extract file /dev/sda" }`, "")
	frozen := jobWith(t, `{ type = "rbd", pool = "ssd", image = "vm1" }`,
		`consistency = { freeze-command = "virsh domfsfreeze vm1", thaw-command = "virsh domfsthaw vm1", timeout = "20s" }`)
	agent := jobWith(t, `{ type = "rbd", pool = "ssd", image = "vm1" }`,
		`consistency = { snapshot-command = "ask-host", fallback = "fail" }`)
	pooled := jobWith(t, `{ type = "rbd", pool = "ssd", image = "vm1" }`, `repository = "rados:backy/vm1"`)
	tags := []string{"daily", "weekly"}
	for _, tc := range []struct {
		got  pipeline
		want string
	}{
		{backupPipeline(testBins, file, tags),
			"/usr/bin/backy-extract file '/dev/vg0/vm 1' --base-from /srv/backy/vm1 | /usr/bin/backy-store -b /srv/backy/vm1 --tags daily,weekly"},
		{backupPipeline(testBins, fullFile, tags[:1]),
			"/usr/bin/backy-extract file /dev/vg0/vm1 | /usr/bin/backy-store -b /srv/backy/vm1 --tags daily"},
		{backupPipeline(testBins, rbd, tags[:1]),
			"/usr/bin/backy-extract rbd ssd/vm1 --base-from /srv/backy/vm1 --full | /usr/bin/backy-store -b /srv/backy/vm1 --tags daily"},
		{backupPipeline(testBins, frozen, tags[:1]),
			"/usr/bin/backy-extract rbd ssd/vm1 --base-from /srv/backy/vm1 --job vm1 --freeze-command 'virsh domfsfreeze vm1' --thaw-command 'virsh domfsthaw vm1' --consistency-timeout 20s --fallback crash | /usr/bin/backy-store -b /srv/backy/vm1 --tags daily"},
		{backupPipeline(testBins, agent, tags[:1]),
			"/usr/bin/backy-extract rbd ssd/vm1 --base-from /srv/backy/vm1 --job vm1 --snapshot-command ask-host --fallback fail | /usr/bin/backy-store -b /srv/backy/vm1 --tags daily"},
		{backupPipeline(testBins, cmd, tags[:1]),
			"/bin/sh -c 'ssh h backy-extract file /dev/sda' | /usr/bin/backy-store -b /srv/backy/vm1 --tags daily"},
		{verifyPipeline(testBins, file, "abcdefghijklmnop", ""),
			"/usr/bin/backy-extract file '/dev/vg0/vm 1' --sample 2.5% | /usr/bin/backy-store -b /srv/backy/vm1 verify -r abcdefghijklmnop --against -"},
		{verifyPipeline(testBins, rbd, "abcdefghijklmnop", "backy-abcdefghijklmnop"),
			"/usr/bin/backy-extract rbd ssd/vm1@backy-abcdefghijklmnop --sample 1% | /usr/bin/backy-store -b /srv/backy/vm1 verify -r abcdefghijklmnop --against -"},
		{verifyPipeline(testBins, cmd, "abcdefghijklmnop", ""),
			"/usr/bin/backy-store -b /srv/backy/vm1 verify -r abcdefghijklmnop --sample 1%"},
		{expirePipeline(testBins, file), "/usr/bin/backy-store -b /srv/backy/vm1 expire --schedule daily=1d:9,weekly=7d:5"},
		{purgePipeline(testBins, file), "/usr/bin/backy-store -b /srv/backy/vm1 purge"},
		{backupPipeline(testBins, pooled, tags[:1]),
			"/usr/bin/backy-extract rbd ssd/vm1 --base-from rados:backy/vm1 | /usr/bin/backy-store -b rados:backy/vm1 --tags daily"},
		{purgePipeline(testBins, pooled), "/usr/bin/backy-store -b rados:backy/vm1 purge --min-interval 24h0m0s"},
	} {
		if got := tc.got.String(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain/path-1.img": "plain/path-1.img", "": "''", "it's": `'it'\''s'`, "a b": "'a b'", "$HOME": "'$HOME'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestManPageShowsThePipelines keeps the command lines of backy-schedule(1),
// "A run", what backupPipeline and verifyPipeline build, with the page's
// placeholders for the job's settings.
func TestManPageShowsThePipelines(t *testing.T) {
	page, err := os.ReadFile("../../man/backy-schedule.1.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for l := range strings.Lines(string(page)) {
		lines[strings.TrimSpace(l)] = true
	}
	placeholders := strings.NewReplacer("/usr/bin/", "", "/srv/backy/vm1", "DIR", "/dev/vg0/vm1", "PATH",
		"ssd/vm1", "POOL/IMAGE", "2.5%", "N%", "abcdefghijklmnop", "ID")
	file := jobWith(t, `{ type = "file", path = "/dev/vg0/vm1" }`, "verify-sample = 2.5")
	fullFile := jobWith(t, `{ type = "file", path = "/dev/vg0/vm1" }`, "full-always = true")
	rbd := jobWith(t, `{ type = "rbd", pool = "ssd", image = "vm1" }`, "verify-sample = 2.5")
	fullRBD := jobWith(t, `{ type = "rbd", pool = "ssd", image = "vm1" }`, "full-always = true")
	cmd := jobWith(t, `{ type = "command", command = "COMMAND" }`, "")
	daily, both := []string{"daily"}, []string{"daily", "weekly"}
	for _, p := range []pipeline{
		backupPipeline(testBins, file, both),
		backupPipeline(testBins, rbd, daily),
		backupPipeline(testBins, cmd, daily),
		backupPipeline(testBins, fullFile, daily),
		backupPipeline(testBins, fullRBD, daily),
		verifyPipeline(testBins, file, "abcdefghijklmnop", ""),
		verifyPipeline(testBins, rbd, "abcdefghijklmnop", "SNAP"),
	} {
		if want := placeholders.Replace(p.String()); !lines[want] {
			t.Errorf("man/backy-schedule.1.md has no line\n\t%s", want)
		}
	}
}
