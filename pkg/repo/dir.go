package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// dirBackend is a repository in one self-contained directory
// (docs/repository.md, "Layout"): chunks/, revisions/ID.rev and ID.idx,
// tmp/ for files until they are renamed into place, locks/.
type dirBackend struct {
	dir    string
	chunks *dirStore
	// createdDir is set when openOrCreateDir made the directory itself.
	createdDir bool
}

func openDir(dir string) (*Repo, error) {
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s has no %s file", ErrNotRepository, dir, configFile)
		}
		return nil, fmt.Errorf("repo: %w", err)
	}
	format, err := checkConfig(b, filepath.Join(dir, configFile))
	if err != nil {
		return nil, err
	}
	d := &dirBackend{dir: dir, chunks: newDirStore(dir)}
	r := newRepo(d, dir)
	r.format = format
	return r, nil
}

func openOrCreateDir(dir string) (*Repo, error) {
	if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil {
		return openDir(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("repo: %w", err)
	}
	newDir := errors.Is(err, os.ErrNotExist)
	if len(entries) > 0 {
		return nil, fmt.Errorf("%w: %s is not empty and has no %s file", ErrNotRepository, dir, configFile)
	}
	if err := createDir(dir); err != nil {
		return nil, err
	}
	r, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	r.created = true
	r.b.(*dirBackend).createdDir = newDir
	return r, nil
}

// createDir lays out a repository. The subdirectories are made durable
// before the marker file appears: without the sync between them a power
// cut could keep the marker and lose a subdirectory (found by
// TestPowerCutCreateRepository).
func createDir(dir string) error {
	for _, sub := range []string{"chunks", "revisions", "tmp", "locks"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("repo: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "tmp"), filepath.Join(dir, configFile), newConfig()); err != nil {
		return err
	}
	return syncDir(filepath.Dir(filepath.Clean(dir)))
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
	return writeFileAtomic(d.tmp(), d.revPath(id, ".rev"), b)
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
	return writeFileAtomic(d.tmp(), d.revPath(id, ".idx"), b)
}

// RemoveRevision makes the removal of the metadata durable before it
// touches the index: otherwise a power cut could keep the metadata and
// lose the index, a half revision (found by TestPowerCutEveryOperation).
func (d *dirBackend) RemoveRevision(id string) error {
	if err := os.Remove(d.revPath(id, ".rev")); err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	if err := syncDir(filepath.Join(d.dir, "revisions")); err != nil {
		return err
	}
	if err := os.Remove(d.revPath(id, ".idx")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("repo: %w", err)
	}
	return syncDir(filepath.Join(d.dir, "revisions"))
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
		if err := syncDir(d.tmp()); err != nil {
			return err
		}
	}
	for _, id := range l.Indexes {
		if err := os.Remove(d.revPath(id, ".idx")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("repo: %w", err)
		}
	}
	if len(l.Indexes) > 0 {
		return syncDir(filepath.Join(d.dir, "revisions"))
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
	for _, sub := range []string{"chunks", "revisions", "tmp", "locks", configFile} {
		if err := os.RemoveAll(filepath.Join(d.dir, sub)); err != nil {
			return fmt.Errorf("repo: %w", err)
		}
	}
	if d.createdDir {
		_ = os.Remove(d.dir) // only if nothing else is in it
	}
	return nil
}
