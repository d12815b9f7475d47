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

// pipeline runs the workers that hash, check and compress chunks.
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

	jobs     chan *job
	bufs     chan []byte // free chunk buffers; its capacity bounds memory
	verified sync.Map    // chunks re-verified in this run
}

// run calls feed, which hands chunks to the workers with getBuf and
// submit, and waits for feed and the workers (an errgroup): the first
// error of any of them stops the others and is returned.
func (p *pipeline) run(ctx context.Context, workers int, feed func() error) error {
	g, ctx := errgroup.WithContext(ctx)
	p.ctx = ctx
	p.jobs = make(chan *job, workers)
	p.bufs = make(chan []byte, 2*workers+2)
	for range cap(p.bufs) {
		p.bufs <- nil // allocated on first use
	}
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

func (p *pipeline) work() error {
	var scratch, out []byte
	for j := range p.jobs {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		var err error
		scratch, out, err = p.finish(j, scratch, out)
		p.bufs <- j.buf
		if err != nil {
			return err
		}
	}
	return nil
}

// finish completes one chunk: fill from the base, hash, store if new.
func (p *pipeline) finish(j *job, scratch, out []byte) ([]byte, []byte, error) {
	if j.partial {
		var err error
		if scratch, err = p.fillFromBase(j, scratch); err != nil {
			return scratch, out, err
		}
	}
	if l := p.chunkLen(j.n); l < repo.ChunkSize {
		clear(j.buf[l:]) // bytes past the image end are always zero
	}
	h := repo.HashChunk(j.buf)
	p.index.Hashes[j.n] = h
	if h.IsZero() {
		p.counters.ChunksZero.Add(1)
		return scratch, out, nil
	}
	reuse, err := p.canReuse(h, &scratch)
	if err != nil || reuse {
		if reuse {
			p.counters.ChunksReused.Add(1)
			if _, ok := slices.BinarySearchFunc(p.durable, h, compareHash); !ok {
				p.batch.Reuse(h)
			}
		}
		return scratch, out, err
	}
	out = repo.Compress(out, j.buf)
	if err := p.batch.Put(h, out); err != nil {
		return scratch, out, err
	}
	p.counters.ChunksNew.Add(1)
	p.counters.BytesWritten.Add(int64(len(out)))
	return scratch, out, nil
}

// fillFromBase copies the bytes the stream did not write from the base
// chunk, which is read and verified first.
func (p *pipeline) fillFromBase(j *job, scratch []byte) ([]byte, error) {
	if j.n >= int64(len(p.base.Hashes)) || p.base.Hashes[j.n].IsZero() {
		return scratch, nil // beyond the old end or zero: the buffer is zero already
	}
	if scratch == nil {
		scratch = make([]byte, repo.ChunkSize)
	}
	h := p.base.Hashes[j.n]
	data, err := p.r.ReadChunk(scratch, h)
	if err != nil {
		return scratch, fmt.Errorf("%w (base chunk %d at offset %d)", err, j.n, j.n*repo.ChunkSize)
	}
	pos := int64(0)
	for _, s := range j.covered {
		copy(j.buf[pos:s.lo], data[pos:s.lo])
		pos = s.hi
	}
	copy(j.buf[pos:], data[pos:])
	return data, nil
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
