package repo

import (
	"errors"
	"os"
	"strings"
)

// revisionBasePrefix starts the base of a differential stream that is
// relative to a revision of the receiving repository rather than to a
// source snapshot (docs/extent-stream.md, "Kinds").
const revisionBasePrefix = "revision:"

// RevisionBase is the stream base that names revision id.
func RevisionBase(id string) string { return revisionBasePrefix + id }

// IsRevisionBase reports whether base names a revision, and which.
func IsRevisionBase(base string) (id string, ok bool) {
	return strings.CutPrefix(base, revisionBasePrefix)
}

// NewestRevision returns the newest intact revision of the repository at
// loc (its metadata and index read: NewestIntact), or nil when there is
// none yet. A missing or empty directory, or a RADOS job
// that does not exist yet, is a repository that backy-store has yet to
// create, not an error. Sources use it to pick the base of a differential
// stream.
func NewestRevision(loc string, opts ...Option) (*Repo, *Revision, error) {
	if !IsRados(loc) {
		entries, err := os.ReadDir(loc)
		if errors.Is(err, os.ErrNotExist) || err == nil && (len(entries) == 0 || beingCreated(loc, entries)) {
			return nil, nil, nil
		}
	}
	r, err := Open(loc, opts...)
	if IsRados(loc) && errors.Is(err, ErrNotRepository) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	revs, _, err := r.ScanRevisions()
	if err != nil {
		return r, nil, err
	}
	rev, _, err := r.NewestIntact(revs)
	return r, rev, err
}

// beingCreated reports whether dir holds only what createDir makes before
// the marker file: a backy-store creating the repository right now (the
// other end of backy-extract --base-from DIR | backy-store -b DIR, started
// at the same moment). Such a directory has no revisions yet.
func beingCreated(dir string, entries []os.DirEntry) bool {
	if IsRepository(dir) {
		return false
	}
	for _, e := range entries {
		switch e.Name() {
		case "chunks", "revisions", "tmp", "locks":
			if !e.IsDir() {
				return false
			}
		default:
			return false
		}
	}
	return true
}
