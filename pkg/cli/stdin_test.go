package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// blockingPipe is a pipe whose read end is a blocking *os.File, as
// os.Stdin is (os.Pipe's own read end is in the poller already).
func blockingPipe(t *testing.T) (r, w *os.File) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func nonblock(t *testing.T, f *os.File) bool {
	t.Helper()
	raw, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	if cerr := raw.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) }); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return flags&unix.O_NONBLOCK != 0
}

func TestInterruptibleStdinCancel(t *testing.T) {
	r, w := blockingPipe(t)
	ctx, cancel := context.WithCancel(context.Background())
	in, restore := InterruptibleStdin(ctx, r)
	if in == r {
		t.Fatal("a pipe was not made interruptible")
	}
	IsTerminal(in) // Fd must not put it back in blocking mode
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, err := in.Read(buf); n != 3 || err != nil {
		t.Fatalf("Read = %d, %v; want 3 bytes", n, err)
	}
	done := make(chan error, 1)
	go func() { _, err := in.Read(buf); done <- err }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read after cancel: %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a blocked Read did not return when the context was cancelled")
	}
	if !nonblock(t, r) {
		t.Fatal("stdin is not in non-blocking mode while in use")
	}
	restore()
	if nonblock(t, r) {
		t.Fatal("restore left stdin in non-blocking mode")
	}
	// stdin itself stays open and usable
	if _, err := w.Write([]byte("d")); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Read(buf); n != 1 || err != nil {
		t.Fatalf("Read of the old stdin = %d, %v", n, err)
	}
}

func TestInterruptibleStdinEOF(t *testing.T) {
	r, w := blockingPipe(t)
	in, restore := InterruptibleStdin(context.Background(), r)
	defer restore()
	go func() { w.Write([]byte("xyz")); w.Close() }()
	b, err := io.ReadAll(in)
	if string(b) != "xyz" || err != nil {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
}

// A stdin that was non-blocking already stays so.
func TestInterruptibleStdinKeepsNonblock(t *testing.T) {
	r, _ := blockingPipe(t)
	raw, _ := r.SyscallConn()
	raw.Control(func(fd uintptr) { unix.SetNonblock(int(fd), true) })
	_, restore := InterruptibleStdin(context.Background(), r)
	restore()
	if !nonblock(t, r) {
		t.Fatal("restore cleared a non-blocking mode it did not set")
	}
}

func TestInterruptibleStdinRegularFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in, restore := InterruptibleStdin(context.Background(), f)
	defer restore()
	if in != f || nonblock(t, f) {
		t.Fatal("a regular file was changed")
	}
}

func TestInterruptibleStdoutCancel(t *testing.T) {
	r, w := blockingPipe(t)
	ctx, cancel := context.WithCancel(context.Background())
	out, restore := InterruptibleStdout(ctx, w)
	if out == w {
		t.Fatal("a pipe was not made interruptible")
	}
	IsTerminal(out) // Fd must not put it back in blocking mode
	done := make(chan error, 1)
	go func() { // fills the pipe, then waits for a reader that never reads
		buf := make([]byte, 64<<10)
		for {
			if _, err := out.Write(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write after cancel: %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a blocked Write did not return when the context was cancelled")
	}
	if !nonblock(t, w) {
		t.Fatal("stdout is not in non-blocking mode while in use")
	}
	restore()
	restore() // a second call does nothing
	if nonblock(t, w) {
		t.Fatal("restore left stdout in non-blocking mode")
	}
	// stdout itself stays open and usable, once the pipe has room
	n, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("d")); err != nil {
		t.Fatalf("Write to the old stdout: %v", err)
	}
}

type plainCmd struct{ nonblock *bool }

func (c *plainCmd) Run(env *Env) error { *c.nonblock = nonblockFd(env.Stdin); return nil }

type streamCmd struct{ plainCmd }

func (c *streamCmd) Streams() (stdin, stdout bool) { return true, false }

func nonblockFd(f *os.File) bool {
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	return err == nil && flags&unix.O_NONBLOCK != 0
}

// TestOnlyStreamersTouchStdin: Run makes a pipe on stdin non-blocking for
// a command that streams through it (Streamer) and for no other: the mode
// is shared with every process holding the pipe (a shell loop reading it,
// a script writing beside a background backy-nbd), and a SIGKILLed command
// never puts it back.
func TestOnlyStreamersTouchStdin(t *testing.T) {
	r, _ := blockingPipe(t)
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	for _, c := range []struct {
		cmd  string
		want bool
	}{{"plain", false}, {"stream", true}} {
		var during bool
		app := &struct {
			Plain  plainCmd  `cmd:""`
			Stream streamCmd `cmd:""`
		}{plainCmd{&during}, streamCmd{plainCmd{&during}}}
		if code := Run("test", "", app, []string{c.cmd}); code != 0 {
			t.Fatalf("%s: exit %d", c.cmd, code)
		}
		if during != c.want {
			t.Errorf("%s: stdin non-blocking while it ran: %v, want %v", c.cmd, during, c.want)
		}
		if nonblock(t, r) {
			t.Errorf("%s: stdin left non-blocking", c.cmd)
		}
	}
}
