package extent

import (
	"errors"
	"io"
)

// Errors a Reader or Writer reports; they are wrapped with details, so test
// with errors.Is.
var (
	ErrBadMagic     = errors.New("extent: bad magic")
	ErrVersion      = errors.New("extent: unsupported version")
	ErrBadHeader    = errors.New("extent: bad header")
	ErrChecksum     = errors.New("extent: bad checksum")
	ErrOrder        = errors.New("extent: record out of order")
	ErrBeyondImage  = errors.New("extent: record beyond image")
	ErrTooLong      = errors.New("extent: record too long")
	ErrBadRecord    = errors.New("extent: bad record")
	ErrBadEnd       = errors.New("extent: bad end record")
	ErrTrailingData = errors.New("extent: data after end record")
	ErrWriterClosed = errors.New("extent: write after close")
	ErrTruncated    = truncated{}
)

// truncated is the error for a stream that stops before its END record. It
// unwraps to io.ErrUnexpectedEOF, as archive/tar's does.
type truncated struct{}

func (truncated) Error() string { return "extent: truncated stream" }
func (truncated) Unwrap() error { return io.ErrUnexpectedEOF }

// IsInvalid reports whether err means the stream itself is malformed or
// truncated (as opposed to an I/O error of the underlying reader).
func IsInvalid(err error) bool {
	for _, e := range []error{ErrBadMagic, ErrVersion, ErrBadHeader, ErrChecksum,
		ErrOrder, ErrBeyondImage, ErrTooLong, ErrBadRecord, ErrBadEnd,
		ErrTrailingData, io.ErrUnexpectedEOF} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
