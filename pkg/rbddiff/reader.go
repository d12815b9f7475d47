package rbddiff

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// bufSize is the Reader's only buffer; the data of write records passes
// through it or straight into the caller's slice.
const bufSize = 64 << 10

// Reader reads an rbd diff stream. Header returns the metadata, Next steps
// from data record to data record, and Read reads the data of the current
// write record. Errors are sticky: once a call failed, every later call
// returns the same error. After the end record, and only if nothing follows
// it, Next returns io.EOF.
type Reader struct {
	br  *bufio.Reader
	pos int64 // bytes consumed so far, for error messages
	err error
	hdr *Header

	pending    byte // a tag read by Header that Next must handle
	hasPending bool
	pendingPos int64

	remain  uint64 // unread data bytes of the current write record
	prevEnd uint64
	rec     Record
	scratch [16]byte
}

// NewReader returns a Reader reading from r. It reads ahead of what it
// returns by up to 64 KiB.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufSize)}
}

// Header reads the banner and the metadata records, if not done yet, and
// returns them.
func (r *Reader) Header() (*Header, error) {
	if r.hdr == nil && r.err == nil {
		r.err = r.readHeader()
	}
	if r.hdr == nil {
		return nil, r.err
	}
	h := *r.hdr
	return &h, nil
}

// Next advances to the next data record, skipping the unread data of the
// current one, and returns it. It returns io.EOF after the end record when
// the input ends there.
func (r *Reader) Next() (*Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	if _, err := r.Header(); err != nil {
		return nil, err
	}
	if r.err = r.skipData(); r.err != nil {
		return nil, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
		return nil, err
	}
	r.rec = *rec
	return rec, nil
}

// Read reads data of the current write record. It returns io.EOF at the
// end of the record's data (and when the current record is a zero record).
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.remain == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p = p[:min(uint64(len(p)), r.remain)]
	n, err := r.br.Read(p)
	r.pos += int64(n)
	r.remain -= uint64(n)
	if err != nil {
		r.err = r.ioError(err, "data of write record at offset %d", r.rec.Offset)
		return n, r.err
	}
	return n, nil
}

func (r *Reader) skipData() error {
	for r.remain > 0 {
		d, err := r.br.Discard(int(min(r.remain, bufSize)))
		r.pos += int64(d)
		r.remain -= uint64(d)
		if err != nil {
			return r.ioError(err, "data of write record at offset %d", r.rec.Offset)
		}
	}
	return nil
}

