package daemon

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/jobstatus"
	"github.com/backy/backy/pkg/schedule"
)

// t0 is the fake clock's start; the scheduler has no clock of its own, so
// these tests pass made-up times.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// queued counts the jobs waiting for a worker.
func (s *scheduler) queued(now time.Time) int {
	n := 0
	for _, j := range s.jobs {
		if j.ready(now) && s.mine(j) {
			n++
		}
	}
	return n
}

func testConfig(t *testing.T, global string, jobs ...string) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString("[global]\nbase-dir = \"/srv/backy\"\n" + global + "\n")
	b.WriteString("[schedules.default]\ndaily = { interval = \"1d\", keep = 9 }\nweekly = { interval = \"7d\", keep = 5 }\n")
	for _, j := range jobs {
		b.WriteString("[jobs." + j + "]\nschedule = \"default\"\nsource = { type = \"file\", path = \"/dev/vg/" + j + "\" }\n")
	}
	c, err := config.Parse("test.conf", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTestScheduler(t *testing.T, c *config.Config, infos map[string]jobstatus.RepoInfo) *scheduler {
	t.Helper()
	s := newScheduler()
	s.setConfig(c, infos, nil, t0)
	return s
}

// revisionAt is the repository after a successful run at t with tags.
func revisionAt(prev jobstatus.RepoInfo, t time.Time, tags ...string) jobstatus.RepoInfo {
	info := jobstatus.RepoInfo{Last: map[string]time.Time{}, Revisions: prev.Revisions + 1, Newest: t, NewestTrusted: t}
	for k, v := range prev.Last {
		info.Last[k] = v
	}
	for _, tag := range tags {
		info.Last[tag] = t
	}
	return info
}

func names(ls []launch) []string {
	var n []string
	for _, l := range ls {
		n = append(n, l.job.Name+":"+strings.Join(l.tags, ","))
	}
	return n
}

func TestNewJobRunsAtOnceWithEveryTag(t *testing.T) {
	s := newTestScheduler(t, testConfig(t, "", "vm1"), nil)
	got := names(s.due(t0))
	if len(got) != 1 || got[0] != "vm1:daily,weekly" {
		t.Fatalf("due = %v, want vm1 with daily,weekly", got)
	}
	if s.due(t0) != nil {
		t.Error("a running job was started twice")
	}
}

func TestWorkerLimit(t *testing.T) {
	s := newTestScheduler(t, testConfig(t, "worker-limit = 2", "a", "b", "c", "d", "e"), nil)
	first := s.due(t0)
	if len(first) != 2 {
		t.Fatalf("started %d jobs, want 2", len(first))
	}
	if !s.wake().IsZero() {
		t.Error("wake() is set although no worker is free")
	}
	if n := s.queued(t0); n != 3 {
		t.Errorf("queued = %d, want 3", n)
	}
	now := t0.Add(time.Minute)
	s.finish(first[0].job.Name, Result{Revision: "x"}, revisionAt(jobstatus.RepoInfo{}, t0.Add(time.Second), "daily", "weekly"), now)
	if more := s.due(now); len(more) != 1 {
		t.Fatalf("after one run ended, %d started, want 1", len(more))
	}
	if s.running != 2 {
		t.Errorf("running = %d, want 2", s.running)
	}
}

func TestScheduledRunFollowsTheSlots(t *testing.T) {
	s := newTestScheduler(t, testConfig(t, "", "vm1"), nil)
	s.due(t0)
	s.finish("vm1", Result{Revision: "r1"}, revisionAt(jobstatus.RepoInfo{}, t0.Add(time.Second), "daily", "weekly"), t0.Add(time.Minute))
	j := s.jobs["vm1"]
	spread := schedule.Spread("vm1")
	// The next slot: epoch + spread mod 1d + whole days, after the revision.
	off := time.Duration(j.next.Sub(time.Unix(0, 0))) % (24 * time.Hour)
	if off != spread%(24*time.Hour) {
		t.Errorf("next %s is off the job's daily slots (offset %s, spread %s)", j.next, off, spread%(24*time.Hour))
	}
	if d := j.next.Sub(t0); d <= 0 || d > 24*time.Hour+5*time.Minute {
		t.Errorf("next run %s after the first, want within a day", d)
	}
	if strings.Join(j.nextTags, ",") != "daily" {
		t.Errorf("next tags %v, want daily", j.nextTags)
	}
	if s.due(j.next.Add(-time.Second)) != nil {
		t.Error("started before its slot")
	}
	if got := names(s.due(j.next)); len(got) != 1 {
		t.Errorf("not started at its slot: %v", got)
	}
}

func TestCatchUpAfterDowntime(t *testing.T) {
	info := jobstatus.RepoInfo{Last: map[string]time.Time{
		"daily":  t0.Add(-3 * 24 * time.Hour),
		"weekly": t0.Add(-10 * 24 * time.Hour),
	}}
	s := newTestScheduler(t, testConfig(t, "", "vm1"), map[string]jobstatus.RepoInfo{"vm1": info})
	got := names(s.due(t0))
	if len(got) != 1 || got[0] != "vm1:daily,weekly" {
		t.Fatalf("after downtime due = %v, want both missed tags at once", got)
	}
	// A daily tag that is not late waits for its slot; the weekly one is
	// still caught up at once.
	info.Last["daily"] = t0.Add(-time.Hour)
	s = newTestScheduler(t, testConfig(t, "", "vm1"), map[string]jobstatus.RepoInfo{"vm1": info})
	if got := names(s.due(t0)); len(got) != 1 || got[0] != "vm1:weekly" {
		t.Fatalf("due = %v, want the weekly tag alone", got)
	}
}

func TestBackoffDoublesToSixHours(t *testing.T) {
	s := newTestScheduler(t, testConfig(t, "", "vm1"), nil)
	now := t0
	want := []time.Duration{2, 4, 8, 16, 32, 64, 128, 256, 360, 360}
	for i, w := range want {
		if got := s.due(now); len(got) != 1 {
			t.Fatalf("failure %d: not started at %s", i, now)
		}
		now = now.Add(10 * time.Second)
		s.finish("vm1", Result{Err: errors.New("boom")}, jobstatus.RepoInfo{}, now)
		j := s.jobs["vm1"]
		if d := j.next.Sub(now); d != w*time.Minute {
			t.Fatalf("after %d failures the retry is in %s, want %s", i+1, d, w*time.Minute)
		}
		if s.due(j.next.Add(-time.Second)) != nil {
			t.Fatalf("after %d failures it ran before its backoff ended", i+1)
		}
		now = j.next
	}
	s.due(now)
	s.finish("vm1", Result{Revision: "r"}, revisionAt(jobstatus.RepoInfo{}, now.Add(time.Second), "daily", "weekly"), now.Add(time.Minute))
	if j := s.jobs["vm1"]; j.retry.Failures != 0 || j.lastResult != "ok" {
		t.Errorf("a success left failures %d, result %q", j.retry.Failures, j.lastResult)
	}
}

func TestManualRunIgnoresButKeepsBackoff(t *testing.T) {
	s := newTestScheduler(t, testConfig(t, "", "vm1"), nil)
	now := t0
	for range 3 {
		s.due(now)
		s.finish("vm1", Result{Err: errors.New("boom")}, jobstatus.RepoInfo{}, now)
		now = s.jobs["vm1"].next
	}
	// 3 failures: the job waits 8 minutes; a manual run goes at once.
	now = now.Add(-7 * time.Minute)
	if s.due(now) != nil {
		t.Fatal("started during its backoff")
	}
	if what, err := s.trigger("vm1", now); err != nil || what != "queued" {
		t.Fatalf("trigger = %q, %v", what, err)
	}
	if got := s.due(now); len(got) != 1 || !got[0].manual {
		t.Fatalf("manual run not started: %v", names(got))
	}
	if what, _ := s.trigger("vm1", now); what != "already running" {
		t.Errorf("trigger while running = %q", what)
	}
	s.finish("vm1", Result{Err: errors.New("boom")}, jobstatus.RepoInfo{}, now)
	j := s.jobs["vm1"]
	if j.retry.Failures != 4 || j.next.Sub(now) != 16*time.Minute {
		t.Errorf("after a failed manual run: failures %d, retry in %s; want 4, 16m", j.retry.Failures, j.next.Sub(now))
	}
	if _, err := s.trigger("nope", now); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("trigger of an unknown job: %v", err)
	}
}

