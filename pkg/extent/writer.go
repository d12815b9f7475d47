package extent

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// Writer encodes an extent stream. It enforces the same rules a Reader
// checks, so a program cannot write a stream backy would refuse. Close
// writes the END record; a producer that fails must not call Close, so that
// consumers see a truncated stream.
type Writer struct {
	w     io.Writer
	hdr   Header
	err   error // sticky
	next  int64
	chain uint32
	sum   Summary
	rhdr  [recordHeaderLen]byte
}

// NewWriter validates h and writes the stream header.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	b := h.marshal()
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	return &Writer{w: w, hdr: h, chain: chainAdd(0, binary.BigEndian.Uint32(b[len(b)-4:]))}, nil
}

// Header returns the header the stream was started with.
func (w *Writer) Header() Header { return w.hdr }

// Summary returns the counts of the records written so far.
func (w *Writer) Summary() Summary { return w.sum }

// WriteData writes p as data at offset off, split into records of at most
// MaxDataLength bytes. An empty p is refused like an empty zero record.
func (w *Writer) WriteData(off int64, p []byte) error {
	if len(p) == 0 && w.err == nil {
		w.err = w.writeRecord(Data, off, 0, nil)
	}
	for len(p) > 0 && w.err == nil {
		n := min(len(p), MaxDataLength)
		w.err = w.writeRecord(Data, off, int64(n), p[:n])
		off += int64(n)
		p = p[n:]
	}
	return w.err
}

// WriteZero writes a zero record for length bytes at offset off.
func (w *Writer) WriteZero(off, length int64) error {
	if w.err == nil {
		w.err = w.writeRecord(Zero, off, length, nil)
	}
	return w.err
}

func (w *Writer) writeRecord(t RecordType, off, length int64, p []byte) error {
	return w.writeRecordSum(t, off, length, p, 0, false)
}

// writeRecordSum writes a record; with summed, crc is the record checksum
// already computed by the caller (see DataSum).
func (w *Writer) writeRecordSum(t RecordType, off, length int64, p []byte, crc uint32, summed bool) error {
	switch {
	case length <= 0:
		return fmt.Errorf("%w: empty %s record at offset %d", ErrBadRecord, t, off)
	case off < 0:
		return fmt.Errorf("%w: %s record at negative offset %d", ErrBeyondImage, t, off)
	case off < w.next:
		return fmt.Errorf("%w: %s record at offset %d before end of previous record %d", ErrOrder, t, off, w.next)
	case off > w.hdr.Size || length > w.hdr.Size-off:
		return fmt.Errorf("%w: %s record %d+%d, image size %d", ErrBeyondImage, t, off, length, w.hdr.Size)
	}
	h := w.rhdr[:]
	putRecordHeader(h, t, off, length)
	if !summed {
		crc = crc32.Update(0, castagnoli, h[:20])
		crc = crc32.Update(crc, castagnoli, p)
	}
	binary.BigEndian.PutUint32(h[20:], crc)
	if _, err := w.w.Write(h); err != nil {
		return err
	}
	if len(p) > 0 {
		if _, err := w.w.Write(p); err != nil {
			return err
		}
	}
	w.chain = chainAdd(w.chain, crc)
	w.sum.Records++
	if t == Data {
		w.sum.DataBytes += length
	} else {
		w.sum.ZeroBytes += length
	}
	w.next = off + length
	return nil
}

// Close writes the END record. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	_, err := w.w.Write(marshalEnd(w.sum, w.chain))
	if err != nil {
		w.err = err
		return err
	}
	w.err = ErrWriterClosed
	return nil
}
