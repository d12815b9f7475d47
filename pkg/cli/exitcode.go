package cli

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"syscall"

	"github.com/backy/backy/pkg/exitcode"
)

// ErrUsage marks a bad command line.
var ErrUsage = exitcode.New(exitcode.Usage, "usage")

// ErrTerminal is returned when binary output would go to a terminal.
var ErrTerminal = exitcode.New(exitcode.Usage, "refusing to write binary data to a terminal")

// ExitCode maps an error to its exit code: an interruption, a full disk,
// else the code backy's errors carry (exitcode.Of), else the few system
// errors that mean the same for every command.
func ExitCode(err error) int {
	if err == nil {
		return exitcode.OK
	}
	if errors.Is(err, context.Canceled) {
		return exitcode.Interrupted
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return exitcode.NoSpace
	}
	if code, ok := exitcode.Of(err); ok {
		return code
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return exitcode.NotFound
	case errors.Is(err, io.ErrUnexpectedEOF): // a truncated input
		return exitcode.BadInput
	}
	return exitcode.Failure
}
