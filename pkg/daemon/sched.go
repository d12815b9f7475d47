package daemon

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/exitcode"
	"github.com/backy/backy/pkg/jobstatus"
	"github.com/backy/backy/pkg/schedule"
)

// ErrUnknownJob is returned for a console request naming a job the daemon
// does not run.
var ErrUnknownJob = exitcode.New(exitcode.Failure, "daemon: no such job")

// jobState is everything the daemon knows about one job. Only the loop
// goroutine touches it (the run goroutine only stores into stage).
type jobState struct {
	job    config.Job
	spread time.Duration
	repo   jobstatus.RepoInfo
	retry  schedule.Retry

	// next is when the job should start on its own (its plan, held back by
	// its backoff), with the tags the plan expects; manual makes it start
	// as soon as a worker is free.
	next     time.Time
	nextTags []string
	manual   bool
	asked    uint64 // order of manual requests: first asked, first run
	// removed marks a job dropped from the configuration while it ran; it
	// goes when the run ends.
	removed bool

	running bool
	started time.Time
	runTags []string
	stage   *atomic.Value // string: the step the run is in

	firstSeen    time.Time
	lastRun      time.Time // start of the last finished run
	lastEnd      time.Time
	lastResult   string
	lastError    string
	lastRevision string
	lastSuccess  time.Time
	// thawFailed is when a run last said THAW FAILED (the guest may still
	// be frozen); zero again after the next successful run.
	thawFailed time.Time
	// notRun is what the last "not run" said, until a run happens: the
	// same is not logged again.
	notRun string

	// What the last backup read and wrote (measured: known, if 0), and the
	// repository's size after the last run (runFigures; for the metrics).
	lastRead, lastWritten, repoBytes int64
	measured                         bool
}

// launch is a run the loop is to start.
type launch struct {
	job    config.Job
	tags   []string
	manual bool
	stage  *atomic.Value
}

// scheduler decides what runs when. It holds no clock and starts nothing:
// the loop passes the time in and acts on what comes back, and tests do the
// same with made-up times.
type scheduler struct {
	global   config.Global
	jobs     map[string]*jobState
	running  int
	stopping bool
	asks     uint64 // manual requests so far
	// owns says whether this daemon may start a job: in a fleet, whether
	// it holds the job's lease; nil means every job.
	owns func(name string) bool
}

// mine reports whether this daemon runs the job (see owns).
func (s *scheduler) mine(j *jobState) bool { return s.owns == nil || s.owns(j.job.Name) }

func newScheduler() *scheduler {
	return &scheduler{jobs: map[string]*jobState{}}
}

// setConfig applies a (new) configuration: jobs keep their state by name,
// new jobs start with what prev (the status file of an earlier daemon) says
// about them, and jobs no longer configured are dropped, or marked to go
// when their run ends. infos are the jobs' repositories, by name.
func (s *scheduler) setConfig(c *config.Config, infos map[string]jobstatus.RepoInfo, prev *jobstatus.Status, now time.Time) (added, removed []string) {
	s.global = c.Global
	for name, j := range s.jobs {
		if _, ok := c.Jobs[name]; ok {
			continue
		}
		removed = append(removed, name)
		if j.running {
			j.removed = true
		} else {
			delete(s.jobs, name)
		}
	}
	for _, name := range c.JobNames() {
		j, ok := s.jobs[name]
		if !ok || j.removed {
			if j == nil {
				j = &jobState{firstSeen: now, spread: schedule.Spread(name), stage: new(atomic.Value)}
				restore(j, prev, name)
				s.jobs[name] = j
			}
			j.removed = false
			added = append(added, name)
		}
		j.job = c.Jobs[name]
		if info, ok := infos[name]; ok && !j.running {
			j.repo = info
		}
		s.replan(j, now)
	}
	slices.Sort(removed)
	return added, removed
}