func TestSuccessWithoutTheTagsCountsAsFailure(t *testing.T) {
	s := newTestScheduler(t, testConfig(t, "", "vm1"), nil)
	s.due(t0)
	// The run "succeeded" but the repository shows no revision with the
	// tags: without the guard the job would be due again at once, for ever.
	msg := s.finish("vm1", Result{Revision: "r"}, jobstatus.RepoInfo{Last: map[string]time.Time{}}, t0.Add(time.Second))
	j := s.jobs["vm1"]
	if j.retry.Failures != 1 || !strings.Contains(msg, "no trusted revision with tags daily,weekly") {
		t.Fatalf("failures %d, message %q", j.retry.Failures, msg)
	}
	if s.due(t0.Add(time.Minute)) != nil {
		t.Error("retried before its backoff")
	}
}

func TestInterruptedRunIsNotAFailure(t *testing.T) {
	s := newTestScheduler(t, testConfig(t, "", "vm1"), nil)
	s.due(t0)
	s.finish("vm1", Result{Err: errors.New("killed"), Interrupted: true}, jobstatus.RepoInfo{}, t0.Add(time.Second))
	if j := s.jobs["vm1"]; j.retry.Failures != 0 || j.lastResult != "interrupted" {
		t.Errorf("failures %d, result %q", j.retry.Failures, j.lastResult)
	}
}

