package source

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/ordered"
	"github.com/backy/backy/pkg/progress"
	"github.com/backy/backy/pkg/repo"
	"github.com/zeebo/blake3"
)

// A file source has no snapshots to diff, but the repository it is backed
// up into knows the name (BLAKE3 hash) of every chunk of its newest
// revision. With a base, the source hashes each 4 MiB chunk as it reads it
// and sends only the chunks whose hash differs: every byte is still read
// and hashed, but unchanged bytes no longer cross the pipe nor go through
// backy-store, and the stream is a differential one relative to that
// revision (base "revision:ID").

// fileBase is the revision a differential stream is relative to.
type fileBase struct {
	rev    *repo.Revision
	hashes []repo.Hash
}

// chooseFileBase returns the base for a differential stream of an image of
// size bytes, or nil (with the reason logged) when the stream must be full.
// Which source the base revision was taken from does not matter: chunks
// are compared by content, so a base of another file (an LVM snapshot with
// a new name each day, say) costs only what differs, and is never wrong.
func chooseFileBase(dir string, open []repo.Option, size int64, log *slog.Logger) (*fileBase, error) {
	log = cmp.Or(log, slog.New(slog.DiscardHandler))
	r, rev, err := repo.NewestRevision(dir, open...)
	if err != nil {
		return nil, err
	}
	if r != nil {
		defer r.Close()
	}
	switch {
	case rev == nil:
		log.Info(fmt.Sprintf("%s has no revisions yet: full stream", dir))
		return nil, nil
	case rev.IsDistrusted():
		log.Info(fmt.Sprintf("newest revision %s is distrusted: full stream", rev.ID))
		return nil, nil
	case rev.Size != size:
		log.Info(fmt.Sprintf("newest revision %s has %d bytes, the image %d: full stream", rev.ID, rev.Size, size))
		return nil, nil
	}
	ix, err := r.IndexOf(rev)
	if err != nil {
		log.Info(fmt.Sprintf("cannot read the index of revision %s (%v): full stream", rev.ID, err))
		return nil, nil
	}
	if ix.Size != size || int64(len(ix.Hashes)) != repo.ChunkCount(size) {
		log.Info(fmt.Sprintf("the index of revision %s is of %d bytes, its metadata says %d: full stream", rev.ID, ix.Size, rev.Size))
		return nil, nil
	}
	return &fileBase{rev: rev, hashes: ix.Hashes}, nil
}

// chunkGroup is one 4 MiB chunk of the image on its way to being read,
// hashed and then sent or skipped: the data ranges inside it (holes
// excluded), then the blocks read from them.
type chunkGroup struct {
	n      int64
	ranges [][2]int64 // data ranges inside the chunk, ascending
	blocks []block    // what was read: one per range
	buf    []byte     // seekable sources: the one buffer blocks point into
	hash   repo.Hash
}

// emitDiff writes the records of every chunk whose content differs from
// the base: data and zero records covering the whole chunk, so that nothing
// of the base chunk survives. Chunks are read and hashed by a worker per
// core in an ordered pipeline (a pipe is read by one reader, in order, and
// hashed by the workers); records stay in order, and nothing reads the
// image once emitDiff has returned (a pipe's reader may be stuck in a read
// and is left to end by itself).
func emitDiff(ctx context.Context, w *extent.Writer, img *image, base *fileBase, done *progress.Counter) error {
	produce := img.planChunks
	work := func(_ context.Context, _ int, g *chunkGroup) error { return img.readGroup(g) }
	if !img.seekable {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		blocks := make(chan block, 4)
		go img.readAll(ctx, blocks)
		produce = groupBlocks(blocks)
		work = func(_ context.Context, _ int, g *chunkGroup) error { g.hash = groupHash(g); return nil }
	}
	e := diffEmitter{w: w, size: img.size, hashes: base.hashes, z: extent.ZeroRun{Write: w.WriteZero}}
	err := ordered.Run(ctx, 0, 0, produce, work, func(g *chunkGroup) error {
		defer g.release()
		if err := e.group(g); err != nil {
			return err
		}
		done.Set(min((g.n+1)*repo.ChunkSize, img.size))
		return nil
	})
	if err != nil {
		return err
	}
	if err := e.gap(repo.ChunkCount(img.size)); err != nil {
		return err
	}
	done.Set(img.size)
	return e.z.Flush()
}

// planChunks splits the data regions of a seekable image into chunk
// groups, without reading anything.
func (img *image) planChunks(_ context.Context, send func(chunkGroup) error) error {
	g := chunkGroup{n: -1}
	err := img.dataRegions(func(from, to int64) error {
		for off := from; off < to; {
			n := off / repo.ChunkSize
			end := min((n+1)*repo.ChunkSize, to)
			if g.n != n {
				if g.n >= 0 {
					if err := send(g); err != nil {
						return err
					}
				}
				g = chunkGroup{n: n}
			}
			g.ranges = append(g.ranges, [2]int64{off, end})
			off = end
		}
		return nil
	})
	if err != nil || g.n < 0 {
		return err
	}
	return send(g)
}

