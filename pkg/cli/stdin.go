package cli

import (
	"context"
	"os"
	"sync"
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
	return interruptible(ctx, stdin, []int{1, 2}, (*os.File).SetReadDeadline)
}

// InterruptibleStdout is InterruptibleStdin for writing: a Write blocked on
// a pipe, FIFO or socket whose reader stalls (a backy-store waiting for its
// disk, any slow reader) returns os.ErrDeadlineExceeded once ctx is done,
// and so does every Write after that. It leaves alone what
// InterruptibleStdin leaves alone, and a stdout that is the same file as
// stdin or stderr (2>&1 into one pipe: os.Stderr's blocking writes would
// fail with EAGAIN).
//
// The duplicate is not fd 1: closing it does not end the reader's input;
// Env.CloseStdout does. Nor is a write to it that finds the reader gone
// Go's death by SIGPIPE (which the runtime keeps for fds 1 and 2): it
// fails with EPIPE, which Run turns into a quiet exit 141, the status a
// filter killed by SIGPIPE has.
func InterruptibleStdout(ctx context.Context, stdout *os.File) (*os.File, func()) {
	return interruptible(ctx, stdout, []int{0, 2}, (*os.File).SetWriteDeadline)
}

// interruptible hands a duplicate of std to the poller and arms deadline
// (a read or write deadline) when ctx is done; others are the standard
// fds that, being the same file as std, leave it alone. The returned
// function may be called more than once.
func interruptible(ctx context.Context, std *os.File, others []int, deadline func(*os.File, time.Time) error) (*os.File, func()) {
	noop := func() {}
	raw, err := std.SyscallConn()
	if err != nil {
		return std, noop
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
		return std, noop
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFIFO && t != unix.S_IFSOCK {
		return std, noop
	}
	for _, other := range others {
		var ost unix.Stat_t
		if unix.Fstat(other, &ost) == nil && ost.Dev == st.Dev && ost.Ino == st.Ino {
			return std, noop
		}
	}
	// A close-on-exec duplicate of our own: the poller registers it and
	// Close takes it out again, while the standard fd stays open for the
	// rest of the process (and for the test binaries that run commands
	// in-process).
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return std, noop
	}
	wasNonblock := flags&unix.O_NONBLOCK != 0
	// The mode is put back through the duplicate, before it is closed: the
	// standard fd may be closed by then (Env.CloseStdout) and its number
	// taken by another file.
	restoreMode := func() {
		if !wasNonblock {
			_ = syscall.SetNonblock(dup, false)
		}
	}
	if err := syscall.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return std, noop
	}
	f := os.NewFile(uintptr(dup), std.Name())
	// A file the poller refused has no deadlines, and its reads and writes
	// would fail with EAGAIN: keep the blocking file then.
	if err := deadline(f, time.Time{}); err != nil {
		restoreMode()
		f.Close()
		return std, noop
	}
	stop := context.AfterFunc(ctx, func() { _ = deadline(f, time.Now()) })
	return f, sync.OnceFunc(func() {
		stop()
		restoreMode()
		f.Close()
	})
}
