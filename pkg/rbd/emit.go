package rbd

import (
	"bufio"
	"fmt"
	"io"
	"sort"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/source"
)

// emitter is the Sink every engine writes to. It puts the extents into one
// canonical form, whatever their boundaries were, so that both engines
// write the same bytes for the same snapshots:
//
//   - data is cut at 4 MiB chunk boundaries, so no record spans two chunks;
//   - a piece of data that is all zero becomes a zero range (a piece being
//     what lies inside one reported extent and one chunk);
//   - neighbouring zero ranges leave as one zero record.
//
// In sample mode it collects each sampled block whole and writes it as one
// data record, or one zero range if it is all zero, so that a sample does
// not even depend on where the engine's extents started and ended.
type emitter struct {
	hdr  extent.Header
	out  *bufio.Writer
	w    *extent.Writer
	zero extent.ZeroRun

	percent float64 // sample mode when > 0
	seed    uint64
	sample  *sampler
}

// newEmitter prepares a stream with header hdr (its Size is set by Begin)
// on out. percent > 0 makes it a sample of that many percent of the blocks.
func newEmitter(out io.Writer, hdr extent.Header, percent float64, seed uint64) *emitter {
	return &emitter{hdr: hdr, out: bufio.NewWriterSize(out, 256<<10), percent: percent, seed: seed}
}

func (e *emitter) Begin(size int64) error {
	if e.w != nil {
		return fmt.Errorf("rbd: internal error: stream begun twice")
	}
	e.hdr.Size = size
	w, err := extent.NewWriter(e.out, e.hdr)
	if err != nil {
		return err
	}
	e.w, e.zero.Write = w, w.WriteZero
	if e.percent > 0 {
		e.sample = &sampler{e: e, blocks: source.SampleBlocks(size, e.percent, e.seed), cur: -1}
	}
	return nil
}

func (e *emitter) Wanted(off, end int64) bool {
	return e.sample == nil || e.sample.wanted(off, end)
}

func (e *emitter) Zero(off, length int64) error {
	if e.w == nil {
		return fmt.Errorf("rbd: internal error: zero range before the image size")
	}
	if e.sample != nil {
		return nil // a block starts out zero
	}
	return e.zero.Add(off, off+length)
}

func (e *emitter) Data(off int64, p []byte) error {
	if e.w == nil {
		return fmt.Errorf("rbd: internal error: data before the image size")
	}
	for len(p) > 0 {
		n := int(min(int64(len(p)), (off/repo.ChunkSize+1)*repo.ChunkSize-off))
		var err error
		switch {
		case e.sample != nil:
			err = e.sample.data(off, p[:n])
		case extent.IsZero(p[:n]):
			err = e.zero.Add(off, off+int64(n))
		default:
			if err = e.zero.Flush(); err == nil {
				err = e.w.WriteData(off, p[:n])
			}
		}
		if err != nil {
			return err
		}
		off += int64(n)
		p = p[n:]
	}
	return nil
}

// finish writes the END record: only a caller that read everything calls it.
func (e *emitter) finish() (extent.Summary, error) {
	if e.w == nil {
		return extent.Summary{}, fmt.Errorf("rbd: internal error: stream never begun")
	}
	if e.sample != nil {
		if err := e.sample.flushUpTo(len(e.sample.blocks)); err != nil {
			return e.w.Summary(), err
		}
	}
	if err := e.zero.Flush(); err != nil {
		return e.w.Summary(), err
	}
	if err := e.w.Close(); err != nil {
		return e.w.Summary(), err
	}
	return e.w.Summary(), e.out.Flush()
}

// sampler assembles the sampled blocks of a sample stream.
type sampler struct {
	e      *emitter
	blocks []int64 // ascending
	next   int     // index of the first block not written yet
	cur    int     // index of the block in buf, -1 for none
	buf    []byte
}

// index returns the position of block b in blocks, or -1.
func (s *sampler) index(b int64) int {
	for i := s.next; i < len(s.blocks) && s.blocks[i] <= b; i++ {
		if s.blocks[i] == b {
			return i
		}
	}
	return -1
}

// wanted reports whether a sampled block not yet written overlaps
// [off, end); a binary search, since an engine may ask for every block.
func (s *sampler) wanted(off, end int64) bool {
	rest := s.blocks[s.next:]
	i := sort.Search(len(rest), func(i int) bool { return (rest[i]+1)*repo.ChunkSize > off })
	return i < len(rest) && rest[i]*repo.ChunkSize < end
}

// data copies a piece (inside one block) into its block, first writing
// every sampled block before it.
func (s *sampler) data(off int64, p []byte) error {
	b := off / repo.ChunkSize
	i := s.index(b)
	if i < 0 {
		return nil // not sampled
	}
	if err := s.flushUpTo(i); err != nil {
		return err
	}
	if s.cur != i {
		if s.buf == nil {
			s.buf = make([]byte, repo.ChunkSize)
		}
		clear(s.buf)
		s.cur = i
	}
	copy(s.buf[off-b*repo.ChunkSize:], p)
	return nil
}

// flushUpTo writes the sampled blocks before index i: the one in buf with
// its data, the others as zero (nothing in the image there).
func (s *sampler) flushUpTo(i int) error {
	for ; s.next < i; s.next++ {
		off := s.blocks[s.next] * repo.ChunkSize
		n := min(repo.ChunkSize, s.e.hdr.Size-off)
		var err error
		if s.cur == s.next && !extent.IsZero(s.buf[:n]) {
			if err = s.e.zero.Flush(); err == nil {
				err = s.e.w.WriteData(off, s.buf[:n])
			}
		} else {
			err = s.e.zero.Add(off, off+n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
