package source

import (
	"context"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, repo.ChunkSize); return &b }}

func getBuf(n int) []byte { return (*bufPool.Get().(*[]byte))[:n] }

func putBuf(b []byte) {
	b = b[:cap(b)]
	bufPool.Put(&b)
}

// send delivers one block unless the consumer has gone away.
func send(ctx context.Context, out chan<- block, b block) bool {
	select {
	case out <- b:
		return true
	case <-ctx.Done():
		return false
	}
}

// readAll reads every data region in blocks aligned to repo.ChunkSize and closes
// out when done; holes are never read.
func (img *image) readAll(ctx context.Context, out chan<- block) {
	defer close(out)
	err := img.dataRegions(func(from, to int64) error {
		for off := from; off < to; {
			end := min((off/repo.ChunkSize+1)*repo.ChunkSize, to)
			if !img.readBlock(ctx, out, off, end) {
				return context.Canceled
			}
			off = end
		}
		return nil
	})
	if err != nil && err != context.Canceled {
		send(ctx, out, block{err: err})
	}
}

// readPiece is how much readBlock reads before checksumming it: small
// enough that the bytes are still in the CPU cache (see extent.DataSum).
const readPiece = 256 << 10

// readBlock reads [off, end) and its record checksum and sends them; it
// reports whether to go on.
func (img *image) readBlock(ctx context.Context, out chan<- block, off, end int64) bool {
	buf := getBuf(int(end - off))
	sum := extent.NewDataSum(off, end-off)
	for p := 0; p < len(buf); p += readPiece {
		piece := buf[p:min(p+readPiece, len(buf))]
		if err := img.readFull(piece, off+int64(p)); err != nil {
			send(ctx, out, block{err: err})
			return false
		}
		sum.Write(piece)
	}
	return send(ctx, out, block{off: off, buf: buf, sum: sum, summed: true})
}

// readSample reads a random selection of whole blocks, in ascending order.
func (img *image) readSample(ctx context.Context, out chan<- block, opt Options) {
	defer close(out)
	for _, n := range SampleBlocks(img.size, opt.Sample, opt.Seed) {
		off := n * repo.ChunkSize
		end := min(off+repo.ChunkSize, img.size)
		if !img.seekable {
			if !img.skip(ctx, out, off) {
				return
			}
		}
		if img.regular && img.isHole(off, end) {
			// A hole reads as zeros: said without reading it (1% of a
			// sparse 1 TiB file read 10 GiB of holes, 23-84 s).
			buf := getBuf(int(end - off))
			clear(buf)
			if !send(ctx, out, block{off: off, buf: buf}) {
				return
			}
			continue
		}
		if !img.readBlock(ctx, out, off, end) {
			return
		}
		img.pos = end
	}
	if !img.seekable {
		img.skip(ctx, out, img.size)
	}
}

// SampleBlocks picks ceil(percent% of the 4 MiB blocks of an image of size
// bytes), at least one, as ascending block numbers. The same seed gives the
// same blocks; seed 0 picks a random one. Every source samples with it, so
// a sample means the same blocks whatever produced it.
func SampleBlocks(size int64, percent float64, seed uint64) []int64 {
	nblocks := (size + repo.ChunkSize - 1) / repo.ChunkSize
	if percent >= 100 {
		all := make([]int64, nblocks)
		for i := range all {
			all[i] = int64(i)
		}
		return all
	}
	// At least one block, however small the percentage: a sample of
	// nothing would compare nothing and pass.
	k := min(max(int64(math.Ceil(float64(nblocks)*percent/100)), 1), nblocks)
	if seed == 0 {
		seed = rand.Uint64()
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	chosen := make(map[int64]bool, k)
	for int64(len(chosen)) < k {
		chosen[r.Int64N(nblocks)] = true
	}
	return slices.Sorted(maps.Keys(chosen))
}

// skip reads and discards a pipe's bytes up to off.
func (img *image) skip(ctx context.Context, out chan<- block, off int64) bool {
	for img.pos < off {
		buf := getBuf(int(min(repo.ChunkSize, off-img.pos)))
		err := img.readFull(buf, img.pos)
		putBuf(buf)
		if err != nil {
			send(ctx, out, block{err: err})
			return false
		}
		img.pos += int64(len(buf))
	}
	return true
}
