package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/flock"
	"github.com/backy/backy/pkg/fsperm"
	"github.com/backy/backy/pkg/jobstatus"
	"github.com/backy/backy/pkg/schedule"
)

// Options configure Run.
type Options struct {
	ConfigPath string
	Config     *config.Config // as loaded from ConfigPath
	Log        *Logger
	// Signals delivers SIGHUP (reload the configuration, reopen the log),
	// SIGTERM and SIGINT (stop; a second one ends running jobs at once).
	Signals <-chan os.Signal
	// Grace is how long running jobs may go on after the daemon was told to
	// stop before their processes get SIGTERM (and SIGKILL 5 s later).
	Grace   time.Duration
	Version string

	// Runner runs the jobs; nil means the backy commands found by FindBins.
	Runner Runner
	// Load reads the configuration on reload; nil means config.Load.
	Load func(path string) (*config.Config, error)
}

type daemon struct {
	opt        Options
	cfg        *config.Config
	s          *scheduler
	log        *Logger
	runner     Runner
	lock       *flock.Lock
	console    *console
	metrics    *metricsServer
	fleet      *fleetState  // nil: not in a fleet
	beat       atomic.Int64 // when the loop last came round (Unix ns): fleet member's Stalled
	done       chan finished
	requests   chan request
	exited     chan struct{}
	runCtx     context.Context
	cancelRuns context.CancelFunc
	started    time.Time
	loaded     time.Time
	nextStatus time.Time
}

type finished struct {
	name    string
	res     Result
	info    jobstatus.RepoInfo
	figures runFigures
}

type request struct {
	fn   func()
	done chan struct{}
}

// Run runs the daemon until ctx ends or a SIGTERM or SIGINT arrives on
// opt.Signals, then lets running jobs finish within opt.Grace. It returns
// nil after a clean stop; an error means it could not start (another daemon
// holds the base directory, the console port is taken, a backy command is
// missing).
func Run(ctx context.Context, opt Options) error {
	d, err := start(opt)
	if err != nil {
		return err
	}
	defer d.lock.Unlock()
	defer close(d.exited)
	return d.loop(ctx)
}

func start(opt Options) (*daemon, error) {
	if opt.Load == nil {
		opt.Load = config.Load
	}
	g := opt.Config.Global
	lock, err := lockBase(g.BaseDir)
	if err != nil {
		return nil, err
	}
	d := &daemon{
		opt: opt, cfg: opt.Config, s: newScheduler(), log: opt.Log, runner: opt.Runner, lock: lock,
		done: make(chan finished), requests: make(chan request), exited: make(chan struct{}),
		started: time.Now(), loaded: time.Now(),
	}
	d.runCtx, d.cancelRuns = context.WithCancel(context.Background())
	if d.runner == nil {
		bins, env, err := FindBins()
		if err != nil {
			lock.Unlock()
			return nil, err
		}
		pr := NewPipelineRunner(bins, env, filepath.Join(g.BaseDir, config.StateDir, "log"))
		if g.Fleet != "" {
			pr.DieWithDaemon()
		}
		d.runner = pr
		d.log.Info(fmt.Sprintf("using %s and %s", bins.Extract, bins.Store))
	}
	if err := fsperm.MkdirAllLikeParent(filepath.Dir(g.StatusFile)); err != nil {
		lock.Unlock()
		return nil, fmt.Errorf("daemon: status file: %w", err)
	}
	prev, err := jobstatus.Read(g.StatusFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Info(fmt.Sprintf("ignoring the previous status file: %v", err))
	}
	if g.Fleet != "" {
		if d.fleet, err = joinFleet(d, g); err != nil {
			lock.Unlock()
			return nil, err
		}
		d.s.owns = d.fleet.owns
	}
	if d.console, err = openConsole(d, g.ConsoleAddresses, g.ConsolePort, g.ConsoleSocket); err != nil {
		d.fleet.leave()
		lock.Unlock()
		return nil, err
	}
	if d.metrics, err = openMetrics(d, g.MetricsListen); err != nil {
		d.console.close()
		d.fleet.leave()
		lock.Unlock()
		return nil, err
	}
	if v := os.Getenv(schedule.TestMinIntervalEnv); v != "" {
		d.log.Info(fmt.Sprintf("warning: %s=%s: intervals down to %s are accepted; this is for tests only",
			schedule.TestMinIntervalEnv, v, schedule.FormatDuration(schedule.MinimumInterval())))
	}
	now := time.Now()
	d.s.setConfig(d.cfg, d.scanAll(d.cfg), prev, now)
	d.warnSources(d.cfg, d.cfg.JobNames())
	d.log.Info(fmt.Sprintf("started: pid %d, %s, %d jobs, worker-limit %d, status file %s, console %s, metrics %s",
		os.Getpid(), d.cfg.File, len(d.cfg.Jobs), g.WorkerLimit, g.StatusFile, d.console.where(), d.metrics.where()))
	go d.console.serve()
	d.metrics.serve(d.log)
	return d, nil
}

