package check

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/jobstatus"
	"github.com/backy/backy/pkg/schedule"
)

// Plugin states, which are also the exit codes.
const (
	OK       = 0
	Warning  = 1
	Critical = 2
	Unknown  = 3
)

var stateNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// StateName is the word the status line starts with.
func StateName(s int) string { return stateNames[s] }

// MinStale is the least age at which a status file counts as stale, however
// short the status interval: writing it can be delayed by a reload that
// reads thousands of repositories.
const MinStale = time.Minute

// staleFactor times the status interval is how old the status file may get.
const staleFactor = 3

// maxNamed is how many job names the status line lists; the lines below
// name them all.
const maxNamed = 10

// Input is everything a check looks at.
type Input struct {
	Config    *config.Config
	Status    *jobstatus.Status // nil when StatusErr is set
	StatusErr error
	Repos     map[string]jobstatus.RepoInfo // by job name
	Now       time.Time
}

// Job is the verdict on one job.
type Job struct {
	Name    string
	State   int
	Reasons []string
	// Age is the age of the newest trusted revision; HasTrusted is false
	// when there is none.
	Age        time.Duration
	HasTrusted bool
	// CrashOnly: consistent snapshots are configured, but the newest
	// revisions, at least consistency.warn-crash-runs of them, are only
	// crash-consistent; CrashRuns counts them.
	CrashOnly bool
	CrashRuns int
	// ThawFailed: a run ended in THAW FAILED and none succeeded since
	// (critical, though not outside the SLA for that); Outside: critical
	// for the SLA (too old, no trusted revision, unreadable repository).
	ThawFailed bool
	Outside    bool
}

// Evaluate judges every job and the daemon.
func Evaluate(in Input) *Report {
	var jobs []Job
	for _, name := range in.Config.JobNames() {
		jobs = append(jobs, judge(in, in.Config.Jobs[name]))
	}
	daemonState, daemonMsg := judgeDaemon(in)
	if fs, fm := judgeFleet(in); fm != "" {
		daemonState = max(daemonState, fs)
		daemonMsg = strings.TrimPrefix(daemonMsg+"; "+fm, "; ")
	}
	return report(in, jobs, daemonState, daemonMsg)
}

// judgeFleet reports a fleet's members, as the status file of this
// host's daemon has them: a warning when this daemon holds no membership
// lease or could not exchange views with the cluster.
func judgeFleet(in Input) (int, string) {
	if in.Status == nil || in.Status.Fleet == nil || !in.Status.Stopped.IsZero() {
		return OK, ""
	}
	f := in.Status.Fleet
	var alive []string
	selfAlive := false
	for _, m := range f.Members {
		if m.Alive {
			alive = append(alive, fmt.Sprintf("%s (%d %s)", m.Name, m.Jobs, plural(m.Jobs, "job", "jobs")))
			selfAlive = selfAlive || m.Name == f.Member
		}
	}
	msg := fmt.Sprintf("fleet %s: %d %s alive: %s", f.Name, len(alive), plural(len(alive), "daemon", "daemons"), strings.Join(alive, ", "))
	switch {
	case f.Error != "":
		return Warning, msg + "; " + f.Member + " cannot reach the cluster: " + f.Error
	case !selfAlive:
		return Warning, msg + "; " + f.Member + " holds no membership lease"
	}
	return OK, msg
}

