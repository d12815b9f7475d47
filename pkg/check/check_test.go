package check

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/jobstatus"
	"github.com/backy/backy/pkg/repo"
)

// now is the fake clock of these tests.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testConfig(t *testing.T, base string, jobs ...string) *config.Config {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[global]\nbase-dir = %q\n[schedules.default]\ndaily = { interval = \"1d\", keep = 9 }\nweekly = { interval = \"7d\", keep = 5 }\n", base)
	for _, j := range jobs {
		fmt.Fprintf(&b, "[jobs.%s]\nschedule = \"default\"\nsource = { type = \"file\", path = \"/dev/vg/%s\" }\n", j, j)
	}
	c, err := config.Parse(filepath.Join(base, "backy.conf"), []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// world is a check input in which every job is fine and the daemon runs.
func world(t *testing.T, jobs ...string) Input {
	in := Input{Config: testConfig(t, "/srv/backy", jobs...), Now: now, Repos: map[string]jobstatus.RepoInfo{},
		Status: &jobstatus.Status{Format: 1, Written: now.Add(-10 * time.Second), StatusInterval: 30, Jobs: map[string]jobstatus.Job{}}}
	for _, j := range jobs {
		in.Repos[j] = jobstatus.RepoInfo{Revisions: 3, Newest: now.Add(-time.Hour), NewestTrusted: now.Add(-time.Hour)}
		in.Status.Jobs[j] = jobstatus.Job{}
	}
	return in
}

func output(r *Report) string {
	var b strings.Builder
	r.Write(&b)
	return b.String()
}

func TestAllWithinSLA(t *testing.T) {
	r := Evaluate(world(t, "vm1", "vm2", "vm3"))
	want := "OK: 3 jobs within SLA | jobs=3;;;0 outside_sla=0;;0;0 warnings=0;0;;0 oldest_trusted_age=3600s;;;0 crash_consistent_only=0;0;;0 max_crash_runs=0;;;0 thaw_failed=0;;0;0 status_age=10s;;90;0\n"
	if r.State != OK || output(r) != want {
		t.Errorf("state %d, output\n%s\nwant\n%s", r.State, output(r), want)
	}
}

func TestOutsideSLA(t *testing.T) {
	in := world(t, "vm1", "vm2", "vm7", "vm9")
	in.Repos["vm1"] = jobstatus.RepoInfo{Revisions: 1, NewestTrusted: now.Add(-36 * time.Hour), Newest: now.Add(-36 * time.Hour)}
	in.Repos["vm7"] = jobstatus.RepoInfo{}
	in.Repos["vm9"] = jobstatus.RepoInfo{Revisions: 1, NewestTrusted: now.Add(-35 * time.Hour), Newest: now.Add(-35 * time.Hour)}
	r := Evaluate(in)
	got := output(r)
	want := "CRITICAL: 2 of 4 jobs outside SLA: vm1, vm7 | jobs=4;;;0 outside_sla=2;;0;0 warnings=0;0;;0 oldest_trusted_age=129600s;;;0 crash_consistent_only=0;0;;0 max_crash_runs=0;;;0 thaw_failed=0;;0;0 status_age=10s;;90;0\n" +
		"CRITICAL: vm1: newest trusted revision is 1d12h old, SLA 1d12h\n" +
		"CRITICAL: vm7: never backed up\n"
	if r.State != Critical || got != want {
		t.Errorf("state %d, output\n%s\nwant\n%s", r.State, got, want)
	}
}

func TestNoTrustedRevisionIsCritical(t *testing.T) {
	in := world(t, "vm1", "vm2")
	in.Repos["vm1"] = jobstatus.RepoInfo{Revisions: 2, Distrusted: 2, Newest: now.Add(-time.Hour),
		Damage: []string{"revision abc", "chunk 12ab: corrupt", "chunk 34cd: missing"}}
	in.Status.Jobs["vm2"] = jobstatus.Job{Running: true, RunningSince: now.Add(-time.Minute)}
	in.Repos["vm2"] = jobstatus.RepoInfo{}
	got := output(Evaluate(in))
	for _, w := range []string{
		"CRITICAL: 2 of 2 jobs outside SLA: vm1, vm2 |",
		"CRITICAL: vm1: no trusted revision (all 2 distrusted); verification found damage: revision abc: chunk 12ab: corrupt\n",
		"CRITICAL: vm2: never backed up, first run in progress since ",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in\n%s", w, got)
		}
	}
}

