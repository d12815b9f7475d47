package nbdrepo

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
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
	// Logger is told about partition tables that are not followed.
	Logger *slog.Logger
}

// Catalog is a nbdserver.Catalog over a repository, safe for concurrent use.
type Catalog struct {
	r     *repo.Repo
	lock  *repo.Lock
	cache *chunkCache
	log   *slog.Logger
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
	log := cmp.Or(opt.Logger, slog.New(slog.DiscardHandler))
	return &Catalog{r: r, lock: lock, log: log,
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
// revision id (one whose metadata is damaged is left out), each followed
// by one export per partition of its table, named ID/pN. A revision whose
// index or table cannot be read is listed without partitions.
func (c *Catalog) List() ([]nbdserver.ExportInfo, error) {
	revs, _, err := c.r.ScanRevisions()
	if err != nil {
		return nil, err
	}
	out := make([]nbdserver.ExportInfo, 0, len(revs))
	for _, rev := range revs {
		out = append(out, nbdserver.ExportInfo{Name: rev.ID, Description: describe(rev)})
		ix, err := c.r.IndexOf(rev)
		if err != nil {
			continue
		}
		ps, err := c.partitions(newExport(c, rev, ix))
		if err != nil {
			c.log.Warn("cannot read partition table", "revision", rev.ID, "err", err.Error())
			continue
		}
		for _, p := range ps {
			out = append(out, nbdserver.ExportInfo{Name: partName(rev.ID, p.Number), Description: describePartition(rev.ID, p)})
		}
	}
	return out, nil
}

// Open resolves a revision spec as backy-restore -r does (the empty name
// is latest) and opens that revision; SPEC/pN opens partition N of its
// partition table (MBR or GPT) as a read-only window. Unknown and
// ambiguous specs, and partitions the table does not have (or that it
// places outside the image), wrap nbdserver.ErrNotFound.
func (c *Catalog) Open(name string) (nbdserver.Export, error) {
	spec, part, isPart := splitPartition(name)
	rev, err := c.r.Find(spec)
	if err == nil {
		var ix *repo.Index
		if ix, err = c.r.IndexOf(rev); err == nil {
			e := newExport(c, rev, ix)
			if isPart {
				return c.openPartition(e, part)
			}
			return e, nil
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
