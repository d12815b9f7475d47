package repo

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// configFile marks a directory as a repository and names its format.
const configFile = "backy-repository"

type repoConfig struct {
	Format      int    `json:"format"`
	ChunkSize   int    `json:"chunk_size"`
	Hash        string `json:"hash"`
	Compression string `json:"compression"`
}

// Repo is an opened repository directory.
type Repo struct {
	Dir    string
	Chunks ChunkStore
}

// Open opens the repository in dir.
func Open(dir string) (*Repo, error) {
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s has no %s file", ErrNotRepository, dir, configFile)
		}
		return nil, fmt.Errorf("repo: %w", err)
	}
	var c repoConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotRepository, filepath.Join(dir, configFile), err)
	}
	if c.Format != FormatVersion {
		return nil, fmt.Errorf("%w: %s has format %d, this backy reads format %d", ErrFormat, dir, c.Format, FormatVersion)
	}
	if c.ChunkSize != ChunkSize || c.Hash != "blake3-256" || c.Compression != "zstd" {
		return nil, fmt.Errorf("%w: %s uses chunk size %d, hash %q, compression %q", ErrFormat, dir, c.ChunkSize, c.Hash, c.Compression)
	}
	return &Repo{Dir: dir, Chunks: newDirStore(dir)}, nil
}

// OpenOrCreate opens the repository in dir, creating it (and dir) when dir
// is missing or empty; a non-empty directory that is not a repository is
// refused so backy never scatters files over someone else's data.
func OpenOrCreate(dir string) (*Repo, error) {
	if _, err := os.Stat(filepath.Join(dir, configFile)); err == nil {
		return Open(dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("repo: %w", err)
	}
	if len(entries) > 0 {
		return nil, fmt.Errorf("%w: %s is not empty and has no %s file", ErrNotRepository, dir, configFile)
	}
	if err := create(dir); err != nil {
		return nil, err
	}
	return Open(dir)
}

func create(dir string) error {
	for _, sub := range []string{"chunks", "revisions", "tmp", "locks"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("repo: %w", err)
		}
	}
	c, _ := json.MarshalIndent(repoConfig{Format: FormatVersion, ChunkSize: ChunkSize, Hash: "blake3-256", Compression: "zstd"}, "", "  ")
	if err := writeFileAtomic(filepath.Join(dir, "tmp"), filepath.Join(dir, configFile), append(c, '\n')); err != nil {
		return err
	}
	return syncDir(filepath.Dir(filepath.Clean(dir)))
}

// TmpDir is where temporary files live until they are renamed into place.
func (r *Repo) TmpDir() string { return filepath.Join(r.Dir, "tmp") }

func (r *Repo) revPath(id, ext string) string {
	return filepath.Join(r.Dir, "revisions", id+ext)
}

// Revisions lists every published revision, oldest first. A revision exists
// exactly when its metadata file does (it is published last).
func (r *Repo) Revisions() ([]*Revision, error) {
	entries, err := os.ReadDir(filepath.Join(r.Dir, "revisions"))
	if err != nil {
		return nil, fmt.Errorf("repo: %w", err)
	}
	var revs []*Revision
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".rev")
		if !ok || strings.HasPrefix(id, ".") {
			continue
		}
		rev, err := readRevisionFile(filepath.Join(r.Dir, "revisions", e.Name()), id)
		if errors.Is(err, os.ErrNotExist) {
			continue // forgotten since the directory was read
		}
		if err != nil {
			return nil, err
		}
		revs = append(revs, rev)
	}
	sort.SliceStable(revs, func(i, j int) bool {
		if !revs[i].Time.Equal(revs[j].Time) {
			return revs[i].Time.Before(revs[j].Time)
		}
		return revs[i].ID < revs[j].ID
	})
	return revs, nil
}

// Index loads and verifies the index of a revision.
func (r *Repo) Index(id string) (*Index, error) {
	ix, err := readIndexFile(r.revPath(id, ".idx"))
	if err != nil {
		if _, serr := os.Stat(r.revPath(id, ".rev")); errors.Is(serr, os.ErrNotExist) {
			// Forgotten since it was listed: gone, not damaged.
			return nil, fmt.Errorf("%w %q: it was removed", ErrNoRevision, id)
		}
		return nil, fmt.Errorf("revision %s: %w", id, err)
	}
	return ix, nil
}

// Commit publishes a new revision: the index first, then the metadata,
// each with write-temp, fsync, rename, fsync-directory. The chunks the index
// names must already be durable (ChunkStore.Sync).
func (r *Repo) Commit(rev *Revision, ix *Index) error {
	b, err := ix.MarshalBinary()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(r.TmpDir(), r.revPath(rev.ID, ".idx"), b); err != nil {
		return err
	}
	return r.SaveRevision(rev)
}

// SaveRevision writes revision metadata atomically. Callers changing an
// existing revision hold the meta lock.
func (r *Repo) SaveRevision(rev *Revision) error {
	rev.Format = FormatVersion
	if rev.Tags == nil {
		rev.Tags = []string{}
	}
	b, err := rev.marshal()
	if err != nil {
		return err
	}
	return writeFileAtomic(r.TmpDir(), r.revPath(rev.ID, ".rev"), b)
}

// RemoveRevision deletes a revision: metadata first, so that it stops
// existing at once, then its index. Its chunks go at the next purge.
func (r *Repo) RemoveRevision(id string) error {
	if err := os.Remove(r.revPath(id, ".rev")); err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	if err := os.Remove(r.revPath(id, ".idx")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("repo: %w", err)
	}
	return syncDir(filepath.Join(r.Dir, "revisions"))
}

// IsRepository reports whether dir holds a repository (its marker file).
func IsRepository(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, configFile))
	return err == nil
}

// DiscardIfEmpty removes a repository that holds no revision and no chunk
// (one just created for a store that then failed), so that a refused stream
// leaves no trace. A repository with anything in it is left alone.
// The directory itself goes too when removeDir is set (backy created it).
func (r *Repo) DiscardIfEmpty(removeDir bool) error {
	for _, sub := range []string{"revisions", "chunks"} {
		var found bool
		err := filepath.WalkDir(filepath.Join(r.Dir, sub), func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
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
		if err := os.RemoveAll(filepath.Join(r.Dir, sub)); err != nil {
			return fmt.Errorf("repo: %w", err)
		}
	}
	if removeDir {
		_ = os.Remove(r.Dir) // only if nothing else is in it
	}
	return nil
}
