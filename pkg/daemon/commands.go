package daemon

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/schedule"
)

// Bins are the programs a run starts.
type Bins struct {
	Extract string // backy-extract
	Store   string // backy-store
	Shell   string // /bin/sh, for command sources
}

// A pipeline is one or more commands, each one's stdout feeding the next
// one's stdin.
type pipeline [][]string

// String renders the pipeline as a person would type it, for the job log.
func (p pipeline) String() string {
	parts := make([]string, len(p))
	for i, argv := range p {
		words := make([]string, len(argv))
		for j, w := range argv {
			words[j] = shellQuote(w)
		}
		parts[i] = strings.Join(words, " ")
	}
	return strings.Join(parts, " | ")
}

// shellQuote quotes w for sh when it holds anything but safe characters.
func shellQuote(w string) string {
	if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// backupPipeline reads the job's source and stores a revision with tags.
func backupPipeline(b Bins, j config.Job, tags []string) pipeline {
	var src []string
	switch j.Source.Type {
	case config.SourceFile:
		src = []string{b.Extract, "file", j.Source.Path}
		if !j.FullAlways {
			src = append(src, "--base-from", j.Directory)
			src = append(src, cephArgs(j)...)
		}
	case config.SourceRBD:
		src = []string{b.Extract, "rbd", j.Source.Pool + "/" + j.Source.Image, "--base-from", j.Directory}
		if j.FullAlways {
			src = append(src, "--full")
		}
		src = append(src, consistencyArgs(j)...)
		src = append(src, cephArgs(j)...)
	case config.SourceCommand:
		src = []string{b.Shell, "-c", j.Source.Command}
	}
	return pipeline{src, storeArgs(b, j, "--tags", strings.Join(tags, ","))}
}

// storeArgs is backy-store on the job's repository with args.
func storeArgs(b Bins, j config.Job, args ...string) []string {
	return append(append([]string{b.Store, "-b", j.Directory}, cephArgs(j)...), args...)
}

// cephArgs are the flags that tell a command how to reach the job's Ceph
// cluster (ceph-conf, ceph-user in backy.conf); none for Ceph's defaults.
func cephArgs(j config.Job) []string {
	var args []string
	if j.Ceph.Conf != "" {
		args = append(args, "--ceph-conf", j.Ceph.Conf)
	}
	if j.Ceph.User != "" {
		args = append(args, "--ceph-user", j.Ceph.User)
	}
	return args
}

// consistencyArgs are backy-extract's flags for the job's consistency
// table.
func consistencyArgs(j config.Job) []string {
	c := j.Consistency
	if c == nil {
		return nil
	}
	args := []string{"--job", j.Name}
	for _, f := range []struct{ flag, v string }{
		{"--freeze-command", c.FreezeCommand}, {"--thaw-command", c.ThawCommand},
		{"--snapshot-command", c.SnapshotCommand}, {"--guest-agent", c.GuestAgent},
	} {
		if f.v != "" {
			args = append(args, f.flag, f.v)
		}
	}
	if c.Timeout > 0 {
		args = append(args, "--consistency-timeout", c.Timeout.String())
	}
	return append(args, "--fallback", c.Fallback)
}

// verifyPipeline compares revision id with a fresh sample of the source.
// snapshot is the revision's source snapshot (RBD). A command source cannot
// be sampled, so its revision's chunks are re-read and re-hashed instead;
// the same happens to an RBD revision that names no snapshot.
func verifyPipeline(b Bins, j config.Job, id, snapshot string) pipeline {
	sample := percent(j.VerifySample)
	against := storeArgs(b, j, "verify", "-r", id, "--against", "-")
	switch {
	case j.Source.Type == config.SourceFile:
		return pipeline{{b.Extract, "file", j.Source.Path, "--sample", sample}, against}
	case j.Source.Type == config.SourceRBD && snapshot != "":
		img := j.Source.Pool + "/" + j.Source.Image + "@" + snapshot
		return pipeline{append([]string{b.Extract, "rbd", img, "--sample", sample}, cephArgs(j)...), against}
	}
	return pipeline{storeArgs(b, j, "verify", "-r", id, "--sample", sample)}
}

// expirePipeline applies the job's schedule as the daemon has it, spelt out
// with --schedule: the configuration file may have changed on disk since
// it was loaded, even to something that does not parse.
func expirePipeline(b Bins, j config.Job) pipeline {
	return pipeline{storeArgs(b, j, "expire", "--schedule", scheduleRules(j.Schedule))}
}

// purgePipeline purges the job's repository. A RADOS job's pool is shared
// by many jobs and a purge sweeps all of it, so it is swept at most once a
// day (docs/repository.md, "Purge on a shared pool").
func purgePipeline(b Bins, j config.Job) pipeline {
	if repo.IsRados(j.Directory) {
		return pipeline{storeArgs(b, j, "purge", "--min-interval", PoolPurgeInterval.String())}
	}
	return pipeline{storeArgs(b, j, "purge")}
}

// PoolPurgeInterval is how often the daemon sweeps a shared RADOS pool.
const PoolPurgeInterval = 24 * time.Hour

// scheduleRules writes s in backy-store expire's TAG=INTERVAL:KEEP form.
func scheduleRules(s schedule.Schedule) string {
	var parts []string
	for _, r := range s.Rules() {
		parts = append(parts, fmt.Sprintf("%s=%s:%d", r.Tag, schedule.FormatDuration(r.Interval), r.Keep))
	}
	return strings.Join(parts, ",")
}

func percent(v float64) string {
	return strconv.FormatFloat(v, 'g', -1, 64) + "%"
}
