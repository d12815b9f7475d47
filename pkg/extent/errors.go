package extent

import (
	"io"

	"github.com/backy/backy/pkg/exitcode"
)

// Errors a Reader or Writer reports; they are wrapped with details, so test
// with errors.Is.
var (
	ErrBadMagic     = exitcode.New(exitcode.BadInput, "extent: bad magic")
	ErrVersion      = exitcode.New(exitcode.BadInput, "extent: unsupported version")
	ErrBadHeader    = exitcode.New(exitcode.BadInput, "extent: bad header")
	ErrChecksum     = exitcode.New(exitcode.BadInput, "extent: bad checksum")
	ErrOrder        = exitcode.New(exitcode.BadInput, "extent: record out of order")
	ErrBeyondImage  = exitcode.New(exitcode.BadInput, "extent: record beyond image")
	ErrTooLong      = exitcode.New(exitcode.BadInput, "extent: record too long")
	ErrBadRecord    = exitcode.New(exitcode.BadInput, "extent: bad record")
	ErrBadEnd       = exitcode.New(exitcode.BadInput, "extent: bad end record")
	ErrTrailingData = exitcode.New(exitcode.BadInput, "extent: data after end record")
	ErrWriterClosed = exitcode.New(exitcode.Failure, "extent: write after close")
	ErrTruncated    = truncated{}
)

// truncated is the error for a stream that stops before its END record. It
// unwraps to io.ErrUnexpectedEOF, as archive/tar's does.
type truncated struct{}

func (truncated) Error() string { return "extent: truncated stream" }
func (truncated) Unwrap() error { return io.ErrUnexpectedEOF }
func (truncated) ExitCode() int { return exitcode.BadInput }