func TestReloadKeepsStateAndLetsRemovedRunsEnd(t *testing.T) {
	s := newTestScheduler(t, testConfig(t, "worker-limit = 2", "a", "b"), nil)
	if got := names(s.due(t0)); strings.Join(got, " ") != "a:daily,weekly b:daily,weekly" {
		t.Fatalf("started %v, want both", got)
	}
	s.finish("a", Result{Err: errors.New("boom")}, jobstatus.RepoInfo{}, t0)
	added, removed := s.setConfig(testConfig(t, "worker-limit = 3", "a", "c"), nil, nil, t0.Add(time.Second))
	if strings.Join(added, ",") != "c" || strings.Join(removed, ",") != "b" {
		t.Fatalf("added %v, removed %v", added, removed)
	}
	if s.jobs["a"].retry.Failures != 1 {
		t.Error("reload reset a's failures")
	}
	if s.global.WorkerLimit != 3 {
		t.Error("reload did not apply worker-limit")
	}
	if _, err := s.trigger("b", t0); !errors.Is(err, ErrUnknownJob) {
		t.Error("removed job b can still be triggered")
	}
	// Until its run ends, b is listed as running (status file, console).
	var table strings.Builder
	if js, ok := s.jobStatuses(t0)["b"]; !ok || !js.Running || writeJobs(&table, s.jobStatuses(t0), nil) != 3 || !strings.Contains(table.String(), "\nb ") {
		t.Errorf("removed job b while its run goes on: %+v, listed %v\n%s", js, ok, table.String())
	}
	s.finish("b", Result{Revision: "r"}, jobstatus.RepoInfo{}, t0.Add(2*time.Second))
	if _, ok := s.jobs["b"]; ok || s.running != 0 {
		t.Errorf("removed job b stays after its run (running %d)", s.running)
	}
	if _, ok := s.jobStatuses(t0)["b"]; ok {
		t.Error("removed job b is listed after its run")
	}
}

func TestBackoffSurvivesARestart(t *testing.T) {
	prev := &jobstatus.Status{Jobs: map[string]jobstatus.Job{"vm1": {Failures: 5, LastFailure: t0, FirstSeen: t0.Add(-time.Hour)}}}
	s := newScheduler()
	s.setConfig(testConfig(t, "", "vm1"), nil, prev, t0.Add(time.Minute))
	j := s.jobs["vm1"]
	if j.retry.Failures != 5 || !j.next.Equal(t0.Add(32*time.Minute)) || !j.firstSeen.Equal(t0.Add(-time.Hour)) {
		t.Errorf("restored failures %d, next %s, first seen %s", j.retry.Failures, j.next, j.firstSeen)
	}
}