// release returns the group's buffers to the pool.
func (g *chunkGroup) release() {
	if g.buf != nil {
		putBuf(g.buf)
		g.buf = nil
	} else {
		for _, b := range g.blocks {
			putBuf(b.buf)
		}
	}
	g.blocks = nil
}

// readGroup reads a group's ranges into blocks and hashes them piece by
// piece as they are read, while the bytes are in the CPU cache. All the
// ranges go into one chunk-sized buffer, at their place in the chunk: a
// chunk of many small data regions costs no more memory than a whole one.
func (img *image) readGroup(g *chunkGroup) error {
	h := blake3.New()
	allZero := true
	start := g.n * repo.ChunkSize
	pos := start
	g.buf = getBuf(repo.ChunkSize)
	for _, r := range g.ranges {
		buf := g.buf[r[0]-start : r[1]-start : r[1]-start]
		g.blocks = append(g.blocks, block{off: r[0], buf: buf})
		writeZeros(h, r[0]-pos)
		for p := 0; p < len(buf); p += readPiece {
			piece := buf[p:min(p+readPiece, len(buf))]
			if err := img.readFull(piece, r[0]+int64(p)); err != nil {
				return err
			}
			h.Write(piece)
			allZero = allZero && extent.IsZero(piece)
		}
		pos = r[1]
	}
	if allZero {
		g.hash = repo.ZeroHash
		return nil
	}
	writeZeros(h, (g.n+1)*repo.ChunkSize-pos)
	h.Sum(g.hash[:0])
	return nil
}

// groupBlocks gathers consecutive blocks of one chunk, read from a pipe,
// into groups.
func groupBlocks(blocks <-chan block) func(context.Context, func(chunkGroup) error) error {
	return func(ctx context.Context, send func(chunkGroup) error) error {
		g := chunkGroup{n: -1}
		for {
			var b block
			var ok bool
			select {
			case b, ok = <-blocks:
			case <-ctx.Done():
				return context.Cause(ctx) // the reader may be stuck in a read of the pipe
			}
			if !ok {
				break
			}
			if b.err != nil {
				return b.err
			}
			if n := b.off / repo.ChunkSize; g.n != n {
				if g.n >= 0 {
					if err := send(g); err != nil {
						return err
					}
				}
				g = chunkGroup{n: n}
			}
			g.blocks = append(g.blocks, b)
		}
		if g.n < 0 {
			return nil
		}
		return send(g)
	}
}

// groupHash is the repository's name for the chunk the group's blocks make
// up, with zeros everywhere else (holes, and past the image end): the
// same hash backy-store would give it.
func groupHash(g *chunkGroup) repo.Hash {
	allZero := true
	for _, b := range g.blocks {
		if !extent.IsZero(b.buf) {
			allZero = false
			break
		}
	}
	if allZero {
		return repo.ZeroHash
	}
	start := g.n * repo.ChunkSize
	if len(g.blocks) == 1 && g.blocks[0].off == start && len(g.blocks[0].buf) == repo.ChunkSize {
		return repo.HashChunk(g.blocks[0].buf)
	}
	h := blake3.New()
	pos := start
	for _, b := range g.blocks {
		writeZeros(h, b.off-pos)
		h.Write(b.buf)
		pos = b.off + int64(len(b.buf))
	}
	writeZeros(h, start+repo.ChunkSize-pos)
	var sum repo.Hash
	h.Sum(sum[:0])
	return sum
}

func writeZeros(h *blake3.Hasher, n int64) {
	for n > 0 {
		k := min(n, extent.MaxDataLength)
		h.Write(extent.Zeros(int(k)))
		n -= k
	}
}

// diffEmitter writes the records of changed chunks, in order.
type diffEmitter struct {
	w      *extent.Writer
	size   int64
	hashes []repo.Hash
	z      extent.ZeroRun
	next   int64 // first chunk not yet dealt with
}

// gap deals with the chunks before chunk end that no block touched: they
// are holes, so they are sent as zeros where the base has data.
func (e *diffEmitter) gap(end int64) error {
	for ; e.next < end; e.next++ {
		if !e.hashes[e.next].IsZero() {
			if err := e.z.Add(e.span(e.next)); err != nil {
				return err
			}
		}
	}
	return nil
}

// span is the byte range of chunk n inside the image.
func (e *diffEmitter) span(n int64) (int64, int64) {
	start := n * repo.ChunkSize
	return start, min(start+repo.ChunkSize, e.size)
}

// group sends chunk g.n whole when its content differs from the base.
func (e *diffEmitter) group(g *chunkGroup) error {
	if g.n >= int64(len(e.hashes)) {
		return fmt.Errorf("source: data at offset %d, beyond the %d chunks of the base", g.blocks[0].off, len(e.hashes))
	}
	if err := e.gap(g.n); err != nil {
		return err
	}
	e.next = g.n + 1
	if g.hash == e.hashes[g.n] {
		return nil
	}
	start, end := e.span(g.n)
	pos := start
	for _, b := range g.blocks {
		if b.off > pos {
			if err := e.z.Add(pos, b.off); err != nil {
				return err
			}
		}
		pos = b.off + int64(len(b.buf))
		if err := writeBlock(e.w, &e.z, b); err != nil {
			return err
		}
	}
	if end > pos {
		return e.z.Add(pos, end)
	}
	return nil
}
