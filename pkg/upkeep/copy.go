package upkeep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/backy/backy/pkg/exitcode"
	"github.com/backy/backy/pkg/repo"
	"golang.org/x/sync/errgroup"
)

// Errors of Copy.
var (
	ErrCopyConflict = exitcode.New(exitcode.Failure, "upkeep: copy refused, nothing copied: the target holds a different revision under the same id")
	ErrCopySame     = exitcode.New(exitcode.Usage, "upkeep: copy onto the source itself")
)

// CopyOptions tune Copy.
type CopyOptions struct {
	// Options: Progress follows the image bytes of the revisions to copy;
	// Log gets one line per revision. Workers defaults to at least 4
	// (reads and writes of a RADOS pool wait on the network).
	Options
	// Specs name the revisions to copy (latest, a tag, an id or unique id
	// prefix, N); none: every revision of the source.
	Specs []string
}

// CopyResult says what Copy did.
type CopyResult struct {
	Copied  []string // ids of the revisions copied
	Skipped []string // ids the target already held, the same revision
	Failed  []string // ids not copied: damage at the source
	// Chunks is how many distinct chunks the copied revisions name that
	// were looked up in the target; Found of them were there already,
	// Moved were read, verified and written, Bytes their stored size.
	Chunks, Found, Moved int
	Bytes                int64
	Duration             time.Duration
}

// Copy copies revisions from src to dst with their ids, tags, trust marks
// and metadata (the file as the source holds it, seal included), moving
// only the chunks dst lacks. Every chunk moved is read and verified
// against its hash on the way; a damaged source chunk, index or metadata
// fails that revision (it is reported and counted in Failed, and Copy
// returns ErrDamaged at the end) and writes nothing of it that a revision
// names.
//
// A revision whose id dst already holds is skipped when it is the same
// revision (the same index and the same metadata but for tags and trust
// marks, which stay as dst has them); when it differs, Copy refuses before
// it writes anything (ErrCopyConflict).
//
// Copy holds src's chunks lock shared (as a restore does) and dst's store
// lock exclusively and chunks lock shared (as a store does), so a busy
// repository is repo.ErrBusy. Each revision is published as a store
// publishes one: its new chunks durable first, then its index, then its
// metadata under the meta lock, after checking the store lock is still
// held. An interrupted copy leaves dst with the revisions copied so far
// and chunks no revision names yet, which purge removes.
func Copy(ctx context.Context, src, dst *repo.Repo, opt CopyOptions) (*CopyResult, error) {
	if opt.Workers <= 0 {
		opt.Workers = max(4, runtime.GOMAXPROCS(0))
	}
	opt.defaults()
	started := opt.Now()
	if repo.SameRepository(src, dst) {
		return nil, fmt.Errorf("%w: %s is the source itself", ErrCopySame, dst.Location())
	}
	srcLock, err := src.TryLock(repo.LockChunks, true)
	if err != nil {
		return nil, err
	}
	defer srcLock.Unlock()
	chosen, bad, err := copySelection(src, opt.Specs, opt.Log)
	if err != nil {
		return nil, err
	}
	storeLock, err := dst.TryLock(repo.LockStore, false)
	if err != nil {
		return nil, err
	}
	defer storeLock.Unlock()
	chunkLock, err := dst.TryLock(repo.LockChunks, true)
	if err != nil {
		return nil, err
	}
	defer chunkLock.Unlock()

	res := &CopyResult{Failed: bad}
	todo, reverify, err := copyPlan(src, dst, chosen, res, opt.Log)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, rev := range todo {
		total += repo.ChunkCount(rev.Size) * repo.ChunkSize
	}
	opt.Progress.SetTotal(total)
	c := &copier{src: src, dst: dst, opt: opt, res: res, reverify: reverify, storeLock: storeLock,
		have: map[repo.Hash]struct{}{}}
	for _, rev := range todo {
		n, err := c.revision(ctx, rev)
		if err != nil && !isDamage(err) {
			return nil, fmt.Errorf("revision %s: %w", rev.ID, err)
		}
		if err != nil {
			opt.Log.Info(fmt.Sprintf("revision %s (%s): not copied: %v", rev.ID, when(rev), err))
			res.Failed = append(res.Failed, rev.ID)
			continue
		}
		opt.Log.Info(fmt.Sprintf("revision %s (%s): copied, %d chunks moved, %d found in the target", rev.ID, when(rev), n.moved, n.found))
		res.Copied = append(res.Copied, rev.ID)
	}
	res.Duration = opt.Now().Sub(started)
	if len(res.Failed) > 0 {
		return res, fmt.Errorf("%w: %d of %d revisions not copied", ErrDamaged,
			len(res.Failed), len(res.Failed)+len(res.Copied)+len(res.Skipped))
	}
	return res, nil
}

