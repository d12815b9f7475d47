package upkeep

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
	"golang.org/x/sync/errgroup"
)

// span is a range inside one chunk, [lo, hi).
type span struct{ lo, hi int64 }

// cmpJob is one chunk's worth of stream to compare: buf holds what the
// stream says about the covered spans (zero records leave zeros).
type cmpJob struct {
	n      int64
	buf    []byte
	spans  []span
	pooled bool
}

func (j *cmpJob) cover(lo, hi int64) {
	if k := len(j.spans); k > 0 && j.spans[k-1].hi == lo {
		j.spans[k-1].hi = hi
		return
	}
	j.spans = append(j.spans, span{lo, hi})
}

// comparer gathers the records of a stream into per-chunk jobs and lets
// workers compare them with the revision, reading each chunk once.
type comparer struct {
	r       *repo.Repo
	ix      *repo.Index
	res     *AgainstResult
	workers int

	records, bytes atomic.Int64 // progress, for the timeout message
	mu             sync.Mutex
	jobs           chan *cmpJob
	bufs           chan []byte
}

func (c *comparer) mismatch(m Mismatch) {
	c.mu.Lock()
	c.res.Mismatches = append(c.res.Mismatches, m)
	c.mu.Unlock()
}

// run reads the whole stream and compares it; it returns the stream's
// error if it is malformed or truncated.
func (c *comparer) run(ctx context.Context, in io.Reader) error {
	sr, err := extent.NewReader(in)
	if err != nil {
		return err
	}
	hdr := sr.Header()
	if hdr.Kind == extent.Differential {
		return fmt.Errorf("%w: it only holds what changed since %q", ErrStreamKind, hdr.Base)
	}
	if hdr.Size != c.ix.Size {
		c.mismatch(Mismatch{Offset: min(hdr.Size, c.ix.Size), First: -1,
			Detail: fmt.Sprintf("image size differs: the stream has %d bytes, the revision %d", hdr.Size, c.ix.Size)})
	}
	c.jobs = make(chan *cmpJob, c.workers)
	c.bufs = make(chan []byte, 2*c.workers+2)
	for range cap(c.bufs) {
		c.bufs <- nil
	}
	// The feeder and the workers form an errgroup: a malformed stream
	// stops the workers.
	g, gctx := errgroup.WithContext(ctx)
	for range c.workers {
		g.Go(func() error { c.work(gctx); return nil })
	}
	var covered int64
	g.Go(func() (err error) {
		defer close(c.jobs)
		covered, err = c.feed(gctx, sr)
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil { // the workers skipped what was left
		return err
	}
	c.res.Records, c.res.Bytes = c.records.Load(), c.bytes.Load()
	c.res.Complete = hdr.Size == c.ix.Size && covered == c.ix.Size
	slices.SortFunc(c.res.Mismatches, func(a, b Mismatch) int { return cmp.Compare(a.Offset, b.Offset) })
	return nil
}

// feed turns records into jobs; it returns how many image bytes the
// stream covered.
func (c *comparer) feed(ctx context.Context, sr *extent.Reader) (int64, error) {
	var cur *cmpJob
	var covered int64
	submit := func() error {
		if cur == nil {
			return nil
		}
		j := cur
		cur = nil
		select {
		case c.jobs <- j:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return covered, err
		}
		rec, err := sr.Next()
		if err == io.EOF {
			return covered, submit()
		}
		if err != nil {
			return covered, err
		}
		c.records.Add(1)
		lo, hi := rec.Offset, min(rec.End(), c.ix.Size)
		for off := lo; off < hi; {
			n := off / repo.ChunkSize
			base := n * repo.ChunkSize
			end := min(hi, base+repo.ChunkSize)
			if cur != nil && cur.n != n {
				if err := submit(); err != nil {
					return covered, err
				}
			}
			whole := off == base && end == min(base+repo.ChunkSize, c.ix.Size)
			switch {
			case cur == nil && rec.Type == extent.Zero && whole && c.ix.Hashes[n].IsZero():
				// Zero in both: nothing to read.
			case cur == nil && rec.Type == extent.Zero && whole:
				cur = &cmpJob{n: n, buf: extent.Zeros(repo.ChunkSize), spans: []span{{0, end - base}}}
			default:
				if cur == nil {
					cur = &cmpJob{n: n, buf: c.getBuf(), pooled: true}
				}
				if rec.Type == extent.Data {
					copy(cur.buf[off-base:end-base], rec.Data[off-rec.Offset:])
				}
				cur.cover(off-base, end-base)
			}
			off = end
		}
		if hi > lo {
			covered += hi - lo
			c.bytes.Add(hi - lo)
		}
	}
}

func (c *comparer) getBuf() []byte {
	b := <-c.bufs
	if b == nil {
		return make([]byte, repo.ChunkSize)
	}
	clear(b)
	return b
}

// work compares jobs with the revision's chunks.
func (c *comparer) work(ctx context.Context) {
	scratch := make([]byte, repo.ChunkSize)
	for j := range c.jobs {
		if ctx.Err() == nil {
			c.compare(j, scratch)
		}
		if j.pooled {
			c.bufs <- j.buf
		}
	}
}

func (c *comparer) compare(j *cmpJob, scratch []byte) {
	base := j.n * repo.ChunkSize
	data, err := c.r.ReadChunk(scratch, c.ix.Hashes[j.n])
	if err != nil {
		c.mismatch(Mismatch{Offset: base, Length: j.spans[len(j.spans)-1].hi, First: -1, Detail: err.Error()})
		return
	}
	for _, s := range j.spans {
		got, want := data[s.lo:s.hi], j.buf[s.lo:s.hi]
		if bytes.Equal(got, want) {
			continue
		}
		i := 0
		for got[i] == want[i] {
			i++
		}
		c.mismatch(Mismatch{Offset: base + s.lo, Length: s.hi - s.lo, First: base + s.lo + int64(i)})
	}
}
