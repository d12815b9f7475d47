package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/backy/backy/pkg/repo"
	"golang.org/x/sync/errgroup"
)

// Counters are live figures of a running store, safe to read concurrently.
type Counters struct {
	ChunksNew    atomic.Int64
	ChunksReused atomic.Int64
	ChunksZero   atomic.Int64
	BytesWritten atomic.Int64
	StreamBytes  atomic.Int64
	// Size is the image size from the stream header; Position is the image
	// offset up to which the stream was read (a progress display's figures).
	Size     atomic.Int64
	Position atomic.Int64
}

// pipeline runs the goroutines that hash, check and compress chunks, in
// two stages: checkers (hash, and ask the store whether it has the chunk)
// and workers (compress and write what is new). A check is a round trip
// to a RADOS pool, where a worker that checked before compressing spent a
// third of a full backup waiting (load 18: 334 checks took 10.2 s of the
// two workers' time in an 18.6 s backup); twice as many checkers as
// workers keep the workers busy while checks are in flight. The chunk
// buffers, not the goroutines, bound the memory.
type pipeline struct {
	ctx   context.Context // cancelled at the first error
	r     *repo.Repo
	batch repo.Batch
	index *repo.Index
	base  *repo.Index // differential streams only: the parent's index as it was
	// durable lists, sorted, the chunks of the parent's index: published
	// by a commit, so durable. Any other chunk found stored may be the
	// leftover of a store that died before its commit (Batch.Reuse).
	durable  []repo.Hash
	size     int64
	reverify bool // a distrusted revision exists: check chunks before reuse
	counters *Counters

	jobs     chan *job   // to the checkers
	fresh    chan *job   // from the checkers to the workers: chunks to store
	bufs     chan []byte // free chunk buffers; its capacity bounds memory
	verified sync.Map    // chunks re-verified in this run
}

// run calls feed, which hands chunks to the checkers with getBuf and
// submit, and waits for feed, the checkers and the workers (an errgroup):
// the first error of any of them stops the others and is returned.
func (p *pipeline) run(ctx context.Context, workers int, feed func() error) error {
	g, ctx := errgroup.WithContext(ctx)
	p.ctx = ctx
	p.jobs = make(chan *job, workers)
	p.fresh = make(chan *job, workers)
	p.bufs = make(chan []byte, 2*workers+2)
	for range cap(p.bufs) {
		p.bufs <- nil // allocated on first use
	}
	var checkers sync.WaitGroup
	for range 2 * workers {
		checkers.Add(1)
		g.Go(func() error {
			defer checkers.Done()
			return p.check()
		})
	}
	g.Go(func() error {
		checkers.Wait()
		close(p.fresh)
		return nil
	})
	for range workers {
		g.Go(p.work)
	}
	g.Go(func() error {
		defer close(p.jobs)
		return feed()
	})
	return g.Wait()
}

// chunkLen is how many bytes of chunk n lie inside the image.
func (p *pipeline) chunkLen(n int64) int64 {
	return min(repo.ChunkSize, p.size-n*repo.ChunkSize)
}

func (p *pipeline) setZero(n int64) {
	p.index.Hashes[n] = repo.ZeroHash
	p.counters.ChunksZero.Add(1)
}

func (p *pipeline) getBuf() ([]byte, error) {
	select {
	case b := <-p.bufs:
		if b == nil {
			return make([]byte, repo.ChunkSize), nil
		}
		return b, nil // holds an old chunk: submit clears what the stream left out
	case <-p.ctx.Done():
		return nil, p.ctx.Err()
	}
}

