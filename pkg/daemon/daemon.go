package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/backy/backy/pkg/config"
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
	lock       *os.File
	console    *console
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
	name string
	res  Result
	info RepoInfo
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
	defer d.lock.Close()
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
			lock.Close()
			return nil, err
		}
		d.runner = NewPipelineRunner(bins, env, filepath.Join(g.BaseDir, StateDir, "log"))
		d.log.Printf("using %s and %s", bins.Extract, bins.Store)
	}
	if err := os.MkdirAll(filepath.Dir(g.StatusFile), 0o755); err != nil {
		lock.Close()
		return nil, fmt.Errorf("daemon: status file: %w", err)
	}
	prev, err := ReadStatus(g.StatusFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		d.log.Printf("ignoring the previous status file: %v", err)
	}
	if d.console, err = openConsole(d, g.ConsoleAddresses, g.ConsolePort); err != nil {
		lock.Close()
		return nil, err
	}
	if v := os.Getenv(schedule.TestMinIntervalEnv); v != "" {
		d.log.Printf("warning: %s=%s: intervals down to %s are accepted; this is for tests only",
			schedule.TestMinIntervalEnv, v, schedule.FormatDuration(schedule.MinimumInterval()))
	}
	now := time.Now()
	d.s.setConfig(d.cfg, d.scanAll(d.cfg), prev, now)
	d.warnSources(d.cfg, d.cfg.JobNames())
	d.log.Printf("started: pid %d, %s, %d jobs, worker-limit %d, status file %s, console %s",
		os.Getpid(), d.cfg.File, len(d.cfg.Jobs), g.WorkerLimit, g.StatusFile, d.console.where())
	go d.console.serve()
	return d, nil
}

// loop is the daemon's one goroutine that owns the job states.
func (d *daemon) loop(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		d.startDue(now)
		if !now.Before(d.nextStatus) {
			d.writeStatus(now, false)
			d.nextStatus = now.Add(d.cfg.Global.StatusInterval)
		}
		wait := d.nextStatus
		if w := d.s.wake(); !w.IsZero() && w.Before(wait) {
			wait = w
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
		case <-timer.C:
		}
	}
}

// startDue starts the runs that are due, as far as workers are free.
func (d *daemon) startDue(now time.Time) {
	for _, l := range d.s.due(now) {
		how := ""
		if l.manual {
			how = " by hand"
		}
		d.log.Printf("%s: run started%s with tags %s", l.job.Name, how, joinTags(l.tags))
		go d.execute(l)
	}
}

func (d *daemon) execute(l launch) {
	res := d.runner.Run(d.runCtx, l.job, l.tags, func(stage string) { l.stage.Store(stage) })
	if d.runCtx.Err() != nil && res.Err != nil {
		res.Interrupted = true
	}
	d.done <- finished{name: l.job.Name, res: res, info: ScanRepo(l.job.Directory)}
}

