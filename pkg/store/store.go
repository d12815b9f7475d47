package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/schedule"
	"golang.org/x/sync/errgroup"
)

// Options tune Store.
type Options struct {
	Tags     []string
	Workers  int       // default: GOMAXPROCS
	Counters *Counters // optional live figures for a progress line
	Now      func() time.Time
}

// Store reads one extent stream from in and commits it as a new revision of
// r. Nothing in the repository changes unless the whole stream, END record
// included, was read and verified, and every tag is one schedule.CheckTag
// accepts (a tag a revision spec could not name is refused up front).
func Store(ctx context.Context, r *repo.Repo, in io.Reader, opt Options) (*repo.Revision, error) {
	for _, t := range opt.Tags {
		if err := schedule.CheckTag(t); err != nil {
			return nil, err
		}
	}
	storeLock, err := r.TryLock(repo.LockStore, false)
	if err != nil {
		return nil, err
	}
	defer storeLock.Unlock()
	chunkLock, err := r.TryLock(repo.LockChunks, true)
	if err != nil {
		return nil, err
	}
	defer chunkLock.Unlock()
	return storeLocked(ctx, r, in, opt, storeLock)
}

// storeLocked stores under storeLock, which it checks is still held (a
// RADOS lease) before it publishes the revision.
func storeLocked(ctx context.Context, r *repo.Repo, in io.Reader, opt Options, storeLock *repo.Lock) (*repo.Revision, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Counters == nil {
		opt.Counters = new(Counters)
	}
	started := opt.Now()
	sr, err := extent.NewReader(in)
	if err != nil {
		return nil, err
	}
	hdr := sr.Header()
	opt.Counters.Size.Store(hdr.Size)
	// A revision whose metadata or index is damaged is no parent: the new
	// revision is based on the newest intact one.
	revs, _, err := r.ScanRevisions()
	if err != nil {
		return nil, err
	}
	p, parent, err := plan(r, hdr, revs)
	if err != nil {
		return nil, err
	}
	p.counters = opt.Counters
	if p.batch, err = r.Chunks.Begin(); err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			p.batch.Abort()
		}
	}()
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if err := p.run(ctx, workers, func() error { return feed(p, sr) }); err != nil {
		return nil, err
	}
	if err := p.batch.Commit(); err != nil {
		return nil, err
	}
	committed = true
	if err := checkCarried(ctx, r, p.base, p.index, workers); err != nil {
		return nil, distrustParent(r, parent, err)
	}
	rev := newRevision(hdr, parent, opt, started, p, sr)
	meta, err := r.WaitLock(repo.LockMeta, false, time.Minute)
	if err != nil {
		return nil, err
	}
	defer meta.Unlock()
	if err := storeLock.Held(); err != nil {
		return nil, err
	}
	if err := r.Commit(rev, p.index); err != nil {
		return nil, err
	}
	return rev, nil
}

// feed reads every record into the assembler. It stops at the first error,
// including a cancelled context or a failed worker.
func feed(p *pipeline, sr *extent.Reader) error {
	a := &assembler{p: p, last: -1}
	for {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		rec, err := sr.Next()
		p.counters.StreamBytes.Store(sr.BytesRead())
		if errors.Is(err, io.EOF) {
			return a.finish()
		}
		if err != nil {
			return err
		}
		if err := a.apply(rec); err != nil {
			return err
		}
		p.counters.Position.Store(rec.End())
	}
}

// plan checks the stream against the repository and sets up the index:
// empty for a full stream, the parent's for a differential one. The parent
// is the newest revision whose metadata and index read.
func plan(r *repo.Repo, hdr extent.Header, revs []*repo.Revision) (*pipeline, *repo.Revision, error) {
	p := &pipeline{r: r, size: hdr.Size}
	parent, parentIx, err := r.NewestIntact(revs)
	if err != nil {
		return nil, nil, err
	}
	for _, rev := range revs {
		if rev.IsDistrusted() {
			p.reverify = true
		}
	}
	switch hdr.Kind {
	case extent.Sample:
		return nil, nil, ErrSampleStream
	case extent.Full:
		p.index = repo.NewIndex(hdr.Size)
		if parent != nil {
			// A full stream needs no base; an unreadable parent index
			// only means every reused chunk's directory is synced.
			if ix, err := r.IndexOf(parent); err == nil {
				p.durable = sortedHashes(ix)
			}
		}
	case extent.Differential:
		if err := checkBase(hdr, parent); err != nil {
			return nil, nil, err
		}
		base := parentIx
		p.base = base
		p.durable = sortedHashes(base)
		p.index = &repo.Index{Size: base.Size, Hashes: append([]repo.Hash(nil), base.Hashes...)}
		p.index.Resize(hdr.Size)
	}
	return p, parent, nil
}