func TestWarnings(t *testing.T) {
	in := world(t, "vm1", "vm2", "vm3", "vm4")
	in.Repos["vm1"] = jobstatus.RepoInfo{Revisions: 3, Distrusted: 1, NewestTrusted: now.Add(-time.Hour), Damage: []string{"revision abc", "chunk x: corrupt"}}
	in.Status.Jobs["vm2"] = jobstatus.Job{Failures: 3, LastError: "verify: backy-store exited 4"}
	delete(in.Status.Jobs, "vm3")
	in.Repos["vm4"] = jobstatus.RepoInfo{Revisions: 3, NewestTrusted: now.Add(-time.Hour), DamagedMeta: 1, DamagedIndex: 2}
	r := Evaluate(in)
	got := output(r)
	for _, w := range []string{
		"WARNING: 4 jobs within SLA; 4 with warnings: vm1, vm2, vm3, vm4 |",
		"\nWARNING: vm1: 1 distrusted revision; verification found damage: revision abc: chunk x: corrupt\n",
		"\nWARNING: vm2: 3 failed runs in a row, last: verify: backy-store exited 4\n",
		"\nWARNING: vm3: not scheduled by the running backy-schedule (reload it)\n",
		"\nWARNING: vm4: 1 revision metadata file cannot be read; 2 revisions have a missing or truncated index\n",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in\n%s", w, got)
		}
	}
	if r.State != Warning {
		t.Errorf("state %d", r.State)
	}
}

func TestDaemonNotRunning(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*Input)
		want  string
	}{
		{"missing", func(in *Input) {
			in.Status, in.StatusErr = nil, fmt.Errorf("jobstatus: status file: %w", os.ErrNotExist)
		},
			"CRITICAL: backy-schedule is not running: no status file /srv/backy/status; 2 jobs within SLA | "},
		{"stale", func(in *Input) { in.Status.Written = now.Add(-91 * time.Second) },
			"CRITICAL: backy-schedule is not running or hangs: status file /srv/backy/status is 1m31s old; 2 jobs within SLA | "},
		{"stopped", func(in *Input) { in.Status.Stopped = now.Add(-time.Minute) },
			"CRITICAL: backy-schedule is not running: it stopped at "},
		{"bad", func(in *Input) { in.Status, in.StatusErr = nil, fmt.Errorf("%w: x", jobstatus.ErrBadFile) },
			"CRITICAL: status file unusable: jobstatus: bad status file: x; 2 jobs within SLA"},
	} {
		in := world(t, "vm1", "vm2")
		tc.setup(&in)
		r := Evaluate(in)
		if got := output(r); r.State != Critical || !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: state %d, output\n%s\nwant prefix\n%s", tc.name, r.State, got, tc.want)
		}
	}
	// A short status interval still allows a minute.
	in := world(t, "vm1")
	in.Status.StatusInterval = 1
	in.Status.Written = now.Add(-59 * time.Second)
	if r := Evaluate(in); r.State != OK {
		t.Errorf("59s old status with a 1s interval: %s", output(r))
	}
}

func TestStatusLineNamesAtMostTen(t *testing.T) {
	var jobs []string
	for i := range 12 {
		jobs = append(jobs, fmt.Sprintf("vm%02d", i))
	}
	in := world(t, jobs...)
	for _, j := range jobs {
		in.Repos[j] = jobstatus.RepoInfo{}
	}
	r := Evaluate(in)
	if !strings.HasPrefix(r.Line, "CRITICAL: 12 of 12 jobs outside SLA: vm00, vm01, vm02, vm03, vm04, vm05, vm06, vm07, vm08, vm09 and 2 more") || len(r.Details) != 12 {
		t.Errorf("line %q, %d details", r.Line, len(r.Details))
	}
}

func TestTextCannotBreakTheFormat(t *testing.T) {
	in := world(t, "vm1")
	in.Status.Jobs["vm1"] = jobstatus.Job{Failures: 1, LastError: "a | b\nc"}
	if got := output(Evaluate(in)); strings.Count(got, "|") != 1 || strings.Count(got, "\n") != 2 {
		t.Errorf("output\n%s", got)
	}
}

func commit(t *testing.T, dir string, at time.Time, trust string) {
	t.Helper()
	r, err := repo.OpenOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	rev := &repo.Revision{ID: repo.NewRevisionID(), Time: at, Kind: "full", Tags: []string{"daily"}, Trust: trust, Size: 1}
	if err := r.Commit(rev, repo.NewIndex(1)); err != nil {
		t.Fatal(err)
	}
}

