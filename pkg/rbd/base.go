package rbd

import (
	"fmt"
	"slices"
	"strings"

	"github.com/backy/backy/pkg/extent"
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
		r, parent, err := repo.NewestRevision(opt.BaseFrom, opt.Repo...)
		if err != nil {
			return "", err
		}
		if r != nil {
			r.Close()
		}
		switch {
		case parent == nil:
			opt.log().Info(fmt.Sprintf("%s has no revisions yet: full stream", opt.BaseFrom))
			return "", nil
		case parent.IsDistrusted():
			opt.log().Info(fmt.Sprintf("newest revision %s is distrusted: full stream", parent.ID))
			return "", nil
		case parent.Snapshot == "":
			opt.log().Info(fmt.Sprintf("newest revision %s names no snapshot: full stream", parent.ID))
			return "", nil
		case strings.HasPrefix(parent.Source, extent.RBDSource) && parent.Source != opt.Image.Source():
			opt.log().Info(fmt.Sprintf("newest revision %s was taken from %s, not %s: full stream", parent.ID, parent.Source, opt.Image.Source()))
			return "", nil
		}
		want = parent.Snapshot
	default:
		return "", nil
	}
	if !slices.ContainsFunc(snaps, func(s Snap) bool { return s.Name == want }) {
		opt.log().Info(fmt.Sprintf("base snapshot %s no longer exists on %s: full stream", want, opt.Image.Spec()))
		return "", nil
	}
	return want, nil
}
