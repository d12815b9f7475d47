package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/backy/backy/pkg/fsperm"
)

// dirBackend is a repository in one self-contained directory
// (docs/repository.md, "Layout"): chunks/, revisions/ID.rev and ID.idx,
// tmp/ for files until they are renamed into place, locks/.
type dirBackend struct {
	dir    string
	chunks *dirStore
	// createdTop is the highest directory openOrCreateDir made on the way
	// to the repository (the repository's own, or a missing parent);
	// empty when the directory existed.
	createdTop string
	// perm says who may read the repository's metadata (pkg/fsperm):
	// shared with the directory's group when that is 750. Chunks and
	// indexes are always private to the owner.
	perm fsperm.Mode
	// owned checks once, before the first exclusive lock, that the
	// repository is this user's own (checkOwned).
	owned func() error
	// restricted is set once this process closed the directories of a
	// repository an older backy made open to everyone.
	restricted bool
}

// restrict closes the directories of the repository to everyone but the
// owner (and its group, for the metadata, if shared), before this process
// first writes to it: a backy before fsperm made them 755 and chunks 444.
// Closing the 260 directories is enough for nobody else to reach a file;
// the files keep their modes (rewriting them all would cost a pass over
// every chunk).
func (d *dirBackend) restrict() error {
	if d.restricted {
		return nil
	}
	for _, p := range []string{d.dir, filepath.Join(d.dir, "revisions"), filepath.Join(d.dir, "locks")} {
		if err := d.perm.Restrict(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	subs, _ := filepath.Glob(filepath.Join(d.dir, "chunks", "??"))
	for _, p := range append([]string{filepath.Join(d.dir, "chunks"), filepath.Join(d.dir, "tmp")}, subs...) {
		if err := fsperm.Private.Restrict(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	d.restricted = true
	return nil
}

func openDir(dir string) (*Repo, error) {
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s has no %s file", ErrNotRepository, dir, configFile)
		}
		if errors.Is(err, syscall.ENOTDIR) {
			return nil, notDir(dir)
		}
		return nil, fmt.Errorf("repo: %w", err)
	}
	format, err := checkConfig(b, filepath.Join(dir, configFile))
	if err != nil {
		return nil, err
	}
	perm := fsperm.Of(dir)
	d := &dirBackend{dir: dir, chunks: newDirStore(dir), perm: perm}
	d.owned = sync.OnceValue(d.checkOwned)
	r := newRepo(d, dir)
	r.format = format
	return r, nil
}

// notDir is the error of a repository path that is a file, or lies under
// one: no repository there, as for a missing one (exit 6).
func notDir(dir string) error {
	return fmt.Errorf("%w: %s is not a directory", ErrNotRepository, dir)
}

func openOrCreateDir(dir string) (*Repo, error) {
	if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil {
		return openDir(dir)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, syscall.ENOTDIR) {
		return nil, notDir(dir)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("repo: %w", err)
	}
	top := missingTop(dir)
	if len(entries) > 0 && !unfinished(dir, entries) {
		return nil, fmt.Errorf("%w: %s is not empty and has no %s file", ErrNotRepository, dir, configFile)
	}
	if err := createDir(dir); err != nil {
		// Part way (a full disk): take back what this creation made, so
		// that no directory is left that is not a repository. Only empty
		// directories go: another creator's files stay.
		for _, sub := range layout {
			_ = os.Remove(filepath.Join(dir, sub))
		}
		removeMadeDirs(dir, top)
		return nil, err
	}
	r, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	r.created = true
	r.b.(*dirBackend).createdTop = top
	return r, nil
}

// missingTop returns the highest of dir and its parents that does not
// exist, "" when dir exists.
func missingTop(dir string) string {
	top := ""
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			return top
		}
		top = p
		if filepath.Dir(p) == p {
			return top
		}
	}
}

// layout is what createDir makes before the marker file.
var layout = []string{"chunks", "revisions", "tmp", "locks"}

// unfinished reports whether dir, without a marker file, holds only what
// an interrupted createDir or discard leaves: layout directories with no
// file in them but the marker's temporary copy in tmp/. A repository
// killed while being made is finished by the next open instead of being
// refused for good as "not empty" (found by test/rados TestKills, a copy
// to a new directory killed between its mkdir and its marker file).
func unfinished(dir string, entries []os.DirEntry) bool {
	for _, e := range entries {
		if !e.IsDir() || !slices.Contains(layout, e.Name()) {
			return false
		}
	}
	tmp := filepath.Join(dir, "tmp")
	foreign := errors.New("a file no creation leaves")
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if filepath.Dir(p) != tmp || !fsperm.IsTemp(e.Name(), configFile) {
			return foreign
		}
		return nil
	})
	return err == nil
}

