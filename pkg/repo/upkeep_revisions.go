package repo

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
)

// These helpers serve repository upkeep (pkg/upkeep): commands that must
// keep going past one damaged file, change one revision at a time, or clean
// up after interrupted stores.

// ScanRevisions lists the revisions like Revisions, oldest first, but does
// not stop at a damaged metadata file: it returns the readable revisions
// and one error per file that could not be read (a *RevisionError), so
// verify can report every damaged file and still check the rest.
func (r *Repo) ScanRevisions() ([]*Revision, []error, error) {
	var ids []string
	var err error
	readMeta := r.b.ReadMeta
	if ml, ok := r.b.(metaLister); ok {
		var metas map[string][]byte
		if metas, err = ml.listMeta(); err != nil {
			return nil, nil, err
		}
		ids = slices.Sorted(maps.Keys(metas)) // damaged ones reported in id order, as a directory lists them
		readMeta = func(id string) ([]byte, error) { return metas[id], nil }
	} else if ids, err = r.b.RevisionIDs(); err != nil {
		return nil, nil, err
	}
	var revs []*Revision
	var bad []error
	for _, id := range ids {
		b, err := readMeta(id)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed since it was listed
		}
		if errors.Is(err, os.ErrPermission) {
			// not damage: the file is someone else's (root's, say),
			// and forgetting it would lose an intact revision
			return nil, nil, err
		}
		var rev *Revision
		if err == nil {
			rev, err = r.decodeMeta(id, b)
		}
		if err != nil {
			bad = append(bad, &RevisionError{ID: id, Err: err})
			continue
		}
		revs = append(revs, rev)
	}
	sortRevisions(revs)
	return revs, bad, nil
}

// metaLister is a backend that reads every revision's metadata at once
// (RADOS: one omap read instead of one per revision).
type metaLister interface {
	listMeta() (map[string][]byte, error)
}

func sortRevisions(revs []*Revision) {
	sort.SliceStable(revs, func(i, j int) bool {
		if !revs[i].Time.Equal(revs[j].Time) {
			return revs[i].Time.Before(revs[j].Time)
		}
		return revs[i].ID < revs[j].ID
	})
}

// LoadRevision reads the current metadata of one revision. A revision that
// does not exist (any more) is ErrNoRevision. Callers that change it and
// save it back hold the meta lock across both, so no other change is lost.
func (r *Repo) LoadRevision(id string) (*Revision, error) {
	if id == "" || strings.ContainsAny(id, "/.") {
		return nil, fmt.Errorf("%w %q", ErrNoRevision, id)
	}
	rev, err := r.readRevision(id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w %q", ErrNoRevision, id)
	}
	return rev, err
}
