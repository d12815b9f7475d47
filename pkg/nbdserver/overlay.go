package nbdserver

import (
	"fmt"
	"io"
	"os"
)

// overlayBlock is the granularity of the copy-on-write overlay.
const overlayBlock = 4096

// overlay is a per-connection copy-on-write layer over a read-only image.
// Written blocks live in an unlinked sparse temporary file at their own
// offsets; a sparse bitmap (one uint64 per 64 blocks, only for words that have
// a bit set) records which blocks the overlay holds. Memory and disk grow
// with what the client writes, not with the image size.
type overlay struct {
	base    io.ReaderAt
	size    int64
	f       *os.File
	written map[int64]uint64
	scratch []byte
}

// newOverlay creates the overlay's temporary file in dir (os.TempDir() if
// empty) and unlinks it at once, so it vanishes with the process whatever
// happens.
func newOverlay(dir string, base io.ReaderAt, size int64) (*overlay, error) {
	f, err := os.CreateTemp(dir, "backy-nbd-cow-*")
	if err != nil {
		return nil, fmt.Errorf("nbdserver: cow overlay: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("nbdserver: cow overlay: %w", err)
	}
	return &overlay{
		base:    base,
		size:    size,
		f:       f,
		written: make(map[int64]uint64),
		scratch: make([]byte, overlayBlock),
	}, nil
}

// CheckTempDir creates and removes one overlay file in dir (os.TempDir()
// if empty), so that a server with COW overlays can refuse to start where
// every client would be refused.
func CheckTempDir(dir string) error {
	o, err := newOverlay(dir, nil, 0)
	if err != nil {
		return err
	}
	return o.f.Close()
}

func (o *overlay) has(blk int64) bool {
	return o.written[blk/64]&(1<<(blk%64)) != 0
}

func (o *overlay) mark(blk int64) {
	o.written[blk/64] |= 1 << (blk % 64)
}

// ReadAt fills p from the overlay where the client wrote and from the base
// elsewhere, one run of equally-sourced blocks at a time. The caller keeps
// off and len(p) inside the image.
func (o *overlay) ReadAt(p []byte, off int64) error {
	end := off + int64(len(p))
	for pos := off; pos < end; {
		blk := pos / overlayBlock
		mine := o.has(blk)
		next := (blk + 1) * overlayBlock
		for next < end && o.has(next/overlayBlock) == mine {
			next += overlayBlock
		}
		next = min(next, end)
		src := o.base
		if mine {
			src = o.f
		}
		if err := readFull(src, p[pos-off:next-off], pos); err != nil {
			if mine {
				return fmt.Errorf("nbdserver: cow overlay: %w", err)
			}
			return err
		}
		pos = next
	}
	return nil
}

// WriteAt stores p in the overlay. A block the client writes only part of is
// first copied from the base, so the overlay always holds whole blocks.
func (o *overlay) WriteAt(p []byte, off int64) error {
	end := off + int64(len(p))
	for pos := off; pos < end; {
		blk := pos / overlayBlock
		start := blk * overlayBlock
		blkEnd := min(start+overlayBlock, o.size)
		if pos == start && end >= blkEnd || o.has(blk) {
			// Whole blocks, or a block already in the overlay: write
			// through up to the next block the overlay lacks and that
			// this write covers only in part.
			next := blkEnd
			for next < end {
				n := next / overlayBlock
				nEnd := min(next+overlayBlock, o.size)
				if end < nEnd && !o.has(n) {
					break
				}
				next = nEnd
			}
			next = min(next, end)
			if _, err := o.f.WriteAt(p[pos-off:next-off], pos); err != nil {
				return fmt.Errorf("nbdserver: cow overlay: %w", err)
			}
			for b := blk; b*overlayBlock < next; b++ {
				o.mark(b)
			}
			pos = next
			continue
		}
		// Part of a block the overlay lacks: read, modify, write.
		buf := o.scratch[:blkEnd-start]
		if err := readFull(o.base, buf, start); err != nil {
			return err
		}
		n := copy(buf[pos-start:], p[pos-off:])
		if _, err := o.f.WriteAt(buf, start); err != nil {
			return fmt.Errorf("nbdserver: cow overlay: %w", err)
		}
		o.mark(blk)
		pos += int64(n)
	}
	return nil
}

// Close discards the overlay.
func (o *overlay) Close() error {
	return o.f.Close()
}
