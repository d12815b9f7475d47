package check

import (
	"time"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/jobstatus"
)

// scanWorkers read repositories in parallel: reading ten thousand small
// metadata files is mostly waiting, not computing.
const scanWorkers = 16

// Check loads the configuration at path, the status file it names and
// every job's repository, and judges them at now. A configuration that
// cannot be loaded is UNKNOWN: the check cannot say anything then.
func Check(path string, now time.Time) *Report {
	cfg, err := config.Load(path)
	if err != nil {
		r := Unknowable(err)
		if list, ok := err.(config.List); ok && len(list) > 1 {
			for _, e := range list {
				r.Details = append(r.Details, e.Error())
			}
		}
		return r
	}
	names := cfg.JobNames()
	dirs := make([]jobstatus.Location, len(names))
	for i, n := range names {
		dirs[i] = jobstatus.Location{Dir: cfg.Jobs[n].Directory, Ceph: cfg.Jobs[n].Ceph}
	}
	infos := jobstatus.ScanRepos(dirs, scanWorkers)
	repos := make(map[string]jobstatus.RepoInfo, len(names))
	for i, n := range names {
		repos[n] = infos[i]
	}
	st, serr := jobstatus.Read(cfg.Global.StatusFile)
	return Evaluate(Input{Config: cfg, Status: st, StatusErr: serr, Repos: repos, Now: now})
}