// restore takes over what an earlier daemon knew about a job: above all its
// failures, so that a restart does not reset a failing job's backoff.
func restore(j *jobState, prev *jobstatus.Status, name string) {
	if prev == nil {
		return
	}
	p, ok := prev.Jobs[name]
	if !ok {
		return
	}
	j.retry = schedule.Retry{Failures: p.Failures, LastFailure: p.LastFailure}
	if !p.FirstSeen.IsZero() {
		j.firstSeen = p.FirstSeen
	}
	j.lastRun, j.lastEnd, j.lastSuccess = p.LastRun, p.LastEnd, p.LastSuccess
	j.lastResult, j.lastError, j.lastRevision = p.LastResult, p.LastError, p.LastRevision
	j.thawFailed = p.ThawFailed
	// An older daemon left a 0 out: one of the two known means both are.
	if p.LastReadBytes != nil || p.LastWrittenBytes != nil {
		j.lastRead, j.lastWritten, j.measured = deref(p.LastReadBytes), deref(p.LastWrittenBytes), true
	}
	j.repoBytes = p.RepositoryBytes
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// plan is the job's next run as the schedule and its backoff have it.
func (s *scheduler) plan(j *jobState, now time.Time) schedule.Plan {
	p := j.job.Schedule.NextDue(now, j.repo.Last, j.spread)
	return p.Hold(j.retry.NotBefore(s.global.Backoff))
}

func (s *scheduler) replan(j *jobState, now time.Time) {
	p := s.plan(j, now)
	j.next, j.nextTags = p.At, p.Tags
}

// ready reports whether an idle job waits for a worker.
func (j *jobState) ready(now time.Time) bool {
	return !j.running && !j.removed && (j.manual || !j.next.IsZero() && !j.next.After(now))
}

// waiting reports whether a job waits for a worker of this daemon: never
// once the daemon stops, when nothing starts any more, nor a job another
// member of its fleet runs.
func (s *scheduler) waiting(j *jobState, now time.Time) bool {
	return !s.stopping && j.ready(now) && s.mine(j)
}

// due returns the runs to start at now, at most as many as there are free
// workers: manual runs first, in the order asked, then the jobs that have
// waited longest. The jobs are marked running.
func (s *scheduler) due(now time.Time) []launch {
	free := s.global.WorkerLimit - s.running
	if s.stopping || free <= 0 {
		return nil
	}
	var ready []*jobState
	for _, j := range s.jobs {
		if j.ready(now) && s.mine(j) {
			ready = append(ready, j)
		}
	}
	slices.SortFunc(ready, func(a, b *jobState) int {
		if a.manual != b.manual {
			if a.manual {
				return -1
			}
			return 1
		}
		if a.manual {
			return cmp.Compare(a.asked, b.asked)
		}
		return cmp.Or(a.next.Compare(b.next), strings.Compare(a.job.Name, b.job.Name))
	})
	var out []launch
	for _, j := range ready[:min(free, len(ready))] {
		// Plan again at the start time: the run takes every tag due by now.
		// A manual run takes the tags of the job's next run, backoff or not.
		p := j.job.Schedule.NextDue(now, j.repo.Last, j.spread)
		if !j.manual {
			p = p.Hold(j.retry.NotBefore(s.global.Backoff))
		}
		j.running, j.started, j.runTags = true, now, p.Tags
		j.stage.Store("starting")
		out = append(out, launch{job: j.job, tags: p.Tags, manual: j.manual, stage: j.stage})
		j.manual = false
		s.running++
	}
	return out
}

// wake is when due should next be asked: the earliest time an idle job
// becomes due, zero when there is none or no worker is free (a run ending
// is an event of its own).
func (s *scheduler) wake() time.Time {
	if s.stopping || s.running >= s.global.WorkerLimit {
		return time.Time{}
	}
	var at time.Time
	for _, j := range s.jobs {
		if j.running || j.removed || j.next.IsZero() || !s.mine(j) {
			continue
		}
		if at.IsZero() || j.next.Before(at) {
			at = j.next
		}
	}
	return at
}

// finish records the end of a job's run at now, with its repository as
// read afterwards, and plans the next run. It returns the outcome as the
// daemon's log tells it.
func (s *scheduler) finish(name string, res Result, info jobstatus.RepoInfo, now time.Time) string {
	j, ok := s.jobs[name]
	if !ok || !j.running {
		return "finished, but was not running"
	}
	s.running--
	j.running = false
	j.stage.Store("")
	if j.removed {
		delete(s.jobs, name)
		return "finished after it was removed from the configuration"
	}
	if res.NotRun != nil {
		// Not this daemon's run after all (its lease is gone) or no fleet
		// run slot free: nothing happened to the job. Said once, not at
		// every retry (a job waiting for a run slot retries every quarter
		// lease).
		s.replan(j, now)
		if d := res.NotRun.RetryIn; d > 0 && j.next.Before(now.Add(d)) {
			j.next = now.Add(d)
		}
		msg := fmt.Sprintf("not run: %v", res.Err)
		if msg == j.notRun {
			return ""
		}
		j.notRun = msg
		return msg
	}
	j.notRun = ""
	j.repo = info
	if ThawFailed(res.Err) {
		j.thawFailed = now
	}
	if res.Interrupted {
		j.lastRun, j.lastEnd, j.lastResult, j.lastError = j.started, now, "interrupted", res.Err.Error()
		s.replan(j, now)
		return fmt.Sprintf("run interrupted after %s: %v", now.Sub(j.started).Round(time.Millisecond), res.Err)
	}
	err := res.Err
	if err == nil && info.Err != "" {
		err = fmt.Errorf("repository unreadable after the run: %s", info.Err)
	}
	if err == nil {
		err = s.missingTags(j)
	}
	j.lastRun, j.lastEnd, j.lastRevision = j.started, now, res.Revision
	var msg string
	if err != nil {
		j.retry = j.retry.Failed(now)
		j.lastResult, j.lastError = "failed", err.Error()
		s.replan(j, now)
		msg = fmt.Sprintf("run failed after %s: %v; failure %d, next try %s", now.Sub(j.started).Round(time.Millisecond),
			err, j.retry.Failures, j.next.Format(logTime))
	} else {
		j.retry = j.retry.Succeeded()
		j.lastResult, j.lastError, j.lastSuccess = "ok", "", now
		j.thawFailed = time.Time{} // its freeze and thaw went well: not frozen now
		s.replan(j, now)
		msg = fmt.Sprintf("run succeeded in %s: revision %s; next run %s (%s)", now.Sub(j.started).Round(time.Millisecond),
			res.Revision, j.next.Format(logTime), strings.Join(j.nextTags, ","))
	}
	for _, w := range res.Warnings {
		msg += "; warning: " + w
	}
	return msg
}

// missingTags guards against a run that succeeded without its revision
// counting for the tags it was started for: the tags would be due at once
// again and the job would run in a loop, the original backy's worst habit.
// Such a run counts as failed, so the backoff spaces the retries.
func (s *scheduler) missingTags(j *jobState) error {
	var missing []string
	for _, t := range j.runTags {
		if j.repo.Last[t].Before(j.started) {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("no trusted revision with tags %s appeared", strings.Join(missing, ","))
}

// trigger asks for a manual run of a job. It ignores the job's backoff but
// does not reset it: only a successful run does.
func (s *scheduler) trigger(name string, now time.Time) (string, error) {
	j, ok := s.jobs[name]
	if !ok || j.removed {
		return "", fmt.Errorf("%w %q", ErrUnknownJob, name)
	}
	switch {
	case j.running:
		return "already running", nil
	case s.stopping:
		return "", errors.New("daemon: shutting down")
	case j.manual:
		return "already queued", nil
	}
	s.asks++
	j.manual, j.asked = true, s.asks
	return "queued", nil
}
