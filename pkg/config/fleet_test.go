package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sharedJobs = `[schedules.fast]
fast = { interval = "1h", keep = 2 }
[jobs.vm1]
schedule = "fast"
source = { type = "file", path = "/dev/null" }
[jobs.vm2]
schedule = "fast"
source = { type = "file", path = "/dev/null" }
`

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
	}
	return dir
}

// Two daemons of a fleet: their own [global], one shared job list.
func TestIncludeSharesTheJobList(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"jobs.conf": sharedJobs,
		"d1.conf":   "include = \"jobs.conf\"\n[global]\nbase-dir = \"/srv/d1\"\nrados-pool = \"p\"\nfleet = \"f\"\nfleet-member = \"d1\"\nfleet-lease = \"3s\"\nfleet-run-limit = 2\n",
		"d2.conf":   "include = [\"" + "jobs.conf" + "\"]\n[global]\nbase-dir = \"/srv/d2\"\nrados-pool = \"p\"\nfleet = \"f\"\n",
	})
	c1, err := Load(filepath.Join(dir, "d1.conf"))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Load(filepath.Join(dir, "d2.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c1.JobNames(), ","); got != "vm1,vm2" || got != strings.Join(c2.JobNames(), ",") {
		t.Errorf("jobs %v and %v", c1.JobNames(), c2.JobNames())
	}
	if c1.Jobs["vm1"].Directory != "rados:p/vm1" || c1.Global.BaseDir != "/srv/d1" || c2.Global.BaseDir != "/srv/d2" {
		t.Errorf("vm1 in %s, base-dirs %s %s", c1.Jobs["vm1"].Directory, c1.Global.BaseDir, c2.Global.BaseDir)
	}
	g := c1.Global
	if g.Fleet != "f" || g.FleetMember != "d1" || g.FleetLease != 3*time.Second || g.FleetRunLimit != 2 {
		t.Errorf("fleet settings %+v", g)
	}
	if host, _ := os.Hostname(); c2.Global.FleetMember != host || c2.Global.FleetLease != DefaultFleetLease || c2.Global.FleetRunLimit != 0 {
		t.Errorf("defaults: member %q (host %q), lease %s, run limit %d", c2.Global.FleetMember, host, c2.Global.FleetLease, c2.Global.FleetRunLimit)
	}
}

func TestIncludeAndFleetErrors(t *testing.T) {
	for _, tc := range []struct {
		name, main, inc string
		kind            error
		want            string
	}{
		{"global in an included file", `include = "inc.conf"`, "[global]\nworker-limit = 2\n" + sharedJobs, ErrUnknownKey,
			`inc.conf: key "global": an included file holds only [schedules] and [jobs]`},
		{"job defined twice", "include = \"inc.conf\"\n" + sharedJobs[strings.Index(sharedJobs, "[jobs.vm2]"):] + "[schedules.fast]\nfast = { interval = \"1h\", keep = 2 }\n",
			"[jobs.vm2]\nschedule = \"fast\"\nsource = { type = \"file\", path = \"/dev/null\" }\n", ErrDuplicate,
			`inc.conf: job "vm2" is defined in `},
		{"missing file", `include = "nope.conf"`, "", ErrBadValue, `key "include": open `},
		{"not a path", `include = 3`, "", ErrBadValue, `key "include": a path or a list of paths`},
		{"syntax error in an included file", `include = "inc.conf"`, "[jobs\n", ErrSyntax, "inc.conf:2: syntax error"},
		{"fleet without a pool", "include = \"inc.conf\"\n[global]\nfleet = \"f\"\n", sharedJobs, ErrMissingKey,
			`key "global.fleet": a fleet needs rados-pool`},
		{"fleet with a directory job", "include = \"inc.conf\"\n[global]\nfleet = \"f\"\nrados-pool = \"p\"\n[jobs.vm3]\nschedule = \"fast\"\ndirectory = \"/srv/vm3\"\nsource = { type = \"file\", path = \"/dev/null\" }\n",
			sharedJobs, ErrBadValue, `job "vm3": the jobs of a fleet need RADOS repositories; /srv/vm3 is a directory`},
		{"unknown key in an included job", `include = "inc.conf"`, sharedJobs + "sorce = 1\n", ErrUnknownKey,
			`inc.conf:9: unknown key "jobs.vm2.sorce"`},
		{"bad value in an included schedule", `include = "inc.conf"`, strings.Replace(sharedJobs, `"1h"`, `"1 hour"`, 1), ErrBadValue,
			`inc.conf:2: key "schedules.fast.fast.interval"`},
		{"directory job of a fleet in an included file", "include = \"inc.conf\"\n[global]\nfleet = \"f\"\nrados-pool = \"p\"\n",
			sharedJobs + "[jobs.vm3]\nschedule = \"fast\"\ndirectory = \"/srv/vm3\"\nsource = { type = \"file\", path = \"/dev/null\" }\n",
			ErrBadValue, `inc.conf:9: job "vm3": the jobs of a fleet need RADOS repositories; /srv/vm3 is a directory`},
		{"bad member name", "[global]\nfleet = \"f\"\nrados-pool = \"p\"\nfleet-member = \"a b\"\n", "", ErrBadValue, `key "global.fleet-member": member name "a b" must be`},
		{"short lease", "[global]\nfleet-lease = \"1s\"\n", "", ErrBadValue, `fleet-lease`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"main.conf": tc.main, "inc.conf": tc.inc})
			_, err := Load(filepath.Join(dir, "main.conf"))
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %v containing %q", err, tc.kind, tc.want)
			}
		})
	}
}
