package store

import (
	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
)

// span is a covered byte range inside one chunk.
type span struct{ lo, hi int64 }

// job is one chunk for a worker to finish.
type job struct {
	n       int64  // chunk number
	buf     []byte // ChunkSize bytes: the chunk with the records applied
	covered []span // what the stream wrote, in ascending order
	partial bool   // differential: fill the rest from the base chunk
}

// assembler applies records, in order, to one chunk at a time and hands
// finished chunks to the workers.
type assembler struct {
	p    *pipeline
	cur  *job
	last int64 // number of the last chunk handed on, -1 before the first
}

func (a *assembler) apply(rec *extent.Record) error {
	for off := rec.Offset; off < rec.End(); {
		n := off / repo.ChunkSize
		base := n * repo.ChunkSize
		hi := min(rec.End(), base+repo.ChunkSize)
		if a.cur != nil && a.cur.n != n {
			if err := a.flush(); err != nil {
				return err
			}
		}
		if a.cur == nil && rec.Type == extent.Zero && off == base && hi-base == a.p.chunkLen(n) {
			a.p.setZero(n) // a whole zero chunk needs no buffer
			a.last = n
			off = hi
			continue
		}
		if a.cur == nil {
			buf, err := a.p.getBuf()
			if err != nil {
				return err
			}
			a.cur = &job{n: n, buf: buf}
		}
		if rec.Type == extent.Data {
			copy(a.cur.buf[off-base:hi-base], rec.Data[off-rec.Offset:])
		} else {
			clear(a.cur.buf[off-base : hi-base])
		}
		a.cur.cover(off-base, hi-base)
		off = hi
	}
	return nil
}

func (j *job) cover(lo, hi int64) {
	if k := len(j.covered); k > 0 && j.covered[k-1].hi == lo {
		j.covered[k-1].hi = hi
		return
	}
	j.covered = append(j.covered, span{lo, hi})
}

// clearGaps zeroes what the stream did not write, so a reused buffer holds
// no bytes of an older chunk; a chunk the stream wrote whole (the common
// case) is not cleared at all.
func (j *job) clearGaps() {
	pos := int64(0)
	for _, s := range j.covered {
		clear(j.buf[pos:s.lo])
		pos = s.hi
	}
	clear(j.buf[pos:])
}

// flush hands the current chunk to the workers.
func (a *assembler) flush() error {
	j := a.cur
	if j == nil {
		return nil
	}
	a.cur = nil
	a.last = j.n
	j.clearGaps()
	j.partial = a.p.base != nil && !(len(j.covered) == 1 && j.covered[0].lo == 0 && j.covered[0].hi >= a.p.chunkLen(j.n))
	return a.p.submit(j)
}

// finish flushes the last chunk and, when a differential stream shrank the
// image into the middle of a chunk it did not touch, sends that chunk too
// so that the bytes past the new end are cleared.
func (a *assembler) finish() error {
	if err := a.flush(); err != nil {
		return err
	}
	p := a.p
	last := repo.ChunkCount(p.size) - 1
	if p.base == nil || p.size >= p.base.Size || p.size%repo.ChunkSize == 0 || a.last >= last {
		return nil
	}
	if p.index.Hashes[last].IsZero() {
		return nil
	}
	buf, err := p.getBuf()
	if err != nil {
		return err
	}
	j := &job{n: last, buf: buf, partial: true}
	j.clearGaps()
	return p.submit(j)
}
