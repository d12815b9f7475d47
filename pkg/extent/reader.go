package extent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strings"
	"time"
)

// crcPiece is how much payload the Reader reads before checksumming it; it
// fits the L2 cache of current CPUs with room to spare.
const crcPiece = 64 << 10

// Reader decodes an extent stream. Data record payloads are verified before
// Next returns them.
type Reader struct {
	r       io.Reader
	hdr     Header
	err     error // sticky
	next    int64 // smallest offset the next record may start at
	chain   uint32
	sum     Summary
	buf     []byte // payload buffer, grown up to MaxDataLength
	rec     Record
	rhdr    [endRecordLen]byte
	hdrSize int64
	read    int64 // bytes consumed so far, for error messages
}

// NewReader reads and verifies the stream header.
func NewReader(r io.Reader) (*Reader, error) {
	sr := &Reader{r: r}
	if err := sr.readHeader(); err != nil {
		return nil, err
	}
	return sr, nil
}

// Header returns the stream header.
func (r *Reader) Header() Header { return r.hdr }

// Summary returns the counts of the records read so far; after Next has
// returned io.EOF they are the verified counts of the END record.
func (r *Reader) Summary() Summary { return r.sum }

// BytesRead returns how many stream bytes have been consumed.
func (r *Reader) BytesRead() int64 { return r.read }

func (r *Reader) readFull(p []byte) error {
	n, err := io.ReadFull(r.r, p)
	r.read += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return ErrTruncated
	}
	return err
}

