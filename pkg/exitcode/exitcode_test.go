package exitcode_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/backy/backy/pkg/exitcode"
)

var (
	errBusy    = exitcode.New(exitcode.Busy, "test: busy")
	errDamaged = exitcode.New(exitcode.Damaged, "test: damaged")
	errFailed  = exitcode.New(exitcode.Failure, "test: failed")
	errPlain   = errors.New("test: plain")
)

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code int
		ok   bool
	}{
		{"nil", nil, 0, false},
		{"plain", errPlain, 0, false},
		{"sentinel", errBusy, exitcode.Busy, true},
		{"wrapped", fmt.Errorf("doing: %w", errBusy), exitcode.Busy, true},
		{"first wins", fmt.Errorf("%w: %w", errDamaged, errBusy), exitcode.Damaged, true},
		{"failure alone", fmt.Errorf("x: %w", errFailed), 0, false},
		{"failure is transparent", fmt.Errorf("%w: %w", errFailed, fmt.Errorf("y: %w", errDamaged)), exitcode.Damaged, true},
		{"joined", errors.Join(errPlain, errFailed, errBusy), exitcode.Busy, true},
		{"with", exitcode.With(exitcode.Usage, errPlain), exitcode.Usage, true},
		{"with wrapped", fmt.Errorf("z: %w", exitcode.With(exitcode.NotFound, errFailed)), exitcode.NotFound, true},
		{"with failure", fmt.Errorf("z: %w", exitcode.With(exitcode.Failure, errPlain)), exitcode.Failure, true},
		{"with failure first", exitcode.With(exitcode.Failure, fmt.Errorf("%w: %w", errFailed, errBusy)), exitcode.Failure, true},
	} {
		code, ok := exitcode.Of(tc.err)
		if code != tc.code || ok != tc.ok {
			t.Errorf("%s: Of(%v) = %d, %v; want %d, %v", tc.name, tc.err, code, ok, tc.code, tc.ok)
		}
	}
}

func TestSentinel(t *testing.T) {
	err := fmt.Errorf("repo %s: %w", "/x", errBusy)
	if !errors.Is(err, errBusy) || errors.Is(err, errDamaged) {
		t.Error("errors.Is does not tell the sentinels apart")
	}
	if err.Error() != "repo /x: test: busy" {
		t.Errorf("message %q", err)
	}
	w := exitcode.With(exitcode.Busy, errPlain)
	if !errors.Is(w, errPlain) || w.Error() != errPlain.Error() {
		t.Errorf("With changed the error: %v", w)
	}
	var c exitcode.Coder
	if !errors.As(err, &c) || c.ExitCode() != exitcode.Busy {
		t.Error("errors.As finds no Coder")
	}
}