func (d *daemon) finish(f finished) {
	d.log.Printf("%s: %s", f.name, d.s.finish(f.name, f.res, f.info, time.Now()))
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

func (d *daemon) hangup() {
	if err := d.log.Reopen(); err != nil {
		d.log.Printf("SIGHUP: %v; logging to the old file", err)
	}
	d.reload("SIGHUP")
}

// reload reads the configuration again. A configuration with any problem is
// refused as a whole and the daemon goes on with the one it has.
func (d *daemon) reload(by string) (string, error) {
	c, err := d.opt.Load(d.opt.ConfigPath)
	if err == nil && c.Global.BaseDir != d.cfg.Global.BaseDir {
		err = fmt.Errorf("daemon: base-dir cannot change from %s to %s while running; restart backy-schedule", d.cfg.Global.BaseDir, c.Global.BaseDir)
	}
	if err != nil {
		var list config.List
		if errors.As(err, &list) && len(list) > 1 {
			for _, e := range list {
				d.log.Printf("reload (%s): %v", by, e)
			}
		}
		d.log.Printf("reload (%s) failed, keeping the previous configuration: %v", by, err)
		return "", err
	}
	if !slices.Equal(c.Global.ConsoleAddresses, d.cfg.Global.ConsoleAddresses) || c.Global.ConsolePort != d.cfg.Global.ConsolePort {
		d.log.Printf("reload (%s): console-addresses and console-port take effect at the next start", by)
	}
	now := time.Now()
	added, removed := d.s.setConfig(c, d.scanAll(c), nil, now)
	d.cfg, d.loaded, d.nextStatus = c, now, now
	d.warnSources(c, added)
	msg := fmt.Sprintf("reloaded %s: %d jobs, %d added, %d removed", c.File, len(c.Jobs), len(added), len(removed))
	d.log.Printf("reload (%s): %s", by, msg)
	return msg, nil
}

// scanAll reads every job's repository, a few at a time.
func (d *daemon) scanAll(c *config.Config) map[string]RepoInfo {
	names := c.JobNames()
	dirs := make([]string, len(names))
	for i, n := range names {
		dirs[i] = c.Jobs[n].Directory
	}
	infos := ScanRepos(dirs, 8)
	m := make(map[string]RepoInfo, len(names))
	for i, n := range names {
		m[n] = infos[i]
		if infos[i].Err != "" {
			d.log.Printf("%s: warning: %s", n, infos[i].Err)
		}
	}
	return m
}

// warnSources logs the jobs whose file source is missing. They stay
// scheduled: a volume that is back by the next run is no reason to stop
// all the other backups, and the failed runs and backy-check tell the rest.
func (d *daemon) warnSources(c *config.Config, names []string) {
	for _, n := range names {
		if err := c.Jobs[n].CheckSource(); err != nil {
			d.log.Printf("%s: warning: %v", n, err)
		}
	}
}

func (d *daemon) writeStatus(now time.Time, stopped bool) {
	g := d.cfg.Global
	st := &Status{
		Format: StatusFormat, Written: now, Started: d.started, PID: os.Getpid(), Version: d.opt.Version,
		Config: d.cfg.File, StatusInterval: g.StatusInterval.Seconds(), WorkerLimit: g.WorkerLimit,
		Running: d.s.running, Jobs: d.s.jobStatuses(now),
	}
	if stopped {
		st.Stopped = now
	}
	if err := WriteStatus(g.StatusFile, st); err != nil {
		d.log.Printf("%v", err)
	}
}

// shutdown stops starting runs, gives the running ones the grace period,
// then ends them, and writes a last status that says the daemon stopped.
func (d *daemon) shutdown(why string) error {
	d.s.stopping = true
	d.console.close()
	d.log.Printf("stopping (%s): %d runs in progress, grace period %s", why, d.s.running, d.opt.Grace)
	d.writeStatus(time.Now(), false)
	grace := time.NewTimer(d.opt.Grace)
	defer grace.Stop()
	for d.s.running > 0 {
		select {
		case f := <-d.done:
			d.finish(f)
		case r := <-d.requests:
			r.fn()
			close(r.done)
		case sig := <-d.opt.Signals:
			if sig != syscall.SIGHUP && d.runCtx.Err() == nil {
				d.log.Printf("%s again: ending %d runs now", sigName(sig), d.s.running)
				d.cancelRuns()
			}
		case <-grace.C:
			if d.s.running > 0 {
				d.log.Printf("grace period over: ending %d runs", d.s.running)
				d.cancelRuns()
			}
		}
	}
	d.cancelRuns()
	d.writeStatus(time.Now(), true)
	d.log.Printf("stopped")
	return nil
}

func joinTags(tags []string) string {
	if len(tags) == 0 {
		return "(none)"
	}
	return strings.Join(tags, ",")
}

func sigName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		return signalName(s)
	}
	return sig.String()
}

func pidOf() int { return os.Getpid() }
