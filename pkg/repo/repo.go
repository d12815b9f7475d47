package repo

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/zeebo/blake3"
)

// configFile marks a directory as a repository and names its format (in
// RADOS: the pool's format marker object).
const configFile = "backy-repository"

type repoConfig struct {
	Format      int    `json:"format"`
	ChunkSize   int    `json:"chunk_size"`
	Hash        string `json:"hash"`
	Compression string `json:"compression"`
}

func newConfig() []byte { return marshalConfig(FormatVersion) }

func marshalConfig(format int) []byte {
	c, _ := json.MarshalIndent(repoConfig{Format: format, ChunkSize: ChunkSize, Hash: "blake3-256", Compression: "zstd"}, "", "  ")
	return append(c, '\n')
}

// checkConfig accepts the format marker b of the repository at where and
// returns its format: FormatVersion, or legacyFormat (read, and sealed when
// next written).
func checkConfig(b []byte, where string) (int, error) {
	var c repoConfig
	if err := json.Unmarshal(b, &c); err != nil {
		// The marker is there, so this is a repository whose marker rotted.
		return 0, fmt.Errorf("%w: %s: %v", ErrCorruptMeta, where, err)
	}
	if c.Format != FormatVersion && c.Format != legacyFormat {
		return 0, fmt.Errorf("%w: %s has format %d, this backy reads formats %d and %d", ErrFormat, where, c.Format, legacyFormat, FormatVersion)
	}
	if c.ChunkSize != ChunkSize || c.Hash != "blake3-256" || c.Compression != "zstd" {
		return 0, fmt.Errorf("%w: %s uses chunk size %d, hash %q, compression %q", ErrFormat, where, c.ChunkSize, c.Hash, c.Compression)
	}
	return c.Format, nil
}

// Repo is an opened repository.
type Repo struct {
	// Dir is the repository directory; empty for a RADOS repository.
	Dir    string
	Chunks ChunkStore
	b      Backend
	// created is set when OpenOrCreate made the repository (for
	// DiscardIfEmpty).
	created bool
	// format is legacyFormat for a directory of format 1 not yet sealed by
	// this process: only then is unsealed metadata read. The zero value
	// means sealed.
	format int
}

func newRepo(b Backend, dir string) *Repo {
	return &Repo{Dir: dir, Chunks: b.Chunks(), b: b}
}

// Open opens the repository at loc: a directory, or rados:POOL/JOB.
func Open(loc string, opts ...Option) (*Repo, error) {
	if IsRados(loc) {
		return openRados(loc, options(opts), false)
	}
	return openDir(loc)
}

// OpenOrCreate opens the repository at loc, creating it when it does not
// exist: a directory that is missing or empty, or a job (and, the first
// time, the pool's format marker) in RADOS. A non-empty directory that is
// not a repository is refused so backy never scatters files over someone
// else's data.
func OpenOrCreate(loc string, opts ...Option) (*Repo, error) {
	if IsRados(loc) {
		return openRados(loc, options(opts), true)
	}
	return openOrCreateDir(loc)
}

// Location names the repository as the user gives it.
func (r *Repo) Location() string { return r.b.Location() }

// Backend is the storage under the repository.
func (r *Repo) Backend() Backend { return r.b }

// Close releases the repository's connection (RADOS); a directory holds
// nothing.
func (r *Repo) Close() error { return r.b.Close() }

// Revisions lists every published revision, oldest first. A revision exists
// exactly when its metadata does (it is published last).
func (r *Repo) Revisions() ([]*Revision, error) {
	revs, bad, err := r.ScanRevisions()
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, bad[0]
	}
	return revs, nil
}

// IndexOf loads and verifies the index of rev: its format, and that it is
// rev's own (Revision.IndexSum). Every reader of a revision's chunks uses
// it; Index takes the index at id as it is.
func (r *Repo) IndexOf(rev *Revision) (*Index, error) {
	ix, sum, err := r.readIndexSum(rev.ID)
	if err == nil && rev.IndexSum != "" && rev.IndexSum != sum {
		err = fmt.Errorf("%w: %s is not the revision's own: its BLAKE3 is not the one its metadata records", ErrCorruptIndex, r.objName(rev.ID, ".idx"))
	}
	return r.checkedIndex(rev.ID, ix, err)
}

// Index loads the index at id and verifies its format.
func (r *Repo) Index(id string) (*Index, error) {
	ix, err := r.readIndex(id)
	return r.checkedIndex(id, ix, err)
}

