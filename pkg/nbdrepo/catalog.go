package nbdrepo

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/backy/backy/pkg/exitcode"
	"github.com/backy/backy/pkg/nbdserver"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/upkeep"
)

// DefaultCacheChunks is the cache size when Options leave it 0: 128 MiB.
const DefaultCacheChunks = 32

// ErrCacheSize is returned for a cache of fewer than one chunk.
var ErrCacheSize = exitcode.New(exitcode.Usage, "nbdrepo: --cache-chunks must be at least 1")

// Options tune a Catalog.
type Options struct {
	// CacheChunks is how many decompressed 4 MiB chunks the cache shared
	// by all connections keeps; 0 means DefaultCacheChunks.
	CacheChunks int
}

// Catalog is a nbdserver.Catalog over a repository, safe for concurrent use.
type Catalog struct {
	r     *repo.Repo
	lock  *repo.Lock
	cache *chunkCache
}

var _ nbdserver.Catalog = (*Catalog)(nil)

// New takes the repository's chunks lock shared (repo.ErrBusy while a purge
// runs) and returns a Catalog of its revisions. Close releases the lock.
func New(r *repo.Repo, opt Options) (*Catalog, error) {
	if opt.CacheChunks == 0 {
		opt.CacheChunks = DefaultCacheChunks
	}
	if opt.CacheChunks < 1 {
		return nil, fmt.Errorf("%w, not %d", ErrCacheSize, opt.CacheChunks)
	}
	lock, err := r.TryLock(repo.LockChunks, true)
	if err != nil {
		return nil, err
	}
	return &Catalog{r: r, lock: lock,
		cache: newChunkCache(opt.CacheChunks, readAheadLoads(opt.CacheChunks), r.ReadChunk)}, nil
}

// readAheadLoads is how many chunks may be loaded ahead at once: one per
// core, but never so many that loads ahead push out what readers still use.
func readAheadLoads(cacheChunks int) int {
	return min(runtime.GOMAXPROCS(0), cacheChunks/(2*readAhead))
}

// Close releases the chunks lock. Exports still open keep working, but a
// purge may now remove their chunks: close the server first.
func (c *Catalog) Close() error { return c.lock.Unlock() }

// Stats returns the cache's counters and how many chunks it holds.
func (c *Catalog) Stats() (CacheStats, int) { return c.cache.snapshot() }

// List returns one export per intact revision, oldest first, named by
// revision id (one whose metadata is damaged is left out).
func (c *Catalog) List() ([]nbdserver.ExportInfo, error) {
	revs, _, err := c.r.ScanRevisions()
	if err != nil {
		return nil, err
	}
	out := make([]nbdserver.ExportInfo, len(revs))
	for i, rev := range revs {
		out[i] = nbdserver.ExportInfo{Name: rev.ID, Description: describe(rev)}
	}
	return out, nil
}

// Open resolves a revision spec as backy-restore -r does (the empty name
// is latest) and opens that revision. Unknown and ambiguous specs wrap
// nbdserver.ErrNotFound.
func (c *Catalog) Open(name string) (nbdserver.Export, error) {
	rev, err := c.r.Find(name)
	if err == nil {
		var ix *repo.Index
		if ix, err = c.r.Index(rev.ID); err == nil {
			return newExport(c, rev, ix), nil
		}
	}
	if errors.Is(err, repo.ErrNoRevision) || errors.Is(err, repo.ErrAmbiguous) {
		return nil, fmt.Errorf("%w: %w", nbdserver.ErrNotFound, err)
	}
	return nil, err
}

// describe is what nbdinfo --list shows beside a revision id.
func describe(rev *repo.Revision) string {
	tags := "no tags"
	if len(rev.Tags) > 0 {
		tags = "tags " + strings.Join(rev.Tags, ",")
	}
	return fmt.Sprintf("%s, %s, %s, %s", rev.Time.Local().Format("2006-01-02 15:04:05 MST"),
		tags, rev.Trust, upkeep.HumanBytes(rev.Size))
}
