package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/exitcode"
	"github.com/backy/backy/pkg/logline"
	"github.com/backy/backy/pkg/repo"
)

// Runner runs a job once: back up with tags, verify, expire, purge. stage
// is called as each step begins, for the console. settle is the daemon's
// word on how the run ended (whether it was interrupted or did not run);
// a runner that reports the outcome itself (the job log) calls it once on
// its result first, so that it tells the run's end as the daemon does.
type Runner interface {
	Run(ctx context.Context, job config.Job, tags []string, stage func(string), settle func(*Result)) Result
}

// Result is how a run went.
type Result struct {
	Revision string   // the revision stored, if the backup step succeeded
	Err      error    // nil: every step succeeded
	Warnings []string // problems that do not fail the run (a busy purge)
	// Interrupted is set when the daemon ended the run while stopping; it
	// is not the job's failure and does not count towards its backoff.
	Interrupted bool
	// NotRun is set when the run did not start at all: in a fleet, the
	// job's lease was lost, or every run slot of the fleet was taken.
	NotRun *NotRun
}

// NotRun says why a run did not start and when to try again.
type NotRun struct {
	RetryIn time.Duration // 0: whenever the job is due and owned again
}

// PipelineRunner is the Runner of the daemon: every step is a pipeline of
// the backy commands, logged to the job's log file.
type PipelineRunner struct {
	Bins   Bins
	LogDir string // job logs are LogDir/JOB.log
	proc   procRunner
}

// NewPipelineRunner returns a runner starting bins with environment env.
func NewPipelineRunner(bins Bins, env []string, logDir string) *PipelineRunner {
	return &PipelineRunner{Bins: bins, LogDir: logDir, proc: procRunner{env: env, killDelay: 5 * time.Second}}
}

// DieWithDaemon makes every process the runner starts get SIGKILL when the
// daemon dies (the parent-death signal): in a fleet, a dead daemon's run
// must not go on while another daemon takes the job over.
func (r *PipelineRunner) DieWithDaemon() { r.proc.dieWithParent = true }

// JobLog is the path of a job's log file.
func (r *PipelineRunner) JobLog(job string) string { return filepath.Join(r.LogDir, job+".log") }

var revisionID = regexp.MustCompile(`^[a-z][a-z2-7]{15}$`)

// Run implements Runner. A failed step ends the run: in particular expire
// never runs after a failed verification, since the distrusted new revision
// would count towards the keep counts and push good revisions out.
func (r *PipelineRunner) Run(ctx context.Context, job config.Job, tags []string, stage func(string), settle func(*Result)) (res Result) {
	log, err := openLog(r.JobLog(job.Name))
	if err != nil {
		return Result{Err: fmt.Errorf("daemon: job log: %w", err)}
	}
	defer log.Close()
	started := time.Now()
	jobLog(log).Info(fmt.Sprintf("run of %s with tags %s started", job.Name, strings.Join(tags, ",")))
	defer func() {
		settle(&res)
		for _, w := range res.Warnings {
			jobLog(log).Warn(w)
		}
		switch {
		case res.NotRun != nil:
			jobLog(log).Info(fmt.Sprintf("not run: %v", res.Err))
		case res.Interrupted:
			jobLog(log).Info(fmt.Sprintf("run interrupted after %s: %v", since(started), res.Err))
		case res.Err != nil:
			jobLog(log).Info(fmt.Sprintf("run failed after %s: %v", since(started), res.Err))
		default:
			jobLog(log).Info(fmt.Sprintf("run succeeded in %s: revision %s", since(started), res.Revision))
		}
	}()

	stage("backup")
	out, err := r.step(ctx, log, backupPipeline(r.Bins, job, tags))
	if err != nil {
		return Result{Err: fmt.Errorf("backup: %w", err)}
	}
	id := lastLine(out)
	if !revisionID.MatchString(id) {
		return Result{Err: fmt.Errorf("backup: backy-store printed %q instead of a revision id", id)}
	}
	res.Revision = id

	if job.VerifySample > 0 {
		stage("verify")
		snapshot := ""
		if job.Source.Type == config.SourceRBD {
			snapshot = revisionSnapshot(job, id)
		}
		if _, err := r.step(ctx, log, verifyPipeline(r.Bins, job, id, snapshot)); err != nil {
			res.Err = fmt.Errorf("verify: %w", err)
			return res
		}
	}
	stage("expire")
	if _, err := r.step(ctx, log, expirePipeline(r.Bins, job)); err != nil {
		res.Err = fmt.Errorf("expire: %w", err)
		return res
	}
	stage("purge")
	if _, err := r.step(ctx, log, purgePipeline(r.Bins, job)); err != nil {
		var se *StageError
		if errors.As(err, &se) && se.onlyExit(filepath.Base(r.Bins.Store), exitcode.Busy) {
			// Someone restores or verifies by hand: the chunks wait for
			// the next run's purge, nothing is wrong with this backup.
			res.Warnings = append(res.Warnings, "purge: repository busy, unused chunks stay until the next purge")
			return res
		}
		res.Err = fmt.Errorf("purge: %w", err)
	}
	return res
}

// step runs one pipeline and notes it and its outcome in the job log.
func (r *PipelineRunner) step(ctx context.Context, log *os.File, p pipeline) ([]byte, error) {
	jobLog(log).Info(fmt.Sprintf("$ %s", p))
	started := time.Now()
	out, err := r.proc.run(ctx, p, log)
	if err != nil {
		jobLog(log).Info(fmt.Sprintf("failed after %s: %v", since(started), err))
	} else {
		jobLog(log).Info(fmt.Sprintf("ok in %s", since(started)))
	}
	return out, err
}

// revisionSnapshot is the snapshot a revision was taken from, empty if it
// cannot be read (the verification then re-reads chunks instead).
func revisionSnapshot(j config.Job, id string) string {
	r, err := repo.Open(j.Directory, repo.WithCeph(j.Ceph))
	if err != nil {
		return ""
	}
	defer r.Close()
	rev, err := r.LoadRevision(id)
	if err != nil {
		return ""
	}
	return rev.Snapshot
}

// jobLog writes backy-schedule's own lines into a job's log, between the
// commands' stderr: "TIME backy-schedule: msg".
func jobLog(f *os.File) *slog.Logger { return logline.Timed(f, logTime, "backy-schedule") }

func since(t time.Time) string {
	return time.Since(t).Round(10 * time.Millisecond).String()
}

func lastLine(b []byte) string {
	lines := strings.Fields(string(b))
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}
