package upkeep

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/schedule"
)

// ParseSchedule reads a schedule written as on the command line:
// "daily=1d:9,weekly=7d:5" (per tag: interval and how many to keep).
func ParseSchedule(s string) (schedule.Schedule, error) {
	var rules []schedule.Rule
	for _, part := range strings.Split(s, ",") {
		tag, rest, ok1 := strings.Cut(strings.TrimSpace(part), "=")
		interval, keep, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			return schedule.Schedule{}, fmt.Errorf("%w: %q: want TAG=INTERVAL:KEEP, e.g. daily=1d:9", ErrBadSchedule, part)
		}
		d, err := schedule.ParseDuration(interval)
		if err != nil {
			return schedule.Schedule{}, err
		}
		n, err := strconv.Atoi(keep)
		if err != nil {
			return schedule.Schedule{}, fmt.Errorf("%w: %q: keep %q is not a number", ErrBadSchedule, part, keep)
		}
		rules = append(rules, schedule.Rule{Tag: tag, Interval: d, Keep: n})
	}
	return schedule.New(rules...)
}

// ScheduleFromConfig returns the schedule of a job in a backy
// configuration file: the job named, or else the job whose repository is
// dir.
func ScheduleFromConfig(path, job, dir string) (schedule.Schedule, error) {
	c, err := config.Load(path)
	if err != nil {
		return schedule.Schedule{}, err
	}
	if job != "" {
		j, ok := c.Jobs[job]
		if !ok {
			return schedule.Schedule{}, fmt.Errorf("%w %q in %s", ErrJobNotInConfig, job, path)
		}
		return j.Schedule, nil
	}
	want := canonical(dir)
	for _, name := range c.JobNames() {
		if canonical(c.Jobs[name].Directory) == want {
			return c.Jobs[name].Schedule, nil
		}
	}
	return schedule.Schedule{}, fmt.Errorf("%w: none in %s has its repository in %s (name one with --job)", ErrJobNotInConfig, path, dir)
}

func canonical(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return dir
}

// Expire applies the retention of s at the time opt.Now: revisions lose
// the schedule tags they are too old for, and those left without any tag
// are removed, never the newest (pkg/schedule.Expire decides). With dryRun
// it only reports. It returns the changes. Revisions whose metadata cannot
// be read, or whose index is missing or has the wrong length (what status
// calls damaged), count for nothing and are left alone (forget removes
// them): a damaged newest revision must not count as the newest, nor as one
// of those a tag keeps, or the schedule would remove the last revision that
// still restores.
func Expire(r *repo.Repo, s schedule.Schedule, dryRun bool, opt Options) ([]schedule.Change, error) {
	opt.defaults()
	meta, revs, bad, err := lockedRevisions(r)
	if err != nil {
		return nil, err
	}
	defer meta.Unlock()
	for _, e := range bad {
		opt.Log.Info(fmt.Sprintf("damaged, left alone: %v", e))
	}
	infos := make([]schedule.RevisionInfo, 0, len(revs))
	byID := make(map[string]*repo.Revision, len(revs))
	for _, rev := range revs {
		if err := r.QuickCheckIndex(rev); errors.Is(err, repo.ErrCorruptIndex) {
			opt.Log.Info(fmt.Sprintf("damaged, left alone: revision %s: %v", rev.ID, err))
			continue
		} else if err != nil {
			return nil, err // cannot tell: better no expiry than a wrong one
		}
		infos = append(infos, schedule.RevisionInfo{ID: rev.ID, Time: rev.Time, Tags: rev.Tags, Distrusted: rev.IsDistrusted()})
		byID[rev.ID] = rev
	}
	changes := schedule.Expire(infos, s, opt.Now())
	verb := map[bool]string{false: "", true: "would be "}[dryRun]
	for _, c := range changes {
		rev := byID[c.ID]
		if c.Remove {
			opt.Log.Info(fmt.Sprintf("revision %s (%s): %sremoved, it loses %s", c.ID, rev.Time.Local().Format(time.DateTime), verb, tagList(c.Untag)))
			if !dryRun {
				if err := r.RemoveRevision(c.ID); err != nil {
					return nil, err
				}
			}
			continue
		}
		opt.Log.Info(fmt.Sprintf("revision %s (%s): %suntagged %s, keeps %s", c.ID, rev.Time.Local().Format(time.DateTime), verb, tagList(c.Untag), tagList(c.Tags)))
		if !dryRun {
			rev.Tags = c.Tags
			if err := r.SaveRevision(rev); err != nil {
				return nil, err
			}
		}
	}
	return changes, nil
}

func tagList(tags []string) string { return cmp.Or(strings.Join(tags, ","), "no tags") }