// ioError describes a failed read: an early end of input is a truncation.
func (r *Reader) ioError(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("rbddiff: stream truncated at byte %d, in %s: %w", r.pos, what, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("rbddiff: reading at byte %d, in %s: %w", r.pos, what, err)
}

func (r *Reader) readFull(b []byte, what string) error {
	n, err := io.ReadFull(r.br, b)
	r.pos += int64(n)
	if err != nil {
		return r.ioError(err, "%s", what)
	}
	return nil
}

func (r *Reader) readU64(what string) (uint64, error) {
	b := r.scratch[:8]
	if err := r.readFull(b, what); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (r *Reader) readTag() (tag byte, pos int64, err error) {
	pos = r.pos
	tag, err = r.br.ReadByte()
	if err != nil {
		if err == io.EOF {
			return 0, pos, fmt.Errorf("rbddiff: stream truncated at byte %d, no end record: %w", pos, io.ErrUnexpectedEOF)
		}
		return 0, pos, r.ioError(err, "record tag")
	}
	r.pos++
	return tag, pos, nil
}

func checkRecLen(version int, tag byte, pos int64, got, want uint64) error {
	if version == 2 && got != want {
		return errorf(ErrBadRecord, "%q record at byte %d has length %d, want %d", tag, pos, got, want)
	}
	return nil
}

func (r *Reader) readMagic() (int, error) {
	var b [len(MagicV1)]byte
	n, err := io.ReadFull(r.br, b[:])
	r.pos += int64(n)
	got := string(b[:n])
	switch {
	case got == MagicV1:
		return 1, nil
	case got == MagicV2:
		return 2, nil
	case err != nil && err != io.EOF && err != io.ErrUnexpectedEOF:
		return 0, r.ioError(err, "banner")
	case err != nil && (strings.HasPrefix(MagicV1, got) || strings.HasPrefix(MagicV2, got)):
		return 0, r.ioError(err, "banner")
	}
	return 0, errorf(ErrBadMagic, "stream starts with %q, want %q or %q", got, MagicV1, MagicV2)
}

func (r *Reader) readHeader() error {
	version, err := r.readMagic()
	if err != nil {
		return err
	}
	h := &Header{Version: version}
	var haveFrom, haveTo, haveSize bool
	for {
		tag, pos, err := r.readTag()
		if err != nil {
			return err
		}
		switch tag {
		case byte(TypeWrite), byte(TypeZero), tagEnd:
			if !haveSize {
				return errorf(ErrBadRecord, "%q record at byte %d before any size record", tag, pos)
			}
			r.pending, r.hasPending, r.pendingPos = tag, true, pos
			r.hdr = h
			return nil
		case tagFrom, tagTo:
			have, name := &haveFrom, &h.FromSnap
			if tag == tagTo {
				have, name = &haveTo, &h.ToSnap
			}
			if *have {
				return errorf(ErrBadRecord, "second %q record at byte %d", tag, pos)
			}
			*have = true
			if *name, err = r.readName(version, tag, pos); err != nil {
				return err
			}
		case tagProtect:
			if version == 1 {
				return errorf(ErrBadTag, "%q record at byte %d in a version 1 stream", tag, pos)
			}
			if h.Protected != nil {
				return errorf(ErrBadRecord, "second %q record at byte %d", tag, pos)
			}
			if h.Protected, err = r.readProtected(tag, pos); err != nil {
				return err
			}
		case tagSize:
			if haveSize {
				return errorf(ErrBadRecord, "second %q record at byte %d", tag, pos)
			}
			haveSize = true
			if h.Size, err = r.readSize(version, tag, pos); err != nil {
				return err
			}
		default:
			return errorf(ErrBadTag, "unknown tag %q at byte %d", tag, pos)
		}
	}
}

func (r *Reader) readName(version int, tag byte, pos int64) (string, error) {
	var recLen uint64
	var err error
	if version == 2 {
		if recLen, err = r.readU64(fmt.Sprintf("length of %q record at byte %d", tag, pos)); err != nil {
			return "", err
		}
	}
	b := r.scratch[:4]
	if err := r.readFull(b, fmt.Sprintf("%q record at byte %d", tag, pos)); err != nil {
		return "", err
	}
	n := binary.LittleEndian.Uint32(b)
	if n > MaxSnapName {
		return "", errorf(ErrTooLong, "snapshot name of %d bytes in %q record at byte %d, limit %d", n, tag, pos, MaxSnapName)
	}
	if n == 0 {
		return "", errorf(ErrBadRecord, "empty snapshot name in %q record at byte %d", tag, pos)
	}
	if err := checkRecLen(version, tag, pos, recLen, 4+uint64(n)); err != nil {
		return "", err
	}
	name := make([]byte, n)
	if err := r.readFull(name, fmt.Sprintf("%q record at byte %d", tag, pos)); err != nil {
		return "", err
	}
	return string(name), nil
}

func (r *Reader) readProtected(tag byte, pos int64) (*bool, error) {
	what := fmt.Sprintf("%q record at byte %d", tag, pos)
	recLen, err := r.readU64(what)
	if err != nil {
		return nil, err
	}
	if err := checkRecLen(2, tag, pos, recLen, 1); err != nil {
		return nil, err
	}
	b := r.scratch[:1]
	if err := r.readFull(b, what); err != nil {
		return nil, err
	}
	if b[0] > 1 {
		return nil, errorf(ErrBadRecord, "%q record at byte %d holds %d, want 0 or 1", tag, pos, b[0])
	}
	p := b[0] == 1
	return &p, nil
}

func (r *Reader) readSize(version int, tag byte, pos int64) (uint64, error) {
	what := fmt.Sprintf("%q record at byte %d", tag, pos)
	if version == 2 {
		recLen, err := r.readU64(what)
		if err != nil {
			return 0, err
		}
		if err := checkRecLen(version, tag, pos, recLen, 8); err != nil {
			return 0, err
		}
	}
	return r.readU64(what)
}

// next reads the record after the current one.
func (r *Reader) next() (*Record, error) {
	tag, pos := r.pending, r.pendingPos
	if r.hasPending {
		r.hasPending = false
	} else {
		var err error
		if tag, pos, err = r.readTag(); err != nil {
			return nil, err
		}
	}
	switch tag {
	case tagEnd:
		return nil, r.checkEnd()
	case byte(TypeWrite), byte(TypeZero):
		return r.readExtent(Type(tag), pos)
	case tagFrom, tagTo, tagSize, tagProtect:
		return nil, errorf(ErrBadRecord, "metadata record %q at byte %d after data records", tag, pos)
	}
	return nil, errorf(ErrBadTag, "unknown tag %q at byte %d", tag, pos)
}

// checkEnd makes sure nothing follows the end record.
func (r *Reader) checkEnd() error {
	_, err := r.br.ReadByte()
	switch err {
	case nil:
		return errorf(ErrTrailing, "byte %d follows the end record", r.pos)
	case io.EOF:
		return io.EOF
	}
	return r.ioError(err, "after the end record")
}

func (r *Reader) readExtent(t Type, pos int64) (*Record, error) {
	v := r.hdr.Version
	what := fmt.Sprintf("%q record at byte %d", byte(t), pos)
	var recLen uint64
	if v == 2 {
		var err error
		if recLen, err = r.readU64(what); err != nil {
			return nil, err
		}
	}
	b := r.scratch[:16]
	if err := r.readFull(b, what); err != nil {
		return nil, err
	}
	rec := &Record{
		Type:   t,
		Offset: binary.LittleEndian.Uint64(b[:8]),
		Length: binary.LittleEndian.Uint64(b[8:]),
	}
	if err := checkExtent(t, rec.Offset, rec.Length, r.hdr.Size, r.prevEnd); err != nil {
		return nil, fmt.Errorf("%w (byte %d)", err, pos)
	}
	want := uint64(16)
	if t == TypeWrite {
		want += rec.Length
	}
	if err := checkRecLen(v, byte(t), pos, recLen, want); err != nil {
		return nil, err
	}
	r.prevEnd = rec.End()
	if t == TypeWrite {
		r.remain = rec.Length
	}
	return rec, nil
}
