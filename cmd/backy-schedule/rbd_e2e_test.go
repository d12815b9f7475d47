package main

// End-to-end tests of RBD jobs: the real daemon runs the real backy-extract
// against the throw-away Ceph cluster (pkg/rbd/cephtest), plain and with
// freeze/thaw commands around the snapshot of a loop-mounted guest
// (internal/freezetest).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/internal/freezetest"
	"github.com/backy/backy/pkg/daemon/daemontest"
	"github.com/backy/backy/pkg/jobstatus"
	"github.com/backy/backy/pkg/rbd/cephtest"
	"github.com/backy/backy/pkg/repo"
)

const rbdConf = `[global]
base-dir = "%[1]s/base"
worker-limit = 4
status-interval = "1s"
console-addresses = []
backoff-initial = "1s"
backoff-max = "2s"

[schedules.fast]
fast = { interval = "3s", keep = 2 }

[jobs.plain]
schedule = "fast"
verify-sample = 100
source = { type = "rbd", pool = "rbd", image = "%[2]s" }

[jobs.frozen]
schedule = "fast"
verify-sample = 100
source = { type = "rbd", pool = "rbd", image = "%[3]s" }
consistency = { freeze-command = %[4]q, thaw-command = %[5]q, timeout = "20s" }

[jobs.agent]
schedule = "fast"
verify-sample = 100
source = { type = "rbd", pool = "rbd", image = "%[6]s" }
consistency = { snapshot-command = 'rbd snap create "$BACKY_POOL/$BACKY_IMAGE@$BACKY_SNAPSHOT"', timeout = "20s", fallback = "fail" }

[jobs.qga]
schedule = "fast"
verify-sample = 100
source = { type = "rbd", pool = "rbd", image = "%[7]s" }
consistency = { guest-agent = %[8]q, timeout = "20s", fallback = "fail" }
`

// rbdEnv is env() with the cluster's configuration.
func rbdEnv(conf string) []string { return append(env(), "CEPH_CONF="+conf) }

func loadRevs(t *testing.T, dir string) []*repo.Revision {
	t.Helper()
	var revs []*repo.Revision
	for _, id := range revisions(dir) {
		b, err := os.ReadFile(filepath.Join(dir, "revisions", id+".rev"))
		if err != nil {
			continue // expired meanwhile
		}
		var r repo.Revision
		if json.Unmarshal(firstJSON(b), &r) == nil {
			revs = append(revs, &r)
		}
	}
	slices.SortFunc(revs, func(a, b *repo.Revision) int { return a.Time.Compare(b.Time) })
	return revs
}

// firstJSON is the JSON object a metadata file starts with (a seal may
// follow it).
func firstJSON(b []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(b))
	var raw json.RawMessage
	dec.Decode(&raw)
	return raw
}

func snapshots(t *testing.T, conf, img string) []string {
	t.Helper()
	var list []struct{ Name string }
	json.Unmarshal(cephtest.Rbd(t, conf, nil, "snap", "ls", "--format", "json", img), &list)
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
	}
	return names
}