// judge decides one job.
func judge(in Input, j config.Job) Job {
	info := in.Repos[j.Name]
	v := Job{Name: j.Name, CrashRuns: info.CrashRuns}
	crit := func(format string, a ...any) {
		v.State = max(v.State, Critical)
		v.Outside = true
		v.Reasons = append(v.Reasons, fmt.Sprintf(format, a...))
	}
	warn := func(format string, a ...any) {
		v.State = max(v.State, Warning)
		v.Reasons = append(v.Reasons, fmt.Sprintf(format, a...))
	}
	var st jobstatus.Job
	known := false
	if in.Status != nil {
		st, known = in.Status.Jobs[j.Name]
	}
	limit := jobstatus.SLALimit(j.Schedule)

	switch {
	case info.Err != "":
		crit("repository cannot be read: %s", info.Err)
	case info.NewestTrusted.IsZero():
		what := "never backed up"
		switch {
		case info.Revisions > 0 && info.Distrusted == info.Revisions:
			what = fmt.Sprintf("no trusted revision (all %d distrusted)", info.Revisions)
		case info.Revisions > 0:
			what = fmt.Sprintf("no trusted revision (%d of %d distrusted)", info.Distrusted, info.Revisions)
		}
		if known && st.Running {
			what += fmt.Sprintf(", first run in progress since %s", stamp(st.RunningSince))
		}
		crit("%s", what)
	default:
		v.HasTrusted = true
		v.Age = in.Now.Sub(info.NewestTrusted)
		if jobstatus.SLAState(info.NewestTrusted, j.Schedule, in.Now) != jobstatus.SLAOK {
			crit("newest trusted revision is %s old, SLA %s", age(v.Age), age(limit))
		}
	}
	if info.Distrusted > 0 && info.Distrusted < info.Revisions {
		warn("%d distrusted %s", info.Distrusted, plural(info.Distrusted, "revision", "revisions"))
	}
	if len(info.Damage) > 0 {
		warn("verification found damage: %s", strings.Join(info.Damage[:min(2, len(info.Damage))], ": "))
	}
	if info.DamagedMeta > 0 {
		warn("%d revision metadata %s cannot be read", info.DamagedMeta, plural(info.DamagedMeta, "file", "files"))
	}
	if info.DamagedIndex > 0 {
		warn("%d %s a missing or truncated index", info.DamagedIndex, plural(info.DamagedIndex, "revision has", "revisions have"))
	}
	if c := j.Consistency; c != nil && info.CrashRuns >= c.WarnCrashRuns {
		v.CrashOnly = true
		warn("the newest %d revisions are only crash-consistent (consistent snapshots are configured): %s",
			info.CrashRuns, cmp.Or(info.ConsistencyReason, "no reason recorded"))
	}
	if known && !st.ThawFailed.IsZero() {
		v.State, v.ThawFailed = Critical, true
		v.Reasons = append(v.Reasons, fmt.Sprintf("THAW FAILED at %s: the guest may still be frozen; thaw it by hand (the job log names the thaw that failed)", stamp(st.ThawFailed)))
	}
	if known && v.Outside && in.Status.Fleet != nil && st.Owner == "" && !st.Running {
		// a member whose job list lacks the job leaves it unowned, as
		// does a move in progress; the state stays what the SLA says
		v.Reasons = append(v.Reasons, fmt.Sprintf("no daemon of fleet %s runs it now (has every member reloaded the job list?)", in.Status.Fleet.Name))
	}
	switch {
	case in.Status == nil:
	case !known:
		warn("not scheduled by the running backy-schedule (reload it)")
	case st.Failures > 0:
		warn("%d failed %s in a row, last: %s", st.Failures, plural(st.Failures, "run", "runs"), st.LastError)
	}
	return v
}

// judgeDaemon decides whether a daemon is running, from its status file.
func judgeDaemon(in Input) (int, string) {
	file := in.Config.Global.StatusFile
	switch {
	case errors.Is(in.StatusErr, os.ErrNotExist):
		return Critical, fmt.Sprintf("backy-schedule is not running: no status file %s", file)
	case in.StatusErr != nil:
		return Critical, fmt.Sprintf("status file unusable: %v", in.StatusErr)
	case !in.Status.Stopped.IsZero():
		return Critical, fmt.Sprintf("backy-schedule is not running: it stopped at %s", stamp(in.Status.Stopped))
	}
	if a := in.Now.Sub(in.Status.Written); a > StaleAfter(in) {
		return Critical, fmt.Sprintf("backy-schedule is not running or hangs: status file %s is %s old", file, age(a))
	}
	return OK, ""
}

// StaleAfter is the age at which the status file counts as stale: three
// status intervals of the daemon that wrote it, at least MinStale.
func StaleAfter(in Input) time.Duration {
	interval := in.Config.Global.StatusInterval
	if in.Status != nil && in.Status.StatusInterval > 0 {
		interval = time.Duration(in.Status.StatusInterval * float64(time.Second))
	}
	return max(MinStale, staleFactor*interval)
}

// names lists up to maxNamed job names.
func names(jobs []Job) string {
	var n []string
	for _, j := range jobs[:min(maxNamed, len(jobs))] {
		n = append(n, j.Name)
	}
	s := strings.Join(n, ", ")
	if len(jobs) > maxNamed {
		s += fmt.Sprintf(" and %d more", len(jobs)-maxNamed)
	}
	return s
}

func byState(jobs []Job, state int) []Job {
	return slices.DeleteFunc(slices.Clone(jobs), func(j Job) bool { return j.State != state })
}

// age writes a duration for people: whole seconds, whole minutes past an
// hour.
func age(d time.Duration) string {
	if d >= time.Hour {
		d = d.Round(time.Minute)
	} else {
		d = d.Round(time.Second)
	}
	if d <= 0 {
		return "0s"
	}
	return schedule.FormatDuration(d)
}

func stamp(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// sortedProblems lists the jobs with problems: critical ones first, each
// group by name.
func sortedProblems(jobs []Job) []Job {
	out := slices.DeleteFunc(slices.Clone(jobs), func(j Job) bool { return j.State == OK })
	slices.SortStableFunc(out, func(a, b Job) int { return b.State - a.State })
	return out
}