func when(rev *repo.Revision) string { return rev.Time.Local().Format(time.DateTime) }

// isDamage reports whether err is damage of the source's revision, which
// fails that revision only.
func isDamage(err error) bool {
	return slices.ContainsFunc([]error{repo.ErrCorruptChunk, repo.ErrMissingChunk, repo.ErrCorruptIndex, repo.ErrCorruptMeta},
		func(e error) bool { return errors.Is(err, e) })
}

// copySelection picks the revisions of src to copy, oldest first, and the
// ids of those whose metadata is damaged (copying all: reported, not
// copied; a spec must name an intact revision by id, repo.ResolveIntact).
func copySelection(src *repo.Repo, specs []string, log *slog.Logger) ([]*repo.Revision, []string, error) {
	revs, bad, err := src.ScanRevisions()
	if err != nil {
		return nil, nil, err
	}
	if len(specs) == 0 {
		var ids []string
		for _, e := range bad {
			log.Info(fmt.Sprintf("revision %s: not copied: %v", repo.DamagedID(e), e))
			ids = append(ids, repo.DamagedID(e))
		}
		return revs, ids, nil
	}
	picked := map[string]bool{}
	for _, spec := range specs {
		rev, err := repo.ResolveIntact(revs, bad, spec)
		if err != nil {
			return nil, nil, err
		}
		picked[rev.ID] = true
	}
	var chosen []*repo.Revision
	for _, rev := range revs {
		if picked[rev.ID] {
			chosen = append(chosen, rev)
		}
	}
	return chosen, nil, nil
}

// copyPlan compares the chosen revisions with those dst already holds and
// returns those to copy. A revision dst holds the same is skipped; one it
// holds different, or damaged, refuses the whole copy before anything is
// written. reverify is set while dst has a distrusted revision: chunks
// found there are then re-read before they are trusted (as a store does).
func copyPlan(src, dst *repo.Repo, chosen []*repo.Revision, res *CopyResult, log *slog.Logger) (todo []*repo.Revision, reverify bool, err error) {
	have, bad, err := dst.ScanRevisions()
	if err != nil {
		return nil, false, err
	}
	byID := map[string]*repo.Revision{}
	for _, rev := range have {
		byID[rev.ID] = rev
		reverify = reverify || rev.IsDistrusted()
	}
	damaged := map[string]error{}
	for _, e := range bad {
		damaged[repo.DamagedID(e)] = e
	}
	for _, rev := range chosen {
		if e := damaged[rev.ID]; e != nil {
			return nil, false, fmt.Errorf("%w: the target's revision %s is damaged: %w", ErrCopyConflict, rev.ID, e)
		}
		old := byID[rev.ID]
		if old == nil {
			todo = append(todo, rev)
			continue
		}
		if why, err := differs(src, dst, rev, old); err != nil || why != "" {
			if err != nil { // the error names the revision
				return nil, false, fmt.Errorf("%w: %w", ErrCopyConflict, err)
			}
			return nil, false, fmt.Errorf("%w: revision %s: %s", ErrCopyConflict, rev.ID, why)
		}
		log.Info(fmt.Sprintf("revision %s (%s): skipped, the target holds it already", rev.ID, when(rev)))
		res.Skipped = append(res.Skipped, rev.ID)
	}
	return todo, reverify, nil
}

// differs says how the revision a of src and b of dst, of one id, differ:
// "" when they are the same revision (tags, trust, verified_at and damage
// may differ).
func differs(src, dst *repo.Repo, a, b *repo.Revision) (string, error) {
	x, y := *a, *b
	if !x.Time.Equal(y.Time) {
		return fmt.Sprintf("the target's was taken at %s, the source's at %s", y.Time.Format(time.RFC3339), x.Time.Format(time.RFC3339)), nil
	}
	for _, r := range []*repo.Revision{&x, &y} {
		r.Time, r.Tags, r.Trust, r.VerifiedAt, r.Damage, r.Format = time.Time{}, nil, "", nil, nil, 0
	}
	if !reflect.DeepEqual(x, y) {
		return "the target's metadata differs", nil
	}
	ia, err := src.IndexOf(a)
	if err != nil {
		return "", err
	}
	ib, err := dst.IndexOf(b)
	if err != nil {
		return "", err
	}
	if ia.Size != ib.Size || !slices.Equal(ia.Hashes, ib.Hashes) {
		return "the target's index differs", nil
	}
	return "", nil
}

