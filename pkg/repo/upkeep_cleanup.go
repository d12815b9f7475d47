package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Leftovers of interrupted stores, as purge finds them: entries of tmp/
// (chunk batches, half-written metadata and index files) and index files
// whose metadata was never published (a crash between the two renames of
// Commit).
type Leftovers struct {
	Tmp     []string // names under tmp/
	Indexes []string // revision ids with an index but no metadata
}

// FindLeftovers lists the leftovers. Only call it while holding the store
// lock and the meta lock exclusively: a running store or metadata change
// has files in tmp/ that look exactly like leftovers.
func (r *Repo) FindLeftovers() (Leftovers, error) {
	var l Leftovers
	tmp, err := readNames(r.TmpDir())
	if err != nil {
		return l, err
	}
	l.Tmp = tmp
	l.Indexes, err = r.OrphanIndexes()
	return l, err
}

// OrphanIndexes lists the ids of index files without metadata. Under the
// meta lock the list is exact: Commit publishes both files while holding it.
func (r *Repo) OrphanIndexes() ([]string, error) {
	names, err := readNames(filepath.Join(r.Dir, "revisions"))
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(names))
	for _, n := range names {
		have[n] = true
	}
	var ids []string
	for _, n := range names {
		id, ok := strings.CutSuffix(n, ".idx")
		if ok && !strings.HasPrefix(id, ".") && !have[id+".rev"] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// RemoveLeftovers deletes what FindLeftovers found, under the same locks.
func (r *Repo) RemoveLeftovers(l Leftovers) error {
	for _, n := range l.Tmp {
		if err := os.RemoveAll(filepath.Join(r.TmpDir(), n)); err != nil {
			return fmt.Errorf("repo: %w", err)
		}
	}
	if len(l.Tmp) > 0 {
		if err := syncDir(r.TmpDir()); err != nil {
			return err
		}
	}
	for _, id := range l.Indexes {
		if err := os.Remove(r.revPath(id, ".idx")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("repo: %w", err)
		}
	}
	if len(l.Indexes) > 0 {
		return syncDir(filepath.Join(r.Dir, "revisions"))
	}
	return nil
}
