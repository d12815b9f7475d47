package daemon

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/fsperm"
	"github.com/backy/backy/pkg/jobstatus"
)

// The daemon's reaction to SIGHUP, reload and stop requests.

func (d *daemon) hangup() {
	if err := d.log.Reopen(); err != nil {
		d.log.Info(fmt.Sprintf("SIGHUP: %v; logging to the old file", err))
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
	if err == nil {
		err = fleetUnchanged(d.cfg.Global, c.Global)
	}
	if err == nil && c.Global.StatusFile != d.cfg.Global.StatusFile {
		// Made as at the start: a status file that cannot be written
		// would look to backy-check like a daemon that is not running.
		if e := fsperm.MkdirAllLikeParent(filepath.Dir(c.Global.StatusFile)); e != nil {
			err = fmt.Errorf("daemon: status file: %w", e)
		}
	}
	if err != nil {
		var list config.List
		if errors.As(err, &list) && len(list) > 1 {
			for _, e := range list {
				d.log.Info(fmt.Sprintf("reload (%s): %v", by, e))
			}
		}
		d.log.Info(fmt.Sprintf("reload (%s) failed, keeping the previous configuration: %v", by, err))
		return "", err
	}
	if !slices.Equal(c.Global.ConsoleAddresses, d.cfg.Global.ConsoleAddresses) || c.Global.ConsolePort != d.cfg.Global.ConsolePort || c.Global.ConsoleSocket != d.cfg.Global.ConsoleSocket {
		d.log.Info(fmt.Sprintf("reload (%s): console-addresses, console-port and console-socket take effect at the next start", by))
	}
	if c.Global.MetricsListen != d.cfg.Global.MetricsListen {
		d.log.Info(fmt.Sprintf("reload (%s): metrics-listen takes effect at the next start", by))
	}
	now := time.Now()
	added, removed := d.s.setConfig(c, d.scanAll(c), nil, now)
	d.fleet.setJobs(c.JobNames())
	d.cfg, d.loaded, d.nextStatus = c, now, now
	d.warnSources(c, added)
	msg := fmt.Sprintf("reloaded %s: %d jobs, %d added, %d removed", c.File, len(c.Jobs), len(added), len(removed))
	d.log.Info(fmt.Sprintf("reload (%s): %s", by, msg))
	return msg, nil
}

// scanAll reads every job's repository, a few at a time.
func (d *daemon) scanAll(c *config.Config) map[string]jobstatus.RepoInfo {
	names := c.JobNames()
	dirs := make([]jobstatus.Location, len(names))
	for i, n := range names {
		dirs[i] = jobstatus.Location{Dir: c.Jobs[n].Directory, Ceph: c.Jobs[n].Ceph}
	}
	infos := jobstatus.ScanRepos(dirs, 8)
	m := make(map[string]jobstatus.RepoInfo, len(names))
	for i, n := range names {
		m[n] = infos[i]
		if infos[i].Err != "" {
			d.log.Info(fmt.Sprintf("%s: warning: %s", n, infos[i].Err))
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
			d.log.Info(fmt.Sprintf("%s: warning: %v", n, err))
		}
	}
}

// shutdown stops starting runs, gives the running ones the grace period,
// then ends them, and writes a last status that says the daemon stopped.
func (d *daemon) shutdown(why string) error {
	d.s.stopping = true
	d.console.close()
	d.metrics.close()
	d.log.Info(fmt.Sprintf("stopping (%s): %d runs in progress, grace period %s", why, d.s.running, d.opt.Grace))
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
				d.log.Info(fmt.Sprintf("%s again: ending %d runs now", sigName(sig), d.s.running))
				d.cancelRuns()
			}
		case <-grace.C:
			if d.s.running > 0 {
				d.log.Info(fmt.Sprintf("grace period over: ending %d runs", d.s.running))
				d.cancelRuns()
			}
		}
	}
	d.cancelRuns()
	d.writeStatus(time.Now(), true)
	d.fleet.leave()
	d.log.Info("stopped")
	return nil
}