// copier copies revisions one by one, remembering the chunks known to be
// durable in dst so each is looked up once per run.
type copier struct {
	src, dst  *repo.Repo
	opt       CopyOptions
	res       *CopyResult
	reverify  bool
	storeLock *repo.Lock
	have      map[repo.Hash]struct{}
}

type copyCounts struct{ found, moved int }

// revision copies one revision: chunks, then the index and metadata.
func (c *copier) revision(ctx context.Context, rev *repo.Revision) (copyCounts, error) {
	var n copyCounts
	_, meta, err := c.src.RevisionFile(rev.ID)
	if err != nil {
		return n, err
	}
	ix, err := c.src.IndexOf(rev)
	if err != nil {
		return n, err
	}
	batch, err := c.dst.Chunks.Begin()
	if err != nil {
		return n, err
	}
	done, bytes, err := c.chunks(ctx, ix, batch)
	if err != nil {
		batch.Abort()
		return n, err
	}
	if err := batch.Commit(); err != nil {
		return n, err
	}
	// Only now are the chunks in dst: a revision that failed, its batch
	// aborted, moved nothing.
	for h, moved := range done {
		c.have[h] = struct{}{}
		if moved {
			n.moved++
		} else {
			n.found++
		}
	}
	c.res.Chunks += n.moved + n.found
	c.res.Found += n.found
	c.res.Moved += n.moved
	c.res.Bytes += bytes
	ml, err := c.dst.WaitLock(repo.LockMeta, false, time.Minute)
	if err != nil {
		return n, err
	}
	defer ml.Unlock()
	if err := c.storeLock.Held(); err != nil {
		return n, err
	}
	return n, c.dst.CommitCopy(rev.ID, meta, ix)
}

// chunks puts into batch every chunk of ix that dst lacks, read from src
// and verified, on opt.Workers workers. It returns the chunks it looked
// up: true for moved, false for found in dst; and the stored size of those
// moved.
func (c *copier) chunks(ctx context.Context, ix *repo.Index, batch repo.Batch) (map[repo.Hash]bool, int64, error) {
	type job struct {
		h repo.Hash
		n int
	}
	g, ctx := errgroup.WithContext(ctx)
	jobs := make(chan job)
	var mu sync.Mutex
	done := map[repo.Hash]bool{}
	var bytes atomic.Int64
	for range c.opt.Workers {
		g.Go(func() error {
			buf := make([]byte, repo.ChunkSize)
			for j := range jobs {
				m, size, err := c.chunk(j.h, buf, batch)
				if err != nil {
					return fmt.Errorf("%w (chunk %d at offset %d)", err, j.n, int64(j.n)*repo.ChunkSize)
				}
				mu.Lock()
				done[j.h] = m
				mu.Unlock()
				bytes.Add(size)
				c.opt.Progress.Add(repo.ChunkSize)
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(jobs)
		seen := map[repo.Hash]struct{}{}
		for n, h := range ix.Hashes {
			_, known := c.have[h]
			_, dup := seen[h]
			if h.IsZero() || known || dup {
				c.opt.Progress.Add(repo.ChunkSize)
				continue
			}
			seen[h] = struct{}{}
			select {
			case jobs <- job{h, n}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	err := g.Wait()
	return done, bytes.Load(), err
}

// chunk makes chunk h present in dst: found there (re-verified while dst
// has distrusted revisions), or read from src, verified, and put into
// batch in its stored form. It reports whether it moved the chunk, and
// the stored size.
func (c *copier) chunk(h repo.Hash, buf []byte, batch repo.Batch) (bool, int64, error) {
	has, err := c.dst.Chunks.Has(h)
	if err != nil {
		return false, 0, err
	}
	if has && c.reverify {
		if _, err := c.dst.ReadChunk(buf, h); err != nil {
			has = false // damaged: written again, which repairs it
		}
	}
	if has {
		batch.Reuse(h)
		return false, 0, nil
	}
	stored, err := c.src.Chunks.Get(h)
	if err != nil {
		return false, 0, err
	}
	if _, err := repo.Decompress(buf, h, stored); err != nil {
		return false, 0, err
	}
	if err := batch.Put(h, stored); err != nil {
		return false, 0, err
	}
	return true, int64(len(stored)), nil
}