// checkCarried makes sure every chunk the new revision carries over from
// its parent's index is still stored. The stream does not hold those bytes,
// so a chunk lost since the parent was stored would make the new revision
// unrestorable, and every differential one after it (docs/repository.md,
// "Chunks"). Chunks the stream touched were checked on their way in; the
// check is one HasChunk per distinct chunk, several at once (a RADOS round
// trip each, a read: the parent's index keeps them from purge).
func checkCarried(ctx context.Context, r *repo.Repo, base, ix *repo.Index, workers int) error {
	if base == nil {
		return nil
	}
	seen := map[repo.Hash]bool{}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(workers, carriedChecks))
	for n, h := range ix.Hashes[:min(len(ix.Hashes), len(base.Hashes))] {
		if h.IsZero() || h != base.Hashes[n] || seen[h] {
			continue
		}
		seen[h] = true
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			has, err := r.HasChunk(h)
			if err == nil && !has {
				err = fmt.Errorf("%w %s (chunk %d at offset %d, carried over from the parent: the stream does not hold it)",
					repo.ErrMissingChunk, h, n, int64(n)*repo.ChunkSize)
			}
			return err
		})
	}
	return g.Wait()
}

// carriedChecks is how many chunks checkCarried asks about at once at
// least.
const carriedChecks = 16

// distrustParent records a chunk the parent lacks (err, from checkCarried)
// as the parent's damage and distrusts it, so that the next backup is a
// full one, which stores the chunk again if the image still holds it.
func distrustParent(r *repo.Repo, parent *repo.Revision, err error) error {
	if !errors.Is(err, repo.ErrMissingChunk) {
		return err
	}
	meta, lerr := r.WaitLock(repo.LockMeta, false, time.Minute)
	if lerr != nil {
		return fmt.Errorf("%w (revision %s; distrusting it failed: %v)", err, parent.ID, lerr)
	}
	defer meta.Unlock()
	rev, lerr := r.LoadRevision(parent.ID)
	if lerr == nil {
		rev.Trust = repo.Distrusted
		rev.Damage = append(rev.Damage, strings.TrimPrefix(err.Error(), "repo: "))
		lerr = r.SaveRevision(rev)
	}
	if lerr != nil {
		return fmt.Errorf("%w (revision %s; distrusting it failed: %v)", err, parent.ID, lerr)
	}
	return fmt.Errorf("%w; revision %s lacks it and is distrusted now: the next backup must be a full one", err, parent.ID)
}

func checkBase(hdr extent.Header, parent *repo.Revision) error {
	switch {
	case parent == nil:
		return ErrNoParent
	case parent.IsDistrusted():
		return fmt.Errorf("%w (%s)", ErrDistrusted, parent.ID)
	}
	if id, ok := repo.IsRevisionBase(hdr.Base); ok {
		if id != parent.ID {
			return fmt.Errorf("%w: stream is relative to revision %s, the newest revision is %s",
				ErrWrongBase, id, parent.ID)
		}
		return nil
	}
	if parent.Snapshot == "" || parent.Snapshot != hdr.Base {
		return fmt.Errorf("%w: stream is relative to %q, newest revision %s was taken from %q",
			ErrWrongBase, hdr.Base, parent.ID, parent.Snapshot)
	}
	if rbd := extent.RBDSource; strings.HasPrefix(hdr.Source, rbd) && strings.HasPrefix(parent.Source, rbd) && hdr.Source != parent.Source {
		return fmt.Errorf("%w: stream is of %s, newest revision %s of %s (snapshot %q of another image)",
			ErrWrongBase, strings.TrimPrefix(hdr.Source, rbd), parent.ID, strings.TrimPrefix(parent.Source, rbd), hdr.Base)
	}
	return nil
}

func newRevision(hdr extent.Header, parent *repo.Revision, opt Options, started time.Time, p *pipeline, sr *extent.Reader) *repo.Revision {
	c := opt.Counters
	rev := &repo.Revision{
		ID: repo.NewRevisionID(), Time: started.UTC(), Kind: hdr.Kind.String(),
		Tags: append([]string{}, opt.Tags...), Trust: repo.Trusted,
		Source: hdr.Source, Snapshot: hdr.Snapshot, Base: hdr.Base, Size: hdr.Size,
		Consistency: hdr.Consistency, ConsistencyReason: hdr.Reason, FrozenSeconds: hdr.Frozen.Seconds(),
		Stats: repo.Stats{
			StreamBytes: sr.BytesRead(), BytesWritten: c.BytesWritten.Load(),
			ChunksNew: c.ChunksNew.Load(), ChunksReused: c.ChunksReused.Load(),
			ChunksZero: c.ChunksZero.Load(), Duration: opt.Now().Sub(started).Seconds(),
		},
	}
	if parent != nil {
		rev.Parent = parent.ID
	}
	return rev
}