func (r *Reader) readHeader() error {
	fixed := make([]byte, 22)
	if err := r.readFull(fixed); err != nil {
		// Input too short for a header that does not even start like one
		// (a stray text, an error message) is not a stream at all; calling
		// it truncated would send the operator looking for a dead producer.
		if n := min(r.read, int64(len(Magic))); err == ErrTruncated && n > 0 &&
			!strings.HasPrefix(Magic, string(fixed[:n])) {
			return ErrBadMagic
		}
		return err
	}
	if string(fixed[:8]) != Magic {
		return ErrBadMagic
	}
	if v := binary.BigEndian.Uint16(fixed[8:]); v != Version {
		return fmt.Errorf("%w %d", ErrVersion, v)
	}
	if fixed[11]&^flagConsistency != 0 {
		return fmt.Errorf("%w: unknown flags %#x", ErrBadHeader, fixed[11])
	}
	size := binary.BigEndian.Uint64(fixed[12:])
	if size > MaxImageSize {
		return fmt.Errorf("%w: image size %d out of range", ErrBadHeader, size)
	}
	crc := crc32.Update(0, castagnoli, fixed[:20])
	names, crc, err := r.readNames(fixed[20:22], crc)
	if err != nil {
		return err
	}
	r.hdr = Header{Kind: Kind(fixed[10]), Size: int64(size),
		Source: names[0], Snapshot: names[1], Base: names[2]}
	if fixed[11]&flagConsistency != 0 {
		if crc, err = r.readConsistency(crc); err != nil {
			return err
		}
	}
	var sum [4]byte
	if err := r.readFull(sum[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(sum[:]) != crc {
		return fmt.Errorf("%w: header", ErrChecksum)
	}
	if err := r.hdr.validate(); err != nil {
		return err
	}
	r.chain = chainAdd(0, crc)
	r.hdrSize = r.read
	return nil
}

// readConsistency reads the consistency block into r.hdr.
func (r *Reader) readConsistency(crc uint32) (uint32, error) {
	var fixed [11]byte
	if err := r.readFull(fixed[:]); err != nil {
		return 0, err
	}
	crc = crc32.Update(crc, castagnoli, fixed[:])
	code := int(fixed[0])
	if code == 0 || code >= len(consistencyCodes) {
		return 0, fmt.Errorf("%w: unknown consistency %d", ErrBadHeader, code)
	}
	frozen := binary.BigEndian.Uint64(fixed[1:])
	if frozen > math.MaxInt64 {
		return 0, fmt.Errorf("%w: freeze time out of range", ErrBadHeader)
	}
	n := binary.BigEndian.Uint16(fixed[9:])
	if n > MaxNameLength {
		return 0, fmt.Errorf("%w: reason longer than %d bytes", ErrBadHeader, MaxNameLength)
	}
	reason := make([]byte, n)
	if err := r.readFull(reason); err != nil {
		return 0, err
	}
	r.hdr.Consistency = consistencyCodes[code]
	r.hdr.Frozen = time.Duration(frozen)
	r.hdr.Reason = string(reason)
	return crc32.Update(crc, castagnoli, reason), nil
}

// readNames reads the three length-prefixed names; firstLen holds the
// already-read length of the first one.
func (r *Reader) readNames(firstLen []byte, crc uint32) ([3]string, uint32, error) {
	var names [3]string
	lenBuf := append([]byte(nil), firstLen...)
	for i := range names {
		if i > 0 {
			if err := r.readFull(lenBuf); err != nil {
				return names, 0, err
			}
		}
		crc = crc32.Update(crc, castagnoli, lenBuf)
		n := binary.BigEndian.Uint16(lenBuf)
		if n > MaxNameLength {
			return names, 0, fmt.Errorf("%w: name longer than %d bytes", ErrBadHeader, MaxNameLength)
		}
		b := make([]byte, n)
		if err := r.readFull(b); err != nil {
			return names, 0, err
		}
		crc = crc32.Update(crc, castagnoli, b)
		names[i] = string(b)
	}
	return names, crc, nil
}

// Next returns the next data or zero record. It returns io.EOF after a
// verified END record that is followed by nothing.
func (r *Reader) Next() (*Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	rec, err := r.next1()
	if err != nil {
		r.err = err
		return nil, err
	}
	return rec, nil
}

func (r *Reader) next1() (*Record, error) {
	h := r.rhdr[:recordHeaderLen]
	if err := r.readFull(h); err != nil {
		return nil, err
	}
	t := RecordType(h[0])
	if t == End {
		return nil, r.readEnd()
	}
	if t != Data && t != Zero {
		return nil, fmt.Errorf("%w: unknown type %#x at stream byte %d", ErrBadRecord, h[0], r.read-recordHeaderLen)
	}
	if h[1]|h[2]|h[3] != 0 {
		return nil, fmt.Errorf("%w: reserved bytes set", ErrBadRecord)
	}
	off := binary.BigEndian.Uint64(h[4:])
	length := binary.BigEndian.Uint64(h[12:])
	if err := r.checkRange(t, off, length); err != nil {
		return nil, err
	}
	crc := crc32.Update(0, castagnoli, h[:20])
	r.rec = Record{Type: t, Offset: int64(off), Length: int64(length)}
	if t == Data {
		if cap(r.buf) < int(length) {
			r.buf = make([]byte, length, max(length, 1<<20))
		}
		r.rec.Data = r.buf[:length]
		// Checksum each piece while it is still in the CPU cache rather
		// than the whole payload after it has been copied out of it.
		for p := r.rec.Data; len(p) > 0; {
			n := min(len(p), crcPiece)
			if err := r.readFull(p[:n]); err != nil {
				return nil, err
			}
			crc = crc32.Update(crc, castagnoli, p[:n])
			p = p[n:]
		}
		r.sum.DataBytes += int64(length)
	} else {
		r.sum.ZeroBytes += int64(length)
	}
	if got := binary.BigEndian.Uint32(h[20:]); got != crc {
		return nil, fmt.Errorf("%w: %s record at offset %d", ErrChecksum, t, off)
	}
	r.chain = chainAdd(r.chain, crc)
	r.sum.Records++
	r.next = int64(off + length)
	return &r.rec, nil
}

// checkRange enforces length limits, ordering and the image bounds before
// anything is allocated.
func (r *Reader) checkRange(t RecordType, off, length uint64) error {
	switch {
	case length == 0:
		return fmt.Errorf("%w: empty %s record at offset %d", ErrBadRecord, t, off)
	case t == Data && length > MaxDataLength:
		return fmt.Errorf("%w: data record of %d bytes at offset %d", ErrTooLong, length, off)
	case off < uint64(r.next):
		return fmt.Errorf("%w: %s record at offset %d before end of previous record %d", ErrOrder, t, off, r.next)
	case off > uint64(r.hdr.Size) || length > uint64(r.hdr.Size)-off:
		return fmt.Errorf("%w: %s record %d+%d, image size %d", ErrBeyondImage, t, off, length, r.hdr.Size)
	}
	return nil
}

func (r *Reader) readEnd() error {
	b := r.rhdr[:]
	if err := r.readFull(b[recordHeaderLen:]); err != nil {
		return err
	}
	if got := binary.BigEndian.Uint32(b[36:]); got != checksum(b[:36]) {
		return fmt.Errorf("%w: end record", ErrChecksum)
	}
	want := marshalEnd(r.sum, r.chain)
	if string(want) != string(b) {
		return fmt.Errorf("%w: counts or chain checksum do not match the records read", ErrBadEnd)
	}
	var one [1]byte
	for {
		n, err := r.r.Read(one[:])
		if n > 0 {
			return ErrTrailingData
		}
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		if err != nil {
			return err
		}
	}
}
