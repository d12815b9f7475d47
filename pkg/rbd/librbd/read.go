//go:build librbd

package librbd

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"syscall"

	"github.com/backy/backy/pkg/rbd"
	"github.com/backy/backy/pkg/repo"
	cephrbd "github.com/ceph/go-ceph/rbd"
)

// window is how much of the image one diff iteration covers: its extents
// are held in memory before they are read. A multiple of the chunk size,
// so that cutting an extent at a window edge cuts it where the emitter
// would cut it anyway, and large, because with fast-diff every iteration
// loads the object maps of the whole image.
const window = 8 << 30

// piece is one extent inside one chunk on its way to the sink, in order.
type piece struct {
	off, n int64
	data   bool   // read it; otherwise it reads as zeros
	buf    []byte // the bytes read, when data
	err    error
	done   chan struct{}
}

// Diff implements rbd.Engine: diff iteration (or, for a sample, the
// sampled blocks) feeds the readers, the sink gets the pieces in order.
func (e *engine) Diff(ctx context.Context, req rbd.DiffRequest, sink rbd.Sink) error {
	lister, err := e.open(req.Image, false)
	if err != nil {
		return err
	}
	defer lister.Close()
	// Reads get a handle of their own, so no read ever runs alongside a
	// diff iteration on the same handle.
	reader, err := e.open(req.Image, false)
	if err != nil {
		return err
	}
	defer reader.Close()
	usize, err := lister.GetSize()
	if err != nil {
		return fmt.Errorf("rbd: size of %s: %w", req.Image, err)
	}
	size := int64(usize)
	if err := sink.Begin(size); err != nil {
		return err
	}
	var blocks []int64
	if req.Sample {
		// Asked before the pipeline starts: the sink is not safe for
		// concurrent use.
		for b := int64(0); b*repo.ChunkSize < size; b++ {
			if sink.Wanted(b*repo.ChunkSize, min(size, (b+1)*repo.ChunkSize)) {
				blocks = append(blocks, b)
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := &pipeline{img: reader,
		bufs:  make(chan []byte, 2*Readers),
		jobs:  make(chan *piece, Readers),
		order: make(chan *piece, 2*Readers)}
	for range cap(p.bufs) {
		p.bufs <- nil
	}
	for range Readers {
		p.wg.Add(1)
		go p.read()
	}
	go func() {
		defer close(p.order)
		defer close(p.jobs)
		var err error
		if req.Sample {
			err = p.sendBlocks(ctx, blocks, size)
		} else {
			err = p.sendDiff(ctx, lister, req, size)
		}
		if err != nil {
			p.send(ctx, &piece{err: err, done: closed})
		}
	}()
	err = p.deliver(ctx, sink)
	cancel()
	for range p.order { // let the producer finish
	}
	p.wg.Wait() // no read may outlive the image handle
	return err
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

type pipeline struct {
	img   *cephrbd.Image
	bufs  chan []byte // bounds the data in flight
	jobs  chan *piece
	order chan *piece
	wg    sync.WaitGroup
}

// deliver hands the pieces to the sink in order.
func (p *pipeline) deliver(ctx context.Context, sink rbd.Sink) error {
	for pc := range p.order {
		<-pc.done
		var err error
		switch {
		case pc.err != nil:
			err = pc.err
		case pc.data:
			err = sink.Data(pc.off, pc.buf)
			p.bufs <- pc.buf
		default:
			err = sink.Zero(pc.off, pc.n)
		}
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (p *pipeline) read() {
	defer p.wg.Done()
	for pc := range p.jobs {
		n, err := p.img.ReadAt(pc.buf, pc.off)
		switch {
		case err != nil:
			pc.err = fmt.Errorf("rbd: reading %d bytes at %d: %w", len(pc.buf), pc.off, err)
		case n != len(pc.buf):
			pc.err = fmt.Errorf("rbd: short read at %d: %d of %d bytes", pc.off, n, len(pc.buf))
		}
		close(pc.done)
	}
}

// send queues a piece, starting its read; false when ctx is done.
func (p *pipeline) send(ctx context.Context, pc *piece) bool {
	if pc.data {
		select {
		case pc.buf = <-p.bufs:
		case <-ctx.Done():
			return false
		}
		if pc.buf == nil {
			pc.buf = make([]byte, repo.ChunkSize)
		}
		pc.buf, pc.done = pc.buf[:pc.n], make(chan struct{})
		select {
		case p.jobs <- pc:
		case <-ctx.Done():
			return false
		}
	} else if pc.done == nil {
		pc.done = closed
	}
	select {
	case p.order <- pc:
		return true
	case <-ctx.Done():
		return false
	}
}

// sendBlocks queues whole sampled blocks.
func (p *pipeline) sendBlocks(ctx context.Context, blocks []int64, size int64) error {
	for _, b := range blocks {
		off := b * repo.ChunkSize
		if !p.send(ctx, &piece{off: off, n: min(repo.ChunkSize, size-off), data: true}) {
			return ctx.Err()
		}
	}
	return nil
}

// extent is what the diff iteration reports.
type extent struct {
	off, n int64
	exists bool
}

// sendDiff iterates the diff window by window and queues its extents,
// data cut at chunk boundaries.
func (p *pipeline) sendDiff(ctx context.Context, img *cephrbd.Image, req rbd.DiffRequest, size int64) error {
	whole := cephrbd.DisableWholeObject
	if req.WholeObject {
		whole = cephrbd.EnableWholeObject
	}
	for w := int64(0); w < size; w += window {
		var mu sync.Mutex
		var exts []extent
		err := img.DiffIterate(cephrbd.DiffIterateConfig{
			SnapName: req.From, Offset: uint64(w), Length: uint64(min(window, size-w)),
			IncludeParent: cephrbd.IncludeParent, WholeObject: whole,
			Callback: func(off, n uint64, exists int, _ interface{}) int {
				if ctx.Err() != nil {
					return -int(syscall.ECANCELED)
				}
				mu.Lock()
				exts = append(exts, extent{int64(off), int64(n), exists != 0})
				mu.Unlock()
				return 0
			},
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("rbd: diff of %s from %q: %w", req.Image, req.From, err)
		}
		sort.SliceStable(exts, func(i, j int) bool { return exts[i].off < exts[j].off })
		for _, x := range exts {
			if !x.exists {
				if !p.send(ctx, &piece{off: x.off, n: x.n}) {
					return ctx.Err()
				}
				continue
			}
			for off, end := x.off, x.off+x.n; off < end; {
				n := min(end, (off/repo.ChunkSize+1)*repo.ChunkSize) - off
				if !p.send(ctx, &piece{off: off, n: n, data: true}) {
					return ctx.Err()
				}
				off += n
			}
		}
	}
	return nil
}
