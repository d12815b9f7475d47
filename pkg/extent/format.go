package extent

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"
)

// Magic starts every stream. Its first byte is not ASCII and it carries
// CR LF, ^Z and LF so that text-mode mangling is caught at once.
const Magic = "\x89BXS\r\n\x1a\n"

// Version is the only stream version this package reads and writes.
const Version = 1

// Limits of the format (docs/extent-stream.md, "Limits").
const (
	MaxDataLength = 4 << 20 // longest data record payload
	MaxImageSize  = 1 << 60 // largest image a stream may describe
	MaxNameLength = 1024    // longest source, snapshot or base name
)

const (
	recordHeaderLen = 24
	endRecordLen    = 40
)

// Kind says how records relate to the image.
type Kind uint8

// Stream kinds.
const (
	Full         Kind = 1 // ranges not named are zero
	Differential Kind = 2 // ranges not named are unchanged from the base
	Sample       Kind = 3 // records are source ranges to compare, nothing else
)

func (k Kind) String() string {
	switch k {
	case Full:
		return "full"
	case Differential:
		return "differential"
	case Sample:
		return "sample"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// RecordType is the first byte of a record.
type RecordType byte

// Record types.
const (
	Data RecordType = 'D'
	Zero RecordType = 'Z'
	End  RecordType = 'E'
)

func (t RecordType) String() string {
	switch t {
	case Data:
		return "data"
	case Zero:
		return "zero"
	case End:
		return "end"
	}
	return fmt.Sprintf("type(%#x)", byte(t))
}

// Header describes the image a stream is about.
// RBDSource begins the Source of a stream read from a Ceph RBD image:
// "rbd:POOL/IMAGE" (or "rbd:POOL/NAMESPACE/IMAGE"). Snapshot names are
// per image, so a differential stream of one RBD image never applies to a
// revision of another, whatever its snapshots are called.
const RBDSource = "rbd:"

type Header struct {
	Kind     Kind
	Size     int64  // image size in bytes
	Source   string // what was read, e.g. "file:/dev/vg/lv"
	Snapshot string // snapshot the data was taken from, may be empty
	Base     string // differential streams: the snapshot they are relative to
	// Consistency of the snapshot ("" when unknown, as in streams without
	// the consistency block): ConsistencyFrozen, ConsistencyAgent or
	// ConsistencyCrash. Reason says why a fallback happened; Frozen is how
	// long the guest was frozen, from the freeze to the thaw.
	Consistency string
	Reason      string
	Frozen      time.Duration
}

// Consistency values of the header, and their codes on the wire.
const (
	ConsistencyCrash  = "crash"
	ConsistencyFrozen = "frozen"
	ConsistencyAgent  = "agent"
)

var consistencyCodes = []string{1: ConsistencyCrash, 2: ConsistencyFrozen, 3: ConsistencyAgent}

// flagConsistency says the consistency block follows the base.
const flagConsistency = 0x01

func consistencyCode(s string) byte {
	for i, c := range consistencyCodes {
		if c == s && s != "" {
			return byte(i)
		}
	}
	return 0
}

// Record is one data or zero record. For data records Data holds the
// verified payload; it is only valid until the next call to Reader.Next.
type Record struct {
	Type   RecordType
	Offset int64
	Length int64
	Data   []byte
}

// End returns the offset just past the record.
func (r *Record) End() int64 { return r.Offset + r.Length }

// Summary is what an END record states about a stream.
type Summary struct {
	Records   int64 // data and zero records
	DataBytes int64
	ZeroBytes int64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// validate checks a header against the rules of the format.
func (h *Header) validate() error {
	switch {
	case h.Kind != Full && h.Kind != Differential && h.Kind != Sample:
		return fmt.Errorf("%w: unknown kind %d", ErrBadHeader, h.Kind)
	case h.Size < 0 || h.Size > MaxImageSize:
		return fmt.Errorf("%w: image size %d out of range", ErrBadHeader, h.Size)
	case len(h.Source) > MaxNameLength || len(h.Snapshot) > MaxNameLength || len(h.Base) > MaxNameLength:
		return fmt.Errorf("%w: name longer than %d bytes", ErrBadHeader, MaxNameLength)
	case h.Consistency != "" && consistencyCode(h.Consistency) == 0:
		return fmt.Errorf("%w: unknown consistency %q", ErrBadHeader, h.Consistency)
	case h.Consistency == "" && (h.Reason != "" || h.Frozen != 0):
		return fmt.Errorf("%w: a reason or freeze time without a consistency", ErrBadHeader)
	case len(h.Reason) > MaxNameLength:
		return fmt.Errorf("%w: reason longer than %d bytes", ErrBadHeader, MaxNameLength)
	case h.Frozen < 0:
		return fmt.Errorf("%w: negative freeze time", ErrBadHeader)
	case h.Kind == Differential && h.Base == "":
		return fmt.Errorf("%w: differential stream without base", ErrBadHeader)
	case h.Kind != Differential && h.Base != "":
		return fmt.Errorf("%w: %s stream with a base", ErrBadHeader, h.Kind)
	}
	return nil
}

// marshal encodes a validated header including its checksum.
func (h *Header) marshal() []byte {
	b := make([]byte, 0, 32+len(h.Source)+len(h.Snapshot)+len(h.Base))
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint16(b, Version)
	var flags byte
	if h.Consistency != "" {
		flags |= flagConsistency
	}
	b = append(b, byte(h.Kind), flags)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Size))
	for _, s := range []string{h.Source, h.Snapshot, h.Base} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	if flags&flagConsistency != 0 {
		b = append(b, consistencyCode(h.Consistency))
		b = binary.BigEndian.AppendUint64(b, uint64(h.Frozen))
		b = binary.BigEndian.AppendUint16(b, uint16(len(h.Reason)))
		b = append(b, h.Reason...)
	}
	return binary.BigEndian.AppendUint32(b, checksum(b))
}

// putRecordHeader fills the first 20 bytes of a data or zero record header.
func putRecordHeader(b []byte, t RecordType, off, length int64) {
	b[0], b[1], b[2], b[3] = byte(t), 0, 0, 0
	binary.BigEndian.PutUint64(b[4:], uint64(off))
	binary.BigEndian.PutUint64(b[12:], uint64(length))
}

// marshalEnd encodes an END record.
func marshalEnd(s Summary, chain uint32) []byte {
	b := make([]byte, endRecordLen)
	b[0] = byte(End)
	binary.BigEndian.PutUint64(b[4:], uint64(s.Records))
	binary.BigEndian.PutUint64(b[12:], uint64(s.DataBytes))
	binary.BigEndian.PutUint64(b[20:], uint64(s.ZeroBytes))
	binary.BigEndian.PutUint32(b[28:], chain)
	binary.BigEndian.PutUint32(b[36:], checksum(b[:36]))
	return b
}

// chainAdd folds one record checksum into the chain checksum.
func chainAdd(chain, sum uint32) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], sum)
	return crc32.Update(chain, castagnoli, b[:])
}