func TestCheckReadsRealRepositories(t *testing.T) {
	base := t.TempDir()
	conf := filepath.Join(base, "backy.conf")
	c := testConfig(t, base, "vm1", "vm2")
	data := fmt.Sprintf("[global]\nbase-dir = %q\n[schedules.default]\ndaily = { interval = \"1d\", keep = 9 }\n", base)
	for _, j := range []string{"vm1", "vm2"} {
		data += fmt.Sprintf("[jobs.%s]\nschedule = \"default\"\nsource = { type = \"file\", path = \"/dev/vg/%s\" }\n", j, j)
	}
	os.WriteFile(conf, []byte(data), 0o644)
	real := time.Now()
	commit(t, c.Jobs["vm1"].Directory, real.Add(-time.Hour), repo.Verified)
	commit(t, c.Jobs["vm2"].Directory, real.Add(-2*time.Hour), repo.Trusted)
	commit(t, c.Jobs["vm2"].Directory, real.Add(-time.Hour), repo.Distrusted)
	jobstatus.Write(c.Global.StatusFile, &jobstatus.Status{Format: 1, Written: real, StatusInterval: 30,
		Jobs: map[string]jobstatus.Job{"vm1": {}, "vm2": {}}})
	r := Check(conf, real)
	if r.State != Warning || r.Line != "WARNING: 2 jobs within SLA; 1 with warnings: vm2" || r.Details[0] != "WARNING: vm2: 1 distrusted revision" {
		t.Errorf("state %d\n%s", r.State, output(r))
	}
	os.WriteFile(conf, []byte(data+"[jobs.vm3]\nsorce = 1\n"), 0o644)
	if r := Check(conf, real); r.State != Unknown || !strings.HasPrefix(r.Line, "UNKNOWN: config: "+conf+":") {
		t.Errorf("bad config: %s", output(r))
	}
}

// TestCrashConsistentOnly: a job configured for consistent snapshots whose
// newest revisions are crash-consistent warn-crash-runs times in a row
// warns, with the reason of the last fallback and the perfdata; fewer, or
// a job without the configuration, do not.
func TestCrashConsistentOnly(t *testing.T) {
	in := world(t, "vm1", "vm2", "vm3")
	for _, name := range []string{"vm1", "vm2"} {
		j := in.Config.Jobs[name]
		j.Consistency = &config.Consistency{SnapshotCommand: "ask", Fallback: "crash", WarnCrashRuns: 3}
		in.Config.Jobs[name] = j
	}
	info := func(runs int) jobstatus.RepoInfo {
		return jobstatus.RepoInfo{Revisions: 5, Newest: now.Add(-time.Hour), NewestTrusted: now.Add(-time.Hour),
			Consistency: "crash", ConsistencyReason: "no snapshot within 1m30s", CrashRuns: runs}
	}
	in.Repos["vm1"], in.Repos["vm2"], in.Repos["vm3"] = info(3), info(2), info(9)
	r := Evaluate(in)
	want := "WARNING: 3 jobs within SLA; 1 with warnings: vm1 | jobs=3;;;0 outside_sla=0;;0;0 warnings=1;0;;0 oldest_trusted_age=3600s;;;0 crash_consistent_only=1;0;;0 max_crash_runs=3;;;0 thaw_failed=0;;0;0 status_age=10s;;90;0\n" +
		"WARNING: vm1: the newest 3 revisions are only crash-consistent (consistent snapshots are configured): no snapshot within 1m30s\n"
	if got := output(r); r.State != Warning || got != want {
		t.Errorf("state %d, output\n%s\nwant\n%s", r.State, got, want)
	}
}

// A run that ended in THAW FAILED (the guest may still be frozen) is
// CRITICAL whatever the SLA, and said so on the status line and in the
// performance data; it is no SLA miss.
func TestThawFailedIsCritical(t *testing.T) {
	in := world(t, "vm1", "vm2")
	in.Status.Jobs["vm1"] = jobstatus.Job{ThawFailed: now.Add(-time.Minute), Failures: 1, LastError: "backup: backy-extract exited 8: THAW FAILED, the guest may still be frozen"}
	r := Evaluate(in)
	got := output(r)
	want := "CRITICAL: THAW FAILED, the guest may still be frozen: vm1; 2 jobs within SLA | jobs=2;;;0 outside_sla=0;;0;0 warnings=0;0;;0 oldest_trusted_age=3600s;;;0 crash_consistent_only=0;0;;0 max_crash_runs=0;;;0 thaw_failed=1;;0;0 status_age=10s;;90;0\n" +
		"CRITICAL: vm1: THAW FAILED at 2026-03-01 11:59:00: the guest may still be frozen; thaw it by hand (the job log names the thaw that failed); 1 failed run in a row, last: backup: backy-extract exited 8: THAW FAILED, the guest may still be frozen\n"
	if r.State != Critical || got != want {
		t.Errorf("state %d, output\n%s\nwant\n%s", r.State, got, want)
	}
}