func (p *pipeline) submit(j *job) error {
	select {
	case p.jobs <- j:
		return nil
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

// check is a checker: it completes each chunk, hashes it, and passes
// those the store lacks to the workers.
func (p *pipeline) check() error {
	var scratch []byte
	for j := range p.jobs {
		if err := p.ctx.Err(); err != nil {
			p.bufs <- j.buf
			return err
		}
		fresh, err := p.checkOne(j, &scratch)
		if err != nil || !fresh {
			p.bufs <- j.buf
			if err != nil {
				return err
			}
			continue
		}
		select {
		case p.fresh <- j:
		case <-p.ctx.Done():
			p.bufs <- j.buf
			return p.ctx.Err()
		}
	}
	return nil
}

// checkOne fills chunk j from the base, hashes it, and reports whether it
// is to be stored (neither zero nor stored already).
func (p *pipeline) checkOne(j *job, scratch *[]byte) (bool, error) {
	if j.partial {
		if err := p.fillFromBase(j, scratch); err != nil {
			return false, err
		}
	}
	if l := p.chunkLen(j.n); l < repo.ChunkSize {
		clear(j.buf[l:]) // bytes past the image end are always zero
	}
	h := repo.HashChunk(j.buf)
	p.index.Hashes[j.n] = h
	if h.IsZero() {
		p.counters.ChunksZero.Add(1)
		return false, nil
	}
	reuse, err := p.canReuse(h, scratch)
	if err != nil {
		return false, err
	}
	if reuse {
		p.counters.ChunksReused.Add(1)
		if _, ok := slices.BinarySearchFunc(p.durable, h, compareHash); !ok {
			p.batch.Reuse(h)
		}
	}
	return !reuse, nil
}

// work is a worker: it compresses and stores the chunks the checkers found
// new.
func (p *pipeline) work() error {
	var out []byte
	for j := range p.fresh {
		if err := p.ctx.Err(); err != nil {
			p.bufs <- j.buf
			return err
		}
		if out == nil {
			// Whole at once: grown by Compress, the buffers of two
			// workers made 33 MiB of garbage at the start of a full
			// backup, 16 MiB of its peak RSS. Not before the first new
			// chunk: an unchanged backup compresses nothing.
			out = make([]byte, 0, repo.MaxCompressed)
		}
		out = repo.Compress(out, j.buf)
		err := p.batch.Put(p.index.Hashes[j.n], out)
		p.bufs <- j.buf
		if err != nil {
			return err
		}
		p.counters.ChunksNew.Add(1)
		p.counters.BytesWritten.Add(int64(len(out)))
	}
	return nil
}

// fillFromBase copies the bytes the stream did not write from the base
// chunk, which is read and verified first.
func (p *pipeline) fillFromBase(j *job, scratch *[]byte) error {
	if j.n >= int64(len(p.base.Hashes)) || p.base.Hashes[j.n].IsZero() {
		return nil // beyond the old end or zero: the buffer is zero already
	}
	if *scratch == nil {
		*scratch = make([]byte, repo.ChunkSize)
	}
	h := p.base.Hashes[j.n]
	data, err := p.r.ReadChunk(*scratch, h)
	if err != nil {
		return fmt.Errorf("%w (base chunk %d at offset %d)", err, j.n, j.n*repo.ChunkSize)
	}
	pos := int64(0)
	for _, s := range j.covered {
		copy(j.buf[pos:s.lo], data[pos:s.lo])
		pos = s.hi
	}
	copy(j.buf[pos:], data[pos:])
	return nil
}

// canReuse reports whether chunk h is already stored (and, while the
// repository has distrusted revisions, whether it is still intact).
func (p *pipeline) canReuse(h repo.Hash, scratch *[]byte) (bool, error) {
	// The parent's index is no proof the chunk is still there: a chunk
	// lost since would make the new revision unrestorable, so always look.
	has, err := p.r.Chunks.Has(h)
	if err != nil || !has {
		return false, err
	}
	if !p.reverify {
		return true, nil
	}
	if _, done := p.verified.Load(h); done {
		return true, nil
	}
	if *scratch == nil {
		*scratch = make([]byte, repo.ChunkSize)
	}
	if _, err := p.r.ReadChunk(*scratch, h); err != nil {
		return false, nil // damaged: store it again, which repairs it
	}
	p.verified.Store(h, true)
	return true, nil
}

func compareHash(a, b repo.Hash) int { return bytes.Compare(a[:], b[:]) }

// sortedHashes is the sorted set of the chunks an index names.
func sortedHashes(ix *repo.Index) []repo.Hash {
	hs := slices.Clone(ix.Hashes)
	slices.SortFunc(hs, compareHash)
	return slices.CompactFunc(hs, func(a, b repo.Hash) bool { return a == b })
}
