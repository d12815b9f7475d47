package daemon

import (
	"cmp"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backy/backy/pkg/jobstatus"
)

// jobStatus renders a job as the status file and the console show it.
func (s *scheduler) jobStatus(j *jobState, now time.Time) jobstatus.Job {
	js := jobstatus.Job{
		Schedule:          j.job.ScheduleName,
		Directory:         j.job.Directory,
		FirstSeen:         j.firstSeen,
		Running:           j.running,
		Queued:            s.waiting(j, now),
		LastRun:           j.lastRun,
		LastEnd:           j.lastEnd,
		LastResult:        j.lastResult,
		LastError:         j.lastError,
		LastRevision:      j.lastRevision,
		LastSuccess:       j.lastSuccess,
		ThawFailed:        j.thawFailed,
		Failures:          j.retry.Failures,
		LastFailure:       j.retry.LastFailure,
		Revisions:         j.repo.Revisions,
		Distrusted:        j.repo.Distrusted,
		NewestRevision:    j.repo.Newest,
		NewestTrusted:     j.repo.NewestTrusted,
		RepoError:         j.repo.Err,
		Consistency:       j.repo.Consistency,
		ConsistencyReason: j.repo.ConsistencyReason,
		FrozenSeconds:     j.repo.FrozenSeconds,
		CrashRuns:         j.repo.CrashRuns,
		SLA:               jobstatus.SLAState(j.repo.NewestTrusted, j.job.Schedule, now),

		RepositoryBytes: j.repoBytes,
	}
	if j.measured {
		read, written := j.lastRead, j.lastWritten // copies: js leaves the loop goroutine
		js.LastReadBytes, js.LastWrittenBytes = &read, &written
	}
	if j.running {
		js.RunningSince = j.started
		js.Stage, _ = j.stage.Load().(string)
		js.NextTags = j.runTags
	} else {
		js.NextDue, js.NextTags = j.next, j.nextTags
	}
	return js
}

// jobStatuses are every job's, a job removed from the configuration too
// while its run goes on (it goes when the run ends).
func (s *scheduler) jobStatuses(now time.Time) map[string]jobstatus.Job {
	m := make(map[string]jobstatus.Job, len(s.jobs))
	for name, j := range s.jobs {
		m[name] = s.jobStatus(j, now)
	}
	return m
}

// state is the one word the console's job table shows.
func state(js jobstatus.Job) string {
	switch {
	case js.Running:
		return "running:" + js.Stage
	case js.Queued:
		return "queued"
	case js.Failures > 0:
		return "failing"
	}
	return "idle"
}

// writeJobs writes the console's job table of jobs (jobStatuses, or in a
// fleet the fleet's view: another member's job as its owner last
// published it) whose name matches re (nil: all).
func writeJobs(w io.Writer, jobs map[string]jobstatus.Job, re *regexp.Regexp) int {
	names := make([]string, 0, len(jobs))
	for name := range jobs {
		if re == nil || re.MatchString(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATE\tSLA\tLAST RUN\tRESULT\tLAST SUCCESS\tNEXT\tTAGS\tFAILURES\tNEWEST TRUSTED\tCONSISTENCY")
	for _, name := range names {
		js := jobs[name]
		next := when(js.NextDue)
		if js.Running {
			next = "since " + when(js.RunningSince)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", name, state(js), js.SLA, when(js.LastRun),
			cmp.Or(js.LastResult, "-"), when(js.LastSuccess), next, cmp.Or(strings.Join(js.NextTags, ","), "-"),
			js.Failures, when(js.NewestTrusted), consistencyCell(js))
	}
	tw.Flush()
	return len(names)
}

// consistencyCell is the newest revision's consistency for the console:
// "frozen 400ms" (as backy-store status shows it), "agent", "crash", with
// "xN" for N crash-consistent revisions in a row.
func consistencyCell(js jobstatus.Job) string {
	switch {
	case js.Consistency == "frozen":
		return "frozen " + time.Duration(js.FrozenSeconds*float64(time.Second)).Round(10*time.Millisecond).String()
	case js.Consistency == "crash" && js.CrashRuns > 1:
		return fmt.Sprintf("crash x%d", js.CrashRuns)
	}
	return cmp.Or(js.Consistency, "-")
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(logTime)
}
