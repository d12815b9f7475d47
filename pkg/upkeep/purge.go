package upkeep

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/backy/backy/pkg/progress"
	"github.com/backy/backy/pkg/repo"
	"golang.org/x/sync/errgroup"
)

// PurgeOptions tune Purge.
type PurgeOptions struct {
	Options
	// Wait is how long to wait for the store and chunks locks; 0 fails at
	// once (repo.ErrBusy) when another process holds them.
	Wait   time.Duration
	DryRun bool // count, but remove nothing
	// MinInterval skips the sweep of a shared pool (RADOS) whose last
	// sweep began less than this long ago; the job's leftovers still go.
	MinInterval time.Duration
}

// PurgeResult says what Purge found and removed.
type PurgeResult struct {
	Revisions  int // revisions whose chunks were kept
	Chunks     int // chunk files found
	Referenced int // distinct chunks the revisions use
	Removed    int // chunk files no revision uses (removed unless DryRun)
	Missing    int // chunks revisions use that are not stored: run verify
	Tmp        int // entries of tmp/ left by interrupted stores
	Indexes    int // index files without metadata
	Duration   time.Duration
	// Of a shared pool (RADOS), where purge covers every job:
	Pool    bool
	Jobs    int  // jobs whose revisions were marked
	Young   int  // unused chunks kept: written or reused since the oldest running store began (less the grace period)
	Skipped bool // no sweep: the last one is younger than MinInterval
	Writers int  // stores and copies running when the purge began
	// LastSweep is when the pool's last sweep began (zero: never)
	LastSweep time.Time
	// Relisted are jobs found in the pool but missing from its list
	// (repo.PoolPurge): marked, and listed again.
	Relisted []string
}

// Purge removes chunks no revision references and what interrupted stores
// left behind. It holds the store and chunks locks exclusively, so no
// store, restore or verify runs meanwhile. Every revision's index is read
// once before anything is removed; if any metadata or index file cannot be
// read, Purge refuses (ErrPurgeUnsafe), since it cannot know which chunks
// that revision needs.
func Purge(ctx context.Context, r *repo.Repo, opt PurgeOptions) (*PurgeResult, error) {
	opt.defaults()
	started := opt.Now()
	if pp, ok := r.Backend().(repo.PoolPurger); ok {
		return purgePool(ctx, pp, opt, started)
	}
	storeLock, err := r.WaitLock(repo.LockStore, false, opt.Wait)
	if err != nil {
		return nil, err
	}
	defer storeLock.Unlock()
	chunkLock, err := r.WaitLock(repo.LockChunks, false, opt.Wait)
	if err != nil {
		return nil, err
	}
	defer chunkLock.Unlock()

	res := &PurgeResult{}
	used, err := referenced(ctx, r, res)
	if err != nil {
		return nil, err
	}
	garbage, walked, err := repo.Unreferenced(ctx, r.Chunks, used)
	res.Chunks += walked
	if err != nil {
		return nil, err
	}
	res.Removed = len(garbage)
	res.Missing = res.Referenced - (res.Chunks - res.Removed)
	if !opt.DryRun {
		opt.Progress.SetTotal(int64(len(garbage)))
		if err := removeParallel(r, garbage, opt.Workers, opt.Progress); err != nil {
			return nil, err
		}
	}
	if err := removeLeftovers(r, res, opt.DryRun); err != nil {
		return nil, err
	}
	res.Duration = opt.Now().Sub(started)
	return res, nil
}

// referenced reads every revision's index once and returns the set of
// chunks they use. It holds the meta lock so that a forget cannot remove
// an index between listing a revision and reading it.
func referenced(ctx context.Context, r *repo.Repo, res *PurgeResult) (map[repo.Hash]struct{}, error) {
	meta, err := lockMeta(r)
	if err != nil {
		return nil, err
	}
	defer meta.Unlock()
	revs, bad, err := r.ScanRevisions()
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, purgeRefused(repo.DamagedID(bad[0]), bad[0])
	}
	used := map[repo.Hash]struct{}{}
	for _, rev := range revs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ix, err := r.IndexOf(rev)
		if errors.Is(err, repo.ErrCorruptIndex) {
			return nil, purgeRefused(rev.ID, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPurgeUnsafe, err)
		}
		for _, h := range ix.Hashes {
			if !h.IsZero() {
				used[h] = struct{}{}
			}
		}
	}
	res.Revisions, res.Referenced = len(revs), len(used)
	return used, nil
}

// purgeRefused says that the damaged revision id blocks purge, and how to
// unblock it.
func purgeRefused(id string, err error) error {
	return fmt.Errorf("%w: %w (purge cannot know which chunks revision %s needs; forget -r %s once nothing more can be saved from it)",
		ErrPurgeUnsafe, err, id, id)
}

// removeLeftovers deletes tmp/ entries and index files without metadata.
// It takes the meta lock too: metadata changes stage their files in tmp/.
func removeLeftovers(r *repo.Repo, res *PurgeResult, dryRun bool) error {
	meta, err := lockMeta(r)
	if err != nil {
		return err
	}
	defer meta.Unlock()
	l, err := r.FindLeftovers()
	if err != nil {
		return err
	}
	res.Tmp, res.Indexes = len(l.Tmp), len(l.Indexes)
	if dryRun {
		return nil
	}
	return r.RemoveLeftovers(l)
}

// removeBatch is how many chunks one worker removes between two progress
// reports.
const removeBatch = 256

// removeParallel hands the chunks of each directory (the first byte of the
// hash) to one of workers goroutines: unlinking is kernel work that scales
// with cores when the directories differ, and each Remove call still
// groups its unlinks by directory.
func removeParallel(r *repo.Repo, hs []repo.Hash, workers int, pc *progress.Counter) error {
	groups := make([][]repo.Hash, workers)
	for _, h := range hs {
		w := int(h[0]) % workers
		groups[w] = append(groups[w], h)
	}
	var eg errgroup.Group
	for _, g := range groups {
		eg.Go(func() error {
			// In batches, so that a progress display moves; sorted, so
			// a batch touches (and syncs) few directories.
			slices.SortFunc(g, func(a, b repo.Hash) int { return bytes.Compare(a[:], b[:]) })
			for len(g) > 0 {
				n := min(len(g), removeBatch)
				if err := r.Chunks.Remove(g[:n]); err != nil {
					return err
				}
				pc.Add(int64(n))
				g = g[n:]
			}
			return nil
		})
	}
	return eg.Wait()
}

// purgePool purges a pool shared by many jobs (docs/repository.md, "Purge
// on a shared pool").
func purgePool(ctx context.Context, pp repo.PoolPurger, opt PurgeOptions, started time.Time) (*PurgeResult, error) {
	p, err := pp.PurgePool(ctx, repo.PoolPurgeOptions{Wait: opt.Wait, DryRun: opt.DryRun, MinInterval: opt.MinInterval, Unsafe: ErrPurgeUnsafe})
	if err != nil {
		return nil, err
	}
	return &PurgeResult{
		Pool: true, Jobs: p.Jobs, Revisions: p.Revisions, Chunks: p.Chunks, Referenced: p.Referenced,
		Removed: p.Removed, Young: p.Young, Indexes: p.Indexes, Skipped: p.Skipped,
		Writers: p.Writers, Relisted: p.Relisted, LastSweep: p.LastSweep, Duration: opt.Now().Sub(started),
	}, nil
}
