package restore

import (
	"errors"
	"os"
	"unsafe"

	"github.com/backy/backy/pkg/extent"
	"golang.org/x/sys/unix"
)

// holePage is the granularity at which zero bytes inside a chunk are left
// as holes in a restored file: the page and file system block size, so a
// skipped page never shares a block with written bytes.
const holePage = 4096

// targetWriter writes chunks into a restore target: a fresh (all-hole) file
// or a block device. It writes through a second, O_DIRECT descriptor where
// the file system or device allows one: the
// bytes go from the chunk buffer to the disk without being copied into the
// page cache, which on this project's VMs was both the largest CPU cost of
// a restore (copy_folio_from_iter in perf) and the most erratic one, and a
// restored image does not evict everything else from the cache. Pieces
// that O_DIRECT cannot take (an unaligned tail or buffer) go through the
// buffered descriptor; the caller's fsync makes both durable.
type targetWriter struct {
	f      *os.File // buffered
	direct *os.File // O_DIRECT on the same file, or nil
}

func newTargetWriter(f *os.File) *targetWriter {
	w := &targetWriter{f: f}
	if d, err := os.OpenFile(f.Name(), os.O_WRONLY|unix.O_DIRECT, 0); err == nil {
		w.direct = d
	}
	return w
}

// Close closes the O_DIRECT descriptor; the buffered one is the caller's.
func (w *targetWriter) Close() error {
	if w.direct == nil {
		return nil
	}
	return w.direct.Close()
}

// writeChunk writes one chunk's bytes at off into a fresh file, leaving
// pages of zeros as holes.
func (w *targetWriter) writeChunk(data []byte, off int64) error {
	for p := 0; p < len(data); {
		q := p
		for q < len(data) && !extent.IsZero(data[q:min(q+holePage, len(data))]) {
			q += holePage
		}
		q = min(q, len(data))
		if q > p {
			if err := w.writeRun(data[p:q], off+int64(p)); err != nil {
				return err
			}
		}
		for q < len(data) && extent.IsZero(data[q:min(q+holePage, len(data))]) {
			q += holePage
		}
		p = min(q, len(data))
	}
	return nil
}

// directAlign is the alignment O_DIRECT asks of offsets, lengths and
// buffers on nearly every device (the logical sector size). A device that
// wants more answers EINVAL, and that piece goes through the page cache.
const directAlign = 512

// writeRun writes data at off, the aligned part directly when it can.
func (w *targetWriter) writeRun(data []byte, off int64) error {
	aligned := len(data) &^ (directAlign - 1)
	if w.direct != nil && aligned > 0 && off%directAlign == 0 &&
		uintptr(unsafe.Pointer(&data[0]))%directAlign == 0 {
		_, err := w.direct.WriteAt(data[:aligned], off)
		switch {
		case err == nil:
			data, off = data[aligned:], off+int64(aligned)
		case !errors.Is(err, unix.EINVAL):
			return err
		}
	}
	if len(data) == 0 {
		return nil
	}
	return writeAtInPieces(w.f, data, off)
}
