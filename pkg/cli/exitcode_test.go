package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/backy/backy/pkg/exitcode"
)

// TestExitCode pins the system errors cli maps itself and their precedence
// over the codes backy's errors carry.
func TestExitCode(t *testing.T) {
	damaged := exitcode.New(exitcode.Damaged, "test: damaged")
	failed := exitcode.New(exitcode.Failure, "test: failed")
	_, notExist := os.Open("/nonexistent/backy")
	for _, tc := range []struct {
		err  error
		code int
	}{
		{nil, exitcode.OK},
		{errors.New("x"), exitcode.Failure},
		{failed, exitcode.Failure},
		{fmt.Errorf("x: %w", ErrUsage), exitcode.Usage},
		{ErrTerminal, exitcode.Usage},
		{fmt.Errorf("%w: %w", context.Canceled, damaged), exitcode.Interrupted},
		{fmt.Errorf("%w: %w", damaged, syscall.ENOSPC), exitcode.NoSpace},
		{syscall.EDQUOT, exitcode.NoSpace},
		{fmt.Errorf("%w: %w", damaged, notExist), exitcode.Damaged},
		{fmt.Errorf("%w: %w", failed, notExist), exitcode.NotFound},
		{notExist, exitcode.NotFound},
		{exitcode.With(exitcode.Failure, fmt.Errorf("%w: %w", failed, notExist)), exitcode.Failure}, // backy-schedule's -l
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), exitcode.BadInput},
		{syscall.EADDRINUSE, exitcode.Failure}, // backy-nbd gives it Busy itself
	} {
		if got := ExitCode(tc.err); got != tc.code {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
}
