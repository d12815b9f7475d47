package rbddiff

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// Writer writes an rbd diff stream: WriteHeader once, then WriteRecord for
// each data record (followed, for a write record, by exactly Length bytes
// through Write), then Close, which writes the end record. A stream that was
// not closed lacks its end record and is refused by readers, rbd included.
//
// Requests that break the rules of docs/rbd-diff.md (out of order, outside
// the image, too long) are refused without writing anything, and the Writer
// stays usable. Write errors of the underlying writer, and misuse that
// leaves the stream broken, are sticky.
type Writer struct {
	bw      *bufio.Writer
	err     error
	hdr     *Header
	prevEnd uint64
	remain  uint64 // data bytes the current write record still needs
	buf     [64]byte
}

// NewWriter returns a Writer writing to w through a 64 KiB buffer.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, bufSize)}
}

// WriteHeader writes the banner and the metadata records: f (if FromSnap is
// set), t (if ToSnap is set), p (if Protected is set; version 2 only) and s.
func (w *Writer) WriteHeader(h *Header) error {
	if w.err != nil {
		return w.err
	}
	if w.hdr != nil {
		return errorf(ErrBadRecord, "header written twice")
	}
	if h.Version != 1 && h.Version != 2 {
		return errorf(ErrBadRecord, "unknown version %d", h.Version)
	}
	if h.Protected != nil && h.Version == 1 {
		return errorf(ErrBadTag, "protection record in a version 1 stream")
	}
	for _, s := range []struct{ what, name string }{{"from", h.FromSnap}, {"to", h.ToSnap}} {
		if s.name != "" {
			if err := checkSnapName(s.what, s.name); err != nil {
				return err
			}
		}
	}
	hc := *h
	w.hdr = &hc
	b := append(w.buf[:0], MagicV1...)
	if h.Version == 2 {
		b = append(b[:0], MagicV2...)
	}
	if err := w.write(b); err != nil {
		return err
	}
	if h.FromSnap != "" {
		w.writeName(tagFrom, h.FromSnap)
	}
	if h.ToSnap != "" {
		w.writeName(tagTo, h.ToSnap)
	}
	if h.Protected != nil {
		b = w.tag(tagProtect, 1)
		v := byte(0)
		if *h.Protected {
			v = 1
		}
		w.write(append(b, v))
	}
	b = w.tag(tagSize, 8)
	return w.write(binary.LittleEndian.AppendUint64(b, h.Size))
}

// WriteRecord starts a data record. For a TypeWrite record, the caller then
// writes exactly rec.Length bytes with Write.
func (w *Writer) WriteRecord(rec *Record) error {
	if w.err != nil {
		return w.err
	}
	if w.hdr == nil {
		return errorf(ErrBadRecord, "data record before header")
	}
	if w.remain > 0 {
		w.err = errorf(ErrMissingData, "%d bytes of the write record at offset %d not written", w.remain, w.prevEnd-w.remain)
		return w.err
	}
	if rec.Type != TypeWrite && rec.Type != TypeZero {
		return errorf(ErrBadTag, "unknown record type %q", byte(rec.Type))
	}
	if err := checkExtent(rec.Type, rec.Offset, rec.Length, w.hdr.Size, w.prevEnd); err != nil {
		return err
	}
	recLen := uint64(16)
	if rec.Type == TypeWrite {
		recLen += rec.Length
		w.remain = rec.Length
	}
	w.prevEnd = rec.End()
	b := w.tag(byte(rec.Type), recLen)
	b = binary.LittleEndian.AppendUint64(b, rec.Offset)
	b = binary.LittleEndian.AppendUint64(b, rec.Length)
	return w.write(b)
}

// Write writes data of the current write record. Writing more than the
// record's remaining length writes what fits and returns ErrWriteTooLong.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	var tooLong error
	if uint64(len(p)) > w.remain {
		tooLong = errorf(ErrWriteTooLong, "%d bytes given, %d left in the record", len(p), w.remain)
		p = p[:w.remain]
	}
	n, err := w.bw.Write(p)
	w.remain -= uint64(n)
	if err != nil {
		w.err = fmt.Errorf("rbddiff: %w", err)
		return n, w.err
	}
	return n, tooLong
}

// WriteData writes a write record with its data.
func (w *Writer) WriteData(off uint64, data []byte) error {
	if err := w.WriteRecord(&Record{Type: TypeWrite, Offset: off, Length: uint64(len(data))}); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// WriteZero writes a zero record.
func (w *Writer) WriteZero(off, length uint64) error {
	return w.WriteRecord(&Record{Type: TypeZero, Offset: off, Length: length})
}

// Close writes the end record and flushes. It does not close the underlying
// writer. Closing again returns nil.
func (w *Writer) Close() error {
	if w.err == ErrClosed {
		return nil
	}
	if w.err != nil {
		return w.err
	}
	if w.hdr == nil {
		w.err = errorf(ErrBadRecord, "closed before the header was written")
		return w.err
	}
	if w.remain > 0 {
		w.err = errorf(ErrMissingData, "%d bytes of the write record at offset %d not written", w.remain, w.prevEnd-w.remain)
		return w.err
	}
	if err := w.write([]byte{tagEnd}); err != nil {
		return err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("rbddiff: %w", err)
		return w.err
	}
	w.err = ErrClosed
	return nil
}

// tag starts a record in w.buf: the tag and, in version 2, its length.
func (w *Writer) tag(tag byte, recLen uint64) []byte {
	b := append(w.buf[:0], tag)
	if w.hdr.Version == 2 {
		b = binary.LittleEndian.AppendUint64(b, recLen)
	}
	return b
}

func (w *Writer) writeName(tag byte, name string) error {
	b := w.tag(tag, 4+uint64(len(name)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(name)))
	if err := w.write(b); err != nil {
		return err
	}
	return w.write([]byte(name))
}

func (w *Writer) write(b []byte) error {
	if w.err != nil {
		return w.err
	}
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("rbddiff: %w", err)
	}
	return w.err
}