// TestRBDEndToEnd: four RBD jobs run by the daemon on a schedule of
// seconds - plain, frozen around the snapshot by freeze/thaw commands,
// snapshotted by an agent command (rbd snap create), and frozen through the
// real qemu-ga confined to a second guest: backups, verified against their
// snapshots, expired and purged; only the snapshots of the newest revisions
// stay; every revision of each job records its consistency (crash, frozen,
// agent, frozen) and status shows it; the newest revision restores equal to
// its snapshot; and a daemon stopped in the middle of a freeze ends the real
// backy-extract's process group, whose helper thaws the guest at once.
func TestRBDEndToEnd(t *testing.T) {
	conf := cephtest.Start(t)
	g := freezetest.New(t)
	qg := freezetest.New(t) // qemu-ga's guest
	qga := qg.GuestAgent(t)
	dir := t.TempDir()
	img := func(job string) string { return fmt.Sprintf("e2e-%s-%d", job, os.Getpid()) }
	plainImg, frozenImg, agentImg, qgaImg := img("plain"), img("frozen"), img("agent"), img("qga")
	for _, img := range []string{plainImg, frozenImg, agentImg, qgaImg} {
		src := filepath.Join(dir, img+".raw")
		data := make([]byte, 12<<20)
		copy(data[1<<20:], bytes.Repeat([]byte(img), 1<<18)) // 1 MiB of zeros, then data
		os.WriteFile(src, data[:12<<20], 0o644)
		cephtest.Rbd(t, conf, nil, "import", "--no-progress", src, "rbd/"+img)
	}
	config := func(freeze string) []byte {
		return []byte(fmt.Sprintf(rbdConf, dir, plainImg, frozenImg, freeze, g.ThawCommand(), agentImg, qgaImg, qga.Socket))
	}
	cfg := filepath.Join(dir, "backy.conf")
	os.WriteFile(cfg, config(g.FreezeCommand()), 0o644)
	d := startRBDDaemon(t, conf, cfg, filepath.Join(dir, "daemon.log"), "5s")
	jobDir := func(job string) string { return filepath.Join(dir, "base", job) }
	plainDir, frozenDir := jobDir("plain"), jobDir("frozen")

	// Backups until the first revisions have expired and been purged (of
	// the plain and the frozen job; the others have one at least).
	var firstPlain, firstFrozen string
	eventually(t, 3*time.Minute, "revisions of every job", func() (bool, string) {
		p, f, a, q := revisions(plainDir), revisions(frozenDir), revisions(jobDir("agent")), revisions(jobDir("qga"))
		return len(p) > 0 && len(f) > 0 && len(a) > 0 && len(q) > 0, fmt.Sprint(p, f, a, q)
	})
	firstPlain, firstFrozen = revisions(plainDir)[0], revisions(frozenDir)[0]
	eventually(t, 3*time.Minute, "expiry of the first revisions", func() (bool, string) {
		p, f := strings.Join(revisions(plainDir), " "), strings.Join(revisions(frozenDir), " ")
		return !strings.Contains(p, firstPlain) && !strings.Contains(f, firstFrozen) && p != "" && f != "", p + " / " + f
	})
	// Stop the daemon cleanly between runs to look at a quiet repository.
	d.Signal(syscall.SIGTERM)
	if code := d.Exit(time.Minute); code != 0 {
		t.Fatalf("daemon exit %d: %s", code, d.Stderr())
	}
	g.ThawedWithin(t, time.Second)
	qg.ThawedWithin(t, time.Second)

	for _, job := range []struct{ name, dir, img, want, log string }{
		{"plain", plainDir, plainImg, "crash", ""},
		{"frozen", frozenDir, frozenImg, "frozen", "--job frozen --freeze-command "},
		{"agent", jobDir("agent"), agentImg, "agent", "--job agent --snapshot-command "},
		{"qga", jobDir("qga"), qgaImg, "frozen", "--job qga --guest-agent " + qga.Socket},
	} {
		revs := loadRevs(t, job.dir)
		if len(revs) == 0 || len(revs) > 4 {
			t.Fatalf("%s: %d revisions, want 1 to 4 (keep 2)", job.name, len(revs))
		}
		for _, r := range revs {
			if r.Consistency != job.want || (job.want == "frozen") != (r.FrozenSeconds > 0) {
				t.Errorf("%s: revision %s has consistency %q, frozen %gs; want %s", job.name, r.ID, r.Consistency, r.FrozenSeconds, job.want)
			}
		}
		// Snapshot clean-up: no snapshot but those of revisions, at most two.
		snaps := snapshots(t, conf, "rbd/"+job.img)
		var revSnaps []string
		for _, r := range revs {
			revSnaps = append(revSnaps, r.Snapshot)
		}
		for _, s := range snaps {
			if !slices.Contains(revSnaps, s) {
				t.Errorf("%s: snapshot %s belongs to no revision (have %v)", job.name, s, revSnaps)
			}
		}
		if len(snaps) == 0 || len(snaps) > 2 {
			t.Errorf("%s: snapshots %v, want the newest one or two", job.name, snaps)
		}
		// The newest revision restores equal to its snapshot.
		newest := revs[len(revs)-1]
		restored, exported := filepath.Join(dir, job.name+".restored"), filepath.Join(dir, job.name+".exported")
		runCmd(t, conf, "backy-restore", "-b", job.dir, "-r", newest.ID, restored)
		cephtest.Rbd(t, conf, nil, "export", "--no-progress", "rbd/"+job.img+"@"+newest.Snapshot, exported)
		a, _ := os.ReadFile(restored)
		b, _ := os.ReadFile(exported)
		if len(a) != 12<<20 || !bytes.Equal(a, b) {
			t.Errorf("%s: revision %s restores to %d bytes unlike its snapshot %s (%d bytes)", job.name, newest.ID, len(a), newest.Snapshot, len(b))
		}
		log, _ := os.ReadFile(filepath.Join(dir, "base", ".backy-schedule", "log", job.name+".log"))
		for _, want := range []string{
			"backy-extract rbd rbd/" + job.img + " --base-from " + job.dir,
			"backy-extract rbd rbd/" + job.img + "@backy-", "--sample 100% | ", "matches the stream",
			"expire --schedule fast=3s:2", "purge\n", "run succeeded",
		} {
			if !bytes.Contains(log, []byte(want)) {
				t.Errorf("%s: job log lacks %q", job.name, want)
			}
		}
		var wants []string
		switch job.want {
		case "frozen":
			wants = []string{job.log, "consistency frozen, frozen ", "thawed; ", "(thaw began at "}
		case "agent":
			wants = []string{job.log, "consistency agent"}
		}
		for _, want := range wants {
			if !bytes.Contains(log, []byte(want)) {
				t.Errorf("%s: job log lacks %q", job.name, want)
			}
		}
		// The CONSISTENCY column of status: "frozen 120ms", "agent", "crash".
		status := runCmd(t, conf, "backy-store", "-b", job.dir, "status")
		if !strings.Contains(status, " "+job.want+" ") && !strings.Contains(status, " "+job.want+"\n") {
			t.Errorf("%s: status lacks the consistency %q:\n%s", job.name, job.want, status)
		}
	}

	// The daemon stopped in the middle of a freeze: the freeze command
	// freezes, then takes its time; SIGTERM with a grace of 1s ends the
	// run's process groups - the real backy-extract's among them - and its
	// helper, in a session of its own, thaws: at once, when the pipe from
	// backy-extract closes, well within the 20 s timeout. The freeze
	// command's sleep, a process of the helper's, is ended first.
	slowFreeze := g.FreezeCommand() + " && touch " + filepath.Join(dir, "froze") + " && sleep 29.5"
	os.WriteFile(cfg, config(slowFreeze), 0o644)
	os.Remove(filepath.Join(dir, "froze"))
	frozenLog := filepath.Join(dir, "base", ".backy-schedule", "log", "frozen.log")
	logBefore := fileLen(frozenLog)
	d = startRBDDaemon(t, conf, cfg, filepath.Join(dir, "daemon2.log"), "1s")
	var extractPid int
	eventually(t, time.Minute, "a freeze in progress", func() (bool, string) {
		_, err := os.Stat(filepath.Join(dir, "froze"))
		extractPid = processWith("backy-extract rbd rbd/" + frozenImg + " ")
		return err == nil && extractPid != 0 && g.Frozen(50*time.Millisecond), ""
	})
	d.Signal(syscall.SIGTERM)
	stopped := time.Now()
	d.Exit(time.Minute)
	took, thawed := g.WaitThawed(20 * time.Second)
	if !thawed {
		t.Errorf("guest still frozen 20 s after the daemon stopped mid-freeze")
		g.ThawedWithin(t, time.Minute)
	}
	t.Logf("guest thawed %s after the SIGTERM, %s after the daemon exited", time.Since(stopped).Round(time.Millisecond), took.Round(time.Millisecond))
	if syscall.Kill(extractPid, 0) == nil || processWith("sleep 29.5") != 0 {
		t.Errorf("backy-extract (pid %d) or the freeze command's sleep still runs after the daemon stopped", extractPid)
	}
	stopLog := readFrom(t, frozenLog, logBefore)
	// backy-extract ended by the daemon's SIGTERM to its process group
	// (130, interrupted), or by the SIGKILL after it.
	if !strings.Contains(stopLog, "backy-extract exited 130") && !strings.Contains(stopLog, "backy-extract killed by SIG") {
		t.Errorf("the stopped run's backy-extract was not ended by a signal:\n%s", stopLog)
	}
	for _, want := range []string{"thawing ", "after the freeze began: pipe closed during the freeze", "thawed; "} {
		if !strings.Contains(stopLog, want) {
			t.Errorf("the stopped run's log lacks %q:\n%s", want, stopLog)
		}
	}
	t.Logf("the stopped run's log:\n%s", stopLog)
	for _, s := range snapshots(t, conf, "rbd/"+frozenImg) {
		if !slices.ContainsFunc(loadRevs(t, frozenDir), func(r *repo.Revision) bool { return r.Snapshot == s }) {
			t.Errorf("snapshot %s left behind by the stopped run", s)
		}
	}
}