// createDir lays out a repository, or finishes the layout of one an
// interrupted createDir left (unfinished). The subdirectories are made durable
// before the marker file appears: without the sync between them a power
// cut could keep the marker and lose a subdirectory (found by
// TestPowerCutCreateRepository).
func createDir(dir string) error {
	// A new repository shares its metadata with a group when the directory
	// it is made in is shared (750, pkg/fsperm), so that backy-check run
	// by a monitoring user can read it; chunks and indexes, the disk's
	// content, stay private to the owner. A directory umask 022 made (755)
	// is closed.
	if err := fsperm.MkdirAllLikeParent(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := fsperm.Of(filepath.Dir(dir)).Mkdir(dir); err != nil {
		return err
	}
	perm := fsperm.Of(dir)
	for _, sub := range layout {
		m := perm
		if sub == "chunks" || sub == "tmp" {
			m = fsperm.Private
		}
		if err := m.Mkdir(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	// Closed once the layout is made, so that a directory the layout
	// cannot be made in (one the user may not write) keeps its mode.
	if err := perm.Restrict(dir); err != nil {
		return err
	}
	if err := fsperm.Sync(dir); err != nil {
		return err
	}
	if err := perm.WriteFile(filepath.Join(dir, "tmp"), filepath.Join(dir, configFile), newConfig()); err != nil {
		return err
	}
	return fsperm.Sync(filepath.Dir(filepath.Clean(dir)))
}

// IsRepository reports whether dir holds a repository (its marker file).
func IsRepository(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, configFile))
	return err == nil
}

// TmpDir is where temporary files live until they are renamed into place
// (the directory backend).
func (r *Repo) TmpDir() string { return filepath.Join(r.Dir, "tmp") }

func (d *dirBackend) Location() string   { return d.dir }
func (d *dirBackend) Chunks() ChunkStore { return d.chunks }
func (d *dirBackend) Close() error       { return nil }

func (d *dirBackend) revPath(id, ext string) string {
	return filepath.Join(d.dir, "revisions", id+ext)
}

func (d *dirBackend) tmp() string { return filepath.Join(d.dir, "tmp") }

func (d *dirBackend) RevisionIDs() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(d.dir, "revisions"))
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ".rev"); ok && !strings.HasPrefix(id, ".") {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (d *dirBackend) ReadMeta(id string) ([]byte, error) {
	b, err := os.ReadFile(d.revPath(id, ".rev"))
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	return b, nil
}

func (d *dirBackend) WriteMeta(id string, b []byte) error {
	return d.perm.WriteFile(d.tmp(), d.revPath(id, ".rev"), b)
}

func (d *dirBackend) ReadIndex(id string) ([]byte, error) {
	path := d.revPath(id, ".idx")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	if st.Size() > maxIndexLen {
		return nil, fmt.Errorf("%w: %s is too large", ErrCorruptIndex, path)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && len(b) > 0 {
		return nil, fmt.Errorf("repo: read %s: %w", path, err)
	}
	return b, nil
}

func (d *dirBackend) WriteIndex(id string, b []byte) error {
	return fsperm.Private.WriteFile(d.tmp(), d.revPath(id, ".idx"), b)
}

// RemoveRevision makes the removal of the metadata durable before it
// touches the index: otherwise a power cut could keep the metadata and
// lose the index, a half revision (found by TestPowerCutEveryOperation).
func (d *dirBackend) RemoveRevision(id string) error {
	if err := os.Remove(d.revPath(id, ".rev")); err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	if err := fsperm.Sync(filepath.Join(d.dir, "revisions")); err != nil {
		return err
	}
	if err := os.Remove(d.revPath(id, ".idx")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("repo: %w", err)
	}
	return fsperm.Sync(filepath.Join(d.dir, "revisions"))
}

func (d *dirBackend) Lock(name string, shared bool, timeout time.Duration) (*Lock, error) {
	return d.flock(name, shared, timeout)
}

func (d *dirBackend) OrphanIndexes() ([]string, error) {
	names, err := readNames(filepath.Join(d.dir, "revisions"))
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
	return ids, nil
}

func (d *dirBackend) FindLeftovers() (Leftovers, error) {
	var l Leftovers
	tmp, err := readNames(d.tmp())
	if err != nil {
		return l, err
	}
	l.Tmp = tmp
	l.Indexes, err = d.OrphanIndexes()
	return l, err
}

func (d *dirBackend) RemoveLeftovers(l Leftovers) error {
	for _, n := range l.Tmp {
		if err := os.RemoveAll(filepath.Join(d.tmp(), n)); err != nil {
			return fmt.Errorf("repo: %w", err)
		}
	}
	if len(l.Tmp) > 0 {
		if err := fsperm.Sync(d.tmp()); err != nil {
			return err
		}
	}
	for _, id := range l.Indexes {
		if err := os.Remove(d.revPath(id, ".idx")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("repo: %w", err)
		}
	}
	if len(l.Indexes) > 0 {
		return fsperm.Sync(filepath.Join(d.dir, "revisions"))
	}
	return nil
}

// discard removes the repository's files when it holds no revision and no
// chunk, and the directory too when backy created it.
func (d *dirBackend) discard() error {
	for _, sub := range []string{"revisions", "chunks"} {
		var found bool
		err := filepath.WalkDir(filepath.Join(d.dir, sub), func(_ string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				found = true
				return filepath.SkipAll
			}
			return err
		})
		if err != nil || found {
			return err
		}
	}
	for _, sub := range append(slices.Clone(layout), configFile) {
		if err := os.RemoveAll(filepath.Join(d.dir, sub)); err != nil {
			return fmt.Errorf("repo: %w", err)
		}
	}
	removeMadeDirs(d.dir, d.createdTop)
	return nil
}

// removeMadeDirs removes dir and its parents up to top, the directories
// openOrCreateDir made on the way (none when top is ""), each only if
// nothing else is in it.
func removeMadeDirs(dir, top string) {
	for p := filepath.Clean(dir); top != ""; p = filepath.Dir(p) {
		if os.Remove(p) != nil || p == top {
			break
		}
	}
}
