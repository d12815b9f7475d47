// Package rbddiff reads and writes the diff format of Ceph's `rbd export-diff`
// and `rbd import-diff` (versions 1 and 2), as specified in docs/rbd-diff.md.
//
// A Reader streams: the data of a write record is read through the Reader
// itself (it is an io.Reader), in pieces of the caller's size, so memory stays
// bounded whatever the record length. A Writer produces streams that
// `rbd import-diff` applies. Both enforce the rules of docs/rbd-diff.md: records
// in ascending, non-overlapping order, inside the image, of bounded length, and a
// stream is complete only with its end record.
package rbddiff

//go:generate go run ./internal/genvectors -o testdata

import (
	"fmt"

	"github.com/backy/backy/pkg/exitcode"
)

// Banners that open a stream of version 1 and 2.
const (
	MagicV1 = "rbd diff v1\n"
	MagicV2 = "rbd diff v2\n"
)

// Limits enforced by Reader and Writer.
const (
	// MaxWriteLength caps the data of one write record. rbd export-diff
	// writes at most one RADOS object (32 MiB at most) per record.
	MaxWriteLength = 64 << 20
	// MaxSnapName caps a snapshot name, as rbd import-diff does.
	MaxSnapName = 4096
)

// Type is the tag of a data record.
type Type byte

// Data record types.
const (
	TypeWrite Type = 'w' // data follows
	TypeZero  Type = 'z' // the range reads as zeros
)

// Tags of metadata and end records.
const (
	tagFrom    = 'f'
	tagTo      = 't'
	tagProtect = 'p'
	tagSize    = 's'
	tagEnd     = 'e'
)

func (t Type) String() string {
	switch t {
	case TypeWrite:
		return "write"
	case TypeZero:
		return "zero"
	}
	return "unknown"
}

// Header is the metadata part of a stream.
type Header struct {
	Version  int    // 1 or 2
	FromSnap string // snapshot the diff starts from; "" for none
	ToSnap   string // snapshot the diff leads to; "" for the image head
	// Protected, when not nil, is the protection state of ToSnap
	// (a v2-only record).
	Protected *bool
	Size      uint64 // image size at the end of the diff
}

// Record is a data record. The data of a TypeWrite record (Length bytes)
// follows it in the stream.
type Record struct {
	Type   Type
	Offset uint64
	Length uint64
}

// End returns the offset just past the record's range.
func (r *Record) End() uint64 { return r.Offset + r.Length }

// Errors for malformed streams (reader) and invalid requests (writer). A
// truncated stream gives an error wrapping io.ErrUnexpectedEOF.
var (
	ErrBadMagic     = exitcode.New(exitcode.BadInput, "rbddiff: bad magic")
	ErrBadTag       = exitcode.New(exitcode.BadInput, "rbddiff: bad tag")
	ErrBadRecord    = exitcode.New(exitcode.BadInput, "rbddiff: bad record")
	ErrTooLong      = exitcode.New(exitcode.BadInput, "rbddiff: record too long")
	ErrOutOfRange   = exitcode.New(exitcode.BadInput, "rbddiff: extent outside image")
	ErrOrder        = exitcode.New(exitcode.BadInput, "rbddiff: extents out of order")
	ErrTrailing     = exitcode.New(exitcode.BadInput, "rbddiff: data after end record")
	ErrWriteTooLong = exitcode.New(exitcode.Failure, "rbddiff: write too long")
	ErrMissingData  = exitcode.New(exitcode.Failure, "rbddiff: missing record data")
	ErrClosed       = exitcode.New(exitcode.Failure, "rbddiff: writer closed")
)

// checkExtent applies the rules shared by Reader and Writer to a data
// record that follows a previous record ending at prevEnd.
func checkExtent(t Type, off, length, size, prevEnd uint64) error {
	if length == 0 {
		return errorf(ErrBadRecord, "empty %s record at offset %d", t, off)
	}
	if t == TypeWrite && length > MaxWriteLength {
		return errorf(ErrTooLong, "write record of %d bytes at offset %d, limit %d", length, off, MaxWriteLength)
	}
	if off > size || length > size-off {
		return errorf(ErrOutOfRange, "%s record [%d, +%d) beyond image size %d", t, off, length, size)
	}
	if off < prevEnd {
		return errorf(ErrOrder, "%s record at offset %d starts before end %d of the previous one", t, off, prevEnd)
	}
	return nil
}

func checkSnapName(what string, name string) error {
	if name == "" {
		return errorf(ErrBadRecord, "empty %s snapshot name", what)
	}
	if len(name) > MaxSnapName {
		return errorf(ErrTooLong, "%s snapshot name of %d bytes, limit %d", what, len(name), MaxSnapName)
	}
	return nil
}

// errorf wraps sentinel with a description: "rbddiff: bad tag: ...".
func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}
