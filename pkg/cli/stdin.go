package cli

import (
	"context"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// InterruptibleStdin returns a stdin whose blocked Read returns once ctx is
// done, and a function that puts stdin back as it was; the caller calls it
// before the process exits. A command blocked reading a producer that hangs
// (a stuck RBD read, a stalled ssh pipe) would otherwise ignore SIGINT and
// SIGTERM until the producer writes or closes: Go's os.Stdin reads in a
// plain blocking read(2) that nothing can cut short.
//
// For a pipe, FIFO or socket, fd 0 is put in non-blocking mode and a
// duplicate of it handed to Go's poller, so that a read deadline set when
// ctx is done makes a waiting Read return os.ErrDeadlineExceeded. The
// caller sees an error while ctx is done, which Run reports as the
// interruption. O_NONBLOCK belongs to the open file description, which
// stdin shares with whatever handed it over (a shell running commands one
// after another on one input), hence the restore. Regular files, devices
// and terminals never block for long or belong to the user's shell: they
// stay as they are, as does a stdin that is the very same file as stdout
// or stderr (a socket serving both ways: its writes would fail with EAGAIN
// where Go does not expect non-blocking mode).
func InterruptibleStdin(ctx context.Context, stdin *os.File) (*os.File, func()) {
	noop := func() {}
	raw, err := stdin.SyscallConn()
	if err != nil {
		return stdin, noop
	}
	var fd int
	var st unix.Stat_t
	var flags int
	var serr error
	err = raw.Control(func(u uintptr) {
		fd = int(u)
		if serr = unix.Fstat(fd, &st); serr != nil {
			return
		}
		flags, serr = unix.FcntlInt(u, unix.F_GETFL, 0)
	})
	if err != nil || serr != nil {
		return stdin, noop
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFIFO && t != unix.S_IFSOCK {
		return stdin, noop
	}
	for _, other := range []int{1, 2} {
		var ost unix.Stat_t
		if unix.Fstat(other, &ost) == nil && ost.Dev == st.Dev && ost.Ino == st.Ino {
			return stdin, noop
		}
	}
	// A close-on-exec duplicate of our own: the poller registers it and
	// Close takes it out again, while fd 0 stays open for the rest of the
	// process (and for the test binaries that run commands in-process).
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return stdin, noop
	}
	wasNonblock := flags&unix.O_NONBLOCK != 0
	restoreMode := func() {
		if !wasNonblock {
			_ = syscall.SetNonblock(fd, false)
		}
	}
	if err := syscall.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return stdin, noop
	}
	f := os.NewFile(uintptr(dup), stdin.Name())
	// A file the poller refused has no deadlines, and its reads would fail
	// with EAGAIN: keep the blocking stdin then.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		restoreMode()
		return stdin, noop
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	return f, func() {
		stop()
		f.Close()
		restoreMode()
	}
}
