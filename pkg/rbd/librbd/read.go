//go:build librbd

package librbd

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"syscall"

	"github.com/backy/backy/pkg/ordered"
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
}

// Diff implements rbd.Engine: diff iteration (or, for a sample, the
// sampled blocks) produces the pieces, Readers read them ahead into the
// buffers of their slots of an ordered pipeline, and the sink gets them in
// order.
func (e *engine) Diff(ctx context.Context, req rbd.DiffRequest, sink rbd.Sink) error {
	lister, err := e.open(req.Image, false)
	if err != nil {
		return err
	}
	defer lister.Close()
	// Reads get a handle of their own, so no read ever runs alongside a
	// diff iteration on the same handle. The pipeline is over before it is
	// closed: no read outlives it.
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
	var bufs [2 * Readers][]byte // bounds the data in flight
	return ordered.Run(ctx, Readers, len(bufs),
		func(ctx context.Context, send func(piece) error) error {
			if req.Sample {
				return sendBlocks(send, blocks, size)
			}
			return sendDiff(ctx, send, lister, req, size)
		},
		func(_ context.Context, slot int, pc *piece) error {
			if !pc.data {
				return nil
			}
			if bufs[slot] == nil {
				bufs[slot] = make([]byte, repo.ChunkSize)
			}
			pc.buf = bufs[slot][:pc.n]
			n, err := reader.ReadAt(pc.buf, pc.off)
			switch {
			case err != nil:
				return fmt.Errorf("rbd: reading %d bytes at %d: %w", len(pc.buf), pc.off, err)
			case n != len(pc.buf):
				return fmt.Errorf("rbd: short read at %d: %d of %d bytes", pc.off, n, len(pc.buf))
			}
			return nil
		},
		func(pc *piece) error {
			if pc.data {
				return sink.Data(pc.off, pc.buf)
			}
			return sink.Zero(pc.off, pc.n)
		})
}

// sendBlocks queues whole sampled blocks.
func sendBlocks(send func(piece) error, blocks []int64, size int64) error {
	for _, b := range blocks {
		off := b * repo.ChunkSize
		if err := send(piece{off: off, n: min(repo.ChunkSize, size-off), data: true}); err != nil {
			return err
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
func sendDiff(ctx context.Context, send func(piece) error, img *cephrbd.Image, req rbd.DiffRequest, size int64) error {
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
				if err := send(piece{off: x.off, n: x.n}); err != nil {
					return err
				}
				continue
			}
			for off, end := x.off, x.off+x.n; off < end; {
				n := min(end, (off/repo.ChunkSize+1)*repo.ChunkSize) - off
				if err := send(piece{off: off, n: n, data: true}); err != nil {
					return err
				}
				off += n
			}
		}
	}
	return nil
}