func TestStoppingStartsNothing(t *testing.T) {
	s := newTestScheduler(t, testConfig(t, "", "vm1"), nil)
	s.stopping = true
	if s.due(t0) != nil || !s.wake().IsZero() {
		t.Error("a stopping scheduler starts runs")
	}
	if _, err := s.trigger("vm1", t0); err == nil {
		t.Error("a stopping scheduler accepts manual runs")
	}
}

func TestSpreadSeparatesJobs(t *testing.T) {
	c := testConfig(t, "", "vm1", "vm2", "vm3")
	infos := map[string]jobstatus.RepoInfo{}
	for _, n := range []string{"vm1", "vm2", "vm3"} {
		infos[n] = revisionAt(jobstatus.RepoInfo{}, t0, "daily", "weekly")
	}
	s := newTestScheduler(t, c, infos)
	seen := map[time.Time]bool{}
	for _, j := range s.jobs {
		seen[j.next] = true
	}
	if len(seen) != 3 {
		t.Errorf("three jobs share next times: %v", seen)
	}
}

// TestStatusKeepsZeroBytesWritten: a differential backup of an unchanged
// source writes 0 bytes, a value the status file and the metrics keep (it
// was left out like an unknown one), across a restart too; before the first
// measured run both are left out.
func TestStatusKeepsZeroBytesWritten(t *testing.T) {
	s := newTestScheduler(t, testConfig(t, "", "vm1"), nil)
	line := func(s *scheduler) string {
		b, err := jobstatus.Marshal(&jobstatus.Status{Jobs: s.jobStatuses(t0)})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if l := line(s); strings.Contains(l, "_bytes") {
		t.Errorf("figures before any run: %s", l)
	}
	runFigures{revision: true, read: 4096, written: 0}.apply(s.jobs["vm1"])
	l := line(s)
	if !strings.Contains(l, `"last_read_bytes":4096,"last_written_bytes":0`) {
		t.Errorf("status after a run that wrote nothing: %s", l)
	}
	st := &jobstatus.Status{}
	if err := json.Unmarshal([]byte(l), st); err != nil {
		t.Fatal(err)
	}
	restarted := newScheduler()
	restarted.setConfig(testConfig(t, "", "vm1"), nil, st, t0)
	if l2 := line(restarted); !strings.Contains(l2, `"last_written_bytes":0`) {
		t.Errorf("after a restart: %s", l2)
	}
}

// TestStoppedDaemonQueuesNothing: once the daemon stops, no job waits for
// a worker, so the last status file says none is queued.
func TestStoppedDaemonQueuesNothing(t *testing.T) {
	s := newTestScheduler(t, testConfig(t, "worker-limit = 1", "a", "b"), nil)
	s.due(t0) // a runs, b waits
	if !s.jobStatuses(t0)["b"].Queued {
		t.Fatal("b does not wait for the worker")
	}
	s.stopping = true
	if s.jobStatuses(t0)["b"].Queued {
		t.Error("b is still queued in the status of a stopping daemon")
	}
}

// In a fleet a due job another member owns is not queued here (the console
// and this member's view showed every other member's due job as queued),
// and a "not run" reason is logged once, not at every retry.
func TestFleetQueuedOnlyOnOwner(t *testing.T) {
	s := newTestScheduler(t, testConfig(t, "worker-limit = 1", "a", "b"), nil)
	s.owns = func(name string) bool { return name == "a" }
	st := s.jobStatuses(t0)
	if !st["a"].Queued || st["b"].Queued {
		t.Errorf("queued: a %v (owned, due), b %v (another member's)", st["a"].Queued, st["b"].Queued)
	}
	if got := names(s.due(t0)); strings.Join(got, " ") != "a:daily,weekly" {
		t.Fatalf("started %v, want a only", got)
	}
	slot := Result{Err: errors.New("fleet: run limit reached"), NotRun: &NotRun{RetryIn: time.Second}}
	if msg := s.finish("a", slot, jobstatus.RepoInfo{}, t0); !strings.Contains(msg, "not run: fleet: run limit reached") {
		t.Errorf("first not run: %q", msg)
	}
	s.due(t0.Add(2 * time.Second))
	if msg := s.finish("a", slot, jobstatus.RepoInfo{}, t0.Add(2*time.Second)); msg != "" {
		t.Errorf("the same not run again: %q, want nothing logged", msg)
	}
}