// checkedIndex is Index's and IndexOf's error: a revision forgotten since
// it was listed is gone, not damaged.
func (r *Repo) checkedIndex(id string, ix *Index, err error) (*Index, error) {
	if err != nil {
		if _, merr := r.b.ReadMeta(id); errors.Is(merr, os.ErrNotExist) {
			// Forgotten since it was listed: gone, not damaged.
			return nil, fmt.Errorf("%w %q: it was removed", ErrNoRevision, id)
		}
		return nil, fmt.Errorf("revision %s: %w", id, err)
	}
	return ix, nil
}

func (r *Repo) readIndex(id string) (*Index, error) {
	ix, _, err := r.readIndexSum(id)
	return ix, err
}

// readIndexSum reads and parses the index at id, and returns its sum
// (Revision.IndexSum).
func (r *Repo) readIndexSum(id string) (*Index, string, error) {
	b, err := r.b.ReadIndex(id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("%w: %s is missing", ErrCorruptIndex, r.objName(id, ".idx"))
	}
	if err != nil {
		return nil, "", err
	}
	ix := new(Index)
	if err := ix.UnmarshalBinary(b); err != nil {
		return nil, "", fmt.Errorf("%w (%s)", err, r.objName(id, ".idx"))
	}
	return ix, indexSum(b), nil
}

// indexSum is the Revision.IndexSum of index bytes b.
func indexSum(b []byte) string {
	s := blake3.Sum256(b)
	return "blake3:" + hex.EncodeToString(s[:])
}

// Commit publishes a new revision: the index first, then the metadata,
// each atomically. The chunks the index names must already be durable
// (Batch.Commit).
func (r *Repo) Commit(rev *Revision, ix *Index) error {
	return r.commit(rev.ID, ix, nil, func(sum string) error {
		rev.IndexSum = sum
		return r.saveRevision(rev)
	})
}

// commit publishes revision id: the index, then the metadata that publish
// writes (Commit, CommitCopy), given the index's sum; check (if set) may
// refuse that sum before anything is written.
func (r *Repo) commit(id string, ix *Index, check, publish func(sum string) error) error {
	b, err := ix.MarshalBinary()
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(indexSum(b)); err != nil {
			return err
		}
	}
	if err := r.seal(); err != nil {
		return err
	}
	if err := r.b.WriteIndex(id, b); err != nil {
		return err
	}
	return publish(indexSum(b))
}

// SaveRevision writes revision metadata atomically. Callers changing an
// existing revision hold the meta lock.
func (r *Repo) SaveRevision(rev *Revision) error {
	if err := r.seal(); err != nil {
		return err
	}
	return r.saveRevision(rev)
}

func (r *Repo) saveRevision(rev *Revision) error {
	rev.Format = RevisionFormat
	if rev.Tags == nil {
		rev.Tags = []string{}
	}
	b, err := rev.marshal()
	if err != nil {
		return err
	}
	return r.b.WriteMeta(rev.ID, b)
}

// RemoveRevision deletes a revision: metadata first, so that it stops
// existing at once, then its index. Its chunks go at the next purge.
func (r *Repo) RemoveRevision(id string) error {
	if err := r.seal(); err != nil {
		return err
	}
	return r.b.RemoveRevision(id)
}

// DiscardIfEmpty removes a repository that OpenOrCreate just made and that
// still holds no revision (one created for a store that then failed), so
// that a refused stream leaves no trace. A repository that existed before,
// or has anything in it, is left alone, and so is one another process is
// storing into or reading right now: the check and the removal happen
// under the store and chunks locks, so a second store that opened the new
// repository meanwhile either finds them held (busy) or the repository
// gone, and never publishes a revision that is then removed. The locks go
// with the repository, so their release errors are not errors.
func (r *Repo) DiscardIfEmpty() error {
	if !r.created {
		return nil
	}
	for _, name := range []string{LockStore, LockChunks} {
		l, err := r.TryLock(name, false)
		if errors.Is(err, ErrBusy) {
			return nil
		}
		if err != nil {
			return err
		}
		defer func() { _ = l.Unlock() }()
	}
	return r.b.discard()
}

// FindLeftovers lists the leftovers of interrupted stores. Only call it
// while holding the store lock and the meta lock exclusively: a running
// store or metadata change has files in tmp/ that look exactly like
// leftovers.
func (r *Repo) FindLeftovers() (Leftovers, error) { return r.b.FindLeftovers() }

// OrphanIndexes lists the ids of indexes without metadata. Under the meta
// lock the list is exact: Commit publishes both while holding it.
func (r *Repo) OrphanIndexes() ([]string, error) {
	ids, err := r.b.OrphanIndexes()
	sort.Strings(ids)
	return ids, err
}

// RemoveLeftovers deletes what FindLeftovers found, under the same locks.
func (r *Repo) RemoveLeftovers(l Leftovers) error { return r.b.RemoveLeftovers(l) }
