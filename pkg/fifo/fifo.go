// Package fifo opens the files a command reads (an image, a stream, an rbd
// diff) so that SIGINT and SIGTERM still stop it when the path is a FIFO
// whose writer never comes or falls silent; cli.InterruptibleStdin does
// the same for stdin.
package fifo

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// OpenInput opens a command's input file at path (a stream to dump, an
// rbd diff, a stream to verify against) as Open does, and ends its reads
// once ctx is done: a FIFO's reads then fail with os.ErrDeadlineExceeded,
// as a stalled stdin's do (cli.InterruptibleStdin). Regular files are read
// as usual.
func OpenInput(ctx context.Context, path string) (*os.File, error) {
	f, err := Open(ctx, path)
	if err != nil {
		return nil, err
	}
	// after Close, the deadline fails harmlessly (os.ErrClosed)
	context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	return f, nil
}

// Open opens path for reading. A FIFO is opened with O_NONBLOCK: a plain
// open(2) of a FIFO waits for a writer for as long as none comes, deaf to
// SIGINT and SIGTERM. Its file goes to Go's poller (reads that find it
// empty wait there, until a read deadline, which the caller sets when ctx
// is done), and Open waits for the writer there, until ctx is done. Every
// other path is opened as os.Open does.
func Open(ctx context.Context, path string) (*os.File, error) {
	if st, err := os.Stat(path); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return os.Open(path)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		// Replaced since the Stat: no FIFO, no waiting.
		_ = unix.SetNonblock(fd, false)
		return os.NewFile(uintptr(fd), path), nil
	}
	f := os.NewFile(uintptr(fd), path) // non-blocking: in the poller
	if err := waitWriter(ctx, f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// waitWriter returns once the FIFO f has had a writer, which either wrote
// (f is readable) or came and went (f reads EOF), or else with ctx's error.
// Until then a read of a FIFO opened with O_NONBLOCK returns EOF at once.
// Writers that come and say nothing leave it waiting: so would the read.
func waitWriter(ctx context.Context, f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stop()
	err = raw.Read(func(fd uintptr) bool {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 0)
		return err == nil && n > 0 // POLLIN, POLLHUP or POLLERR
	})
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("waiting for a writer of %s: %w", f.Name(), cerr)
	}
	if err != nil {
		return fmt.Errorf("waiting for a writer of %s: %w", f.Name(), err)
	}
	return f.SetReadDeadline(time.Time{})
}