// processWith returns the pid of a process whose command line contains
// s, or 0.
func processWith(s string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), s) {
			continue
		}
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() {
			return pid
		}
	}
	return 0
}

func startRBDDaemon(t *testing.T, cephConf, cfg, logfile, grace string) *daemontest.Daemon {
	t.Helper()
	return startDaemonEnv(t, rbdEnv(cephConf), "-c", cfg, "-l", logfile, "--grace", grace)
}

// runCmd runs one of the built commands and returns its stdout.
func runCmd(t *testing.T, cephConf, name string, args ...string) string {
	t.Helper()
	c := exec.Command(filepath.Join(clitest.BinDir, name), args...)
	c.Env = rbdEnv(cephConf)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

const thawConf = `[global]
base-dir = "%[1]s/base"
status-interval = "1s"
console-addresses = []
backoff-initial = "1s"
backoff-max = "2s"
metrics-listen = "%[2]d"

[schedules.hourly]
hourly = { interval = "1h", keep = 2 }

[jobs.stuck]
schedule = "hourly"
source = { type = "rbd", pool = "rbd", image = "%[3]s" }
consistency = { freeze-command = "true", thaw-command = %[4]q, timeout = "5s" }
`

// TestThawFailed: a run whose every thaw fails (the guest may still be
// frozen) is told apart from any other failure: backy-extract exits 8, the
// status file's job says thaw_failed and its last_error THAW FAILED,
// backy_job_thaw_failed is 1, and backy-check says CRITICAL although the
// job is within its SLA; all of it until a run succeeds again (the thaw
// fixed and the daemon reloaded). Before, it was "backy-extract exited 1",
// one WARNING among the failed runs.
func TestThawFailed(t *testing.T) {
	conf := cephtest.Start(t)
	dir := t.TempDir()
	img := fmt.Sprintf("thaw-%d", os.Getpid())
	src := filepath.Join(dir, "src.raw")
	os.WriteFile(src, bytes.Repeat([]byte("thaw"), 1<<20), 0o644)
	cephtest.Rbd(t, conf, nil, "import", "--no-progress", src, "rbd/"+img)
	port := freePort(t)
	cfg := filepath.Join(dir, "backy.conf")
	write := func(thaw string) {
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(thawConf, dir, port, img, thaw)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// a first good run, so that the job is within its SLA
	write("true")
	d := startRBDDaemon(t, conf, cfg, filepath.Join(dir, "daemon.log"), "5s")
	statusFile := filepath.Join(dir, "base", "status")
	job := func() jobstatus.Job {
		st, err := jobstatus.Read(statusFile)
		if err != nil {
			return jobstatus.Job{}
		}
		return st.Jobs["stuck"]
	}
	eventually(t, time.Minute, "a first successful run", func() (bool, string) {
		j := job()
		return !j.LastSuccess.IsZero(), fmt.Sprintf("%+v", j)
	})
	write("echo cannot thaw >&2; exit 1")
	d.Signal(syscall.SIGHUP)
	time.Sleep(time.Second) // the reload
	consoleCmd(t, filepath.Join(dir, "base", ".backy-schedule", "console.sock"), "run stuck")
	eventually(t, time.Minute, "a run that ends in THAW FAILED", func() (bool, string) {
		j := job()
		return !j.ThawFailed.IsZero(), fmt.Sprintf("%+v", j)
	})
	j := job()
	if !strings.Contains(j.LastError, "backy-extract exited 8: THAW FAILED, the guest may still be frozen") {
		t.Errorf("last_error %q", j.LastError)
	}
	if v, ok := value(scrape(t, port), "backy_job_thaw_failed", "backy_job", "stuck"); !ok || v != 1 {
		t.Errorf("backy_job_thaw_failed = %v (there: %v), want 1", v, ok)
	}
	code, out := backyCheck(t, cfg)
	if code != 2 || !strings.HasPrefix(out, "CRITICAL: THAW FAILED, the guest may still be frozen: stuck; 1 job within SLA |") ||
		!strings.Contains(out, " thaw_failed=1;;0;0 ") || !strings.Contains(out, "CRITICAL: stuck: THAW FAILED at ") {
		t.Errorf("backy-check: exit %d, %s; want CRITICAL, THAW FAILED", code, out)
	}

	// thawed by hand, the thaw fixed: the next good run clears it
	write("true")
	d.Signal(syscall.SIGHUP)
	time.Sleep(time.Second)
	consoleCmd(t, filepath.Join(dir, "base", ".backy-schedule", "console.sock"), "run stuck")
	eventually(t, time.Minute, "a good run after the fix", func() (bool, string) {
		j := job()
		return j.ThawFailed.IsZero() && j.LastResult == "ok", fmt.Sprintf("%+v", j)
	})
	if v, ok := value(scrape(t, port), "backy_job_thaw_failed", "backy_job", "stuck"); !ok || v != 0 {
		t.Errorf("after a good run backy_job_thaw_failed = %v (there: %v), want 0", v, ok)
	}
	if code, out := backyCheck(t, cfg); code != 0 {
		t.Errorf("backy-check after a good run: exit %d, %s", code, out)
	}
}
