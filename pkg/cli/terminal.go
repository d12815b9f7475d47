package cli

import (
	"os"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// RefuseTerminal returns ErrTerminal when f is a terminal: binary streams and
// images must never be dumped on a user's screen.
func RefuseTerminal(f *os.File) error {
	if IsTerminal(f) {
		return ErrTerminal
	}
	return nil
}
