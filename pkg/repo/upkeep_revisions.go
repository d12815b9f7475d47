package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// These helpers serve repository upkeep (pkg/upkeep): commands that must
// keep going past one damaged file, change one revision at a time, or clean
// up after interrupted stores.

// ScanRevisions lists the revisions like Revisions, oldest first, but does
// not stop at a damaged metadata file: it returns the readable revisions
// and one error per file that could not be read, so verify can report every
// damaged file and still check the rest.
func (r *Repo) ScanRevisions() ([]*Revision, []error, error) {
	entries, err := os.ReadDir(filepath.Join(r.Dir, "revisions"))
	if err != nil {
		return nil, nil, fmt.Errorf("repo: %w", err)
	}
	var revs []*Revision
	var bad []error
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".rev")
		if !ok || strings.HasPrefix(id, ".") {
			continue
		}
		rev, err := readRevisionFile(filepath.Join(r.Dir, "revisions", e.Name()), id)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed since the directory was read
			}
			bad = append(bad, err)
			continue
		}
		revs = append(revs, rev)
	}
	sortRevisions(revs)
	return revs, bad, nil
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
	rev, err := readRevisionFile(r.revPath(id, ".rev"), id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w %q", ErrNoRevision, id)
	}
	return rev, err
}
