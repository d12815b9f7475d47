package rbd

import (
	"errors"
	"os"
	"slices"
	"strings"

	"github.com/backy/backy/pkg/repo"
)

// chooseBase decides what a new stream is relative to: "" for a full
// stream. It must agree with what backy-store accepts - a differential
// stream is only ever relative to the snapshot of the repository's newest
// revision, and never to a distrusted one - and it falls back to a full
// stream whenever the base snapshot is not there to diff against.
func chooseBase(opt *Options, snaps []Snap) (string, error) {
	var want string
	switch {
	case opt.Full:
		return "", nil
	case opt.FromSnap != "":
		want = opt.FromSnap
	case opt.BaseFrom != "":
		parent, err := newestRevision(opt.BaseFrom)
		if err != nil {
			return "", err
		}
		switch {
		case parent == nil:
			opt.logf("%s has no revisions yet: full stream", opt.BaseFrom)
			return "", nil
		case parent.IsDistrusted():
			opt.logf("newest revision %s is distrusted: full stream", parent.ID)
			return "", nil
		case parent.Snapshot == "":
			opt.logf("newest revision %s names no snapshot: full stream", parent.ID)
			return "", nil
		case strings.HasPrefix(parent.Source, "rbd:") && parent.Source != opt.Image.Source():
			opt.logf("newest revision %s was taken from %s, not %s: full stream", parent.ID, parent.Source, opt.Image.Source())
			return "", nil
		}
		want = parent.Snapshot
	default:
		return "", nil
	}
	if !slices.ContainsFunc(snaps, func(s Snap) bool { return s.Name == want }) {
		opt.logf("base snapshot %s no longer exists on %s: full stream", want, opt.Image.Spec())
		return "", nil
	}
	return want, nil
}

// newestRevision returns the newest revision of the repository in dir, or
// nil when there is none yet. A missing or empty directory is a repository
// that backy-store has yet to create.
func newestRevision(dir string) (*repo.Revision, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || err == nil && len(entries) == 0 {
		return nil, nil
	}
	r, err := repo.Open(dir)
	if err != nil {
		return nil, err
	}
	revs, err := r.Revisions()
	if err != nil || len(revs) == 0 {
		return nil, err
	}
	return revs[len(revs)-1], nil
}