// loop is the daemon's one goroutine that owns the job states.
func (d *daemon) loop(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		d.beat.Store(now.UnixNano())
		d.startDue(now)
		if !now.Before(d.nextStatus) {
			d.writeStatus(now, false)
			d.nextStatus = now.Add(d.cfg.Global.StatusInterval)
		}
		wait := d.nextStatus
		if w := d.s.wake(); !w.IsZero() && w.Before(wait) {
			wait = w
		}
		if d.fleet != nil {
			if b := now.Add(d.fleet.lease / 4); b.Before(wait) {
				wait = b // the loop's beat for the member (stalled)
			}
		}
		timer.Reset(max(time.Millisecond, time.Until(wait)))
		select {
		case <-ctx.Done():
			return d.shutdown("interrupted")
		case sig := <-d.opt.Signals:
			if sig == syscall.SIGHUP {
				d.hangup()
				continue
			}
			return d.shutdown(sigName(sig))
		case f := <-d.done:
			d.finish(f)
		case r := <-d.requests:
			r.fn()
			close(r.done)
		case <-d.fleet.changed():
			d.takeOver()
		case <-timer.C:
		}
	}
}

// startDue starts the runs that are due, as far as workers are free.
func (d *daemon) startDue(now time.Time) {
	for _, l := range d.s.due(now) {
		go d.execute(l)
	}
}

func (d *daemon) execute(l launch) {
	release, err := d.fleet.claim(l.job.Name)
	if err != nil {
		d.done <- finished{name: l.job.Name, res: Result{Err: err, NotRun: &NotRun{RetryIn: d.fleet.retryIn(err)}}}
		return
	}
	// logged once the run has its fleet run slot: a job waiting for one
	// did not start
	how := ""
	if l.manual {
		how = " by hand"
	}
	d.log.Info(fmt.Sprintf("%s: run started%s with tags %s", l.job.Name, how, cmp.Or(strings.Join(l.tags, ","), "(none)")))
	ctx, unwatch := d.fleet.watch(d.runCtx, l.job.Name)
	// settle decides, once, whether the run was the job's own failure:
	// the runner calls it before it writes the outcome into the job log,
	// and it is called here for a runner that did not.
	settled := false
	settle := func(res *Result) {
		if settled {
			return
		}
		settled = true
		if d.runCtx.Err() != nil && res.Err != nil {
			res.Interrupted = true
		}
		d.fleet.lostDuring(ctx, res)
	}
	res := d.runner.Run(d.fleet.gate(ctx, l.job.Name), l.job, l.tags, func(stage string) { l.stage.Store(stage) }, settle)
	unwatch()
	settle(&res)
	f := finished{name: l.job.Name, res: res, info: jobstatus.ScanRepo(jobstatus.Location{Dir: l.job.Directory, Ceph: l.job.Ceph}),
		figures: measureRun(l.job, res.Revision)}
	// Given back before the loop learns the run ended (the repository
	// read under the lease still): the loop leaves the fleet, destroying
	// the member's I/O context, right after the last run's end, and a
	// loop busy elsewhere must not keep the slot.
	release()
	d.done <- f
}

func (d *daemon) finish(f finished) {
	if msg := d.s.finish(f.name, f.res, f.info, time.Now()); msg != "" {
		d.log.Info(fmt.Sprintf("%s: %s", f.name, msg))
	}
	if j, ok := d.s.jobs[f.name]; ok {
		f.figures.apply(j)
	}
}

// call runs fn on the loop goroutine; false if the loop has ended.
func (d *daemon) call(fn func()) bool {
	r := request{fn: fn, done: make(chan struct{})}
	select {
	case d.requests <- r:
	case <-d.exited:
		return false
	}
	<-r.done
	return true
}

func (d *daemon) writeStatus(now time.Time, stopped bool) {
	g := d.cfg.Global
	st := &jobstatus.Status{
		Format: jobstatus.Format, Written: now, Started: d.started, PID: os.Getpid(), Version: d.opt.Version,
		Config: d.cfg.File, StatusInterval: g.StatusInterval.Seconds(), WorkerLimit: g.WorkerLimit,
		Running: d.s.running, Jobs: d.s.jobStatuses(now),
	}
	if stopped {
		st.Stopped = now
	}
	if d.fleet != nil {
		d.fleetStatus(st)
		if stopped && st.Fleet != nil {
			// it has left the fleet: its last word must not count it alive
			for i := range st.Fleet.Members {
				if st.Fleet.Members[i].Name == st.Fleet.Member {
					st.Fleet.Members[i].Alive = false
				}
			}
		}
	}
	if err := jobstatus.Write(g.StatusFile, st); err != nil {
		d.log.Info(fmt.Sprintf("%v", err))
	}
}

func sigName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		return signalName(s)
	}
	return sig.String()
}
