package cli

import (
	"os"

	"github.com/backy/backy/pkg/progress"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return progress.IsTerminal(f) }

// RefuseTerminal returns ErrTerminal when f is a terminal: binary streams and
// images must never be dumped on a user's screen.
func RefuseTerminal(f *os.File) error {
	if IsTerminal(f) {
		return ErrTerminal
	}
	return nil
}
