package clitest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"
)

// stallout [-INT] N PROG ARGS...: run PROG with its stdout on a pipe (a
// blocking one, as a shell's) that nobody reads but stays open, as a reader
// that stalls (backy-store waiting for its disk). Once the pipe is full and
// PROG has had settle to wait in its next write, send it SIGTERM (SIGINT
// with -INT) and check that it exits with status N within InterruptWait;
// the reader goes only after that, so a command that ends only by SIGPIPE
// fails. What PROG wrote is its stdout for the script afterwards.
//
// Full means no free slot: a writer's write(2) waits exactly then, and
// poll(2) on the write end then reports no POLLOUT. (Bytes in the pipe
// against its size say less: small writes leave pages part-filled, and
// a pipe with no free slot may hold fewer bytes than its size.) The test
// keeps a write end of its own for that poll, closed before it reads the
// pipe.
func stallout(ts *testscript.TestScript, neg bool, args []string) {
	sig, args := signalFlag(args)
	if neg || len(args) < 2 {
		ts.Fatalf("usage: stallout [-INT] N PROG ARGS...")
	}
	want := exitArg(ts, args[0])
	var p [2]int
	ts.Check(unix.Pipe2(p[:], unix.O_CLOEXEC))
	pr, pw := os.NewFile(uintptr(p[0]), "stdout-r"), os.NewFile(uintptr(p[1]), "stdout-w")
	defer pr.Close()
	defer pw.Close()
	cmd := exec.Command(lookPath(ts.Getenv("PATH"), args[1]), args[2:]...)
	var stderr bytes.Buffer
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = ts.MkAbs("."), environ(ts), pw, &stderr
	ts.Check(cmd.Start())
	s := &signalled{ts: ts, cmd: cmd, name: args[1], stderr: &stderr, exited: make(chan error, 1)}
	s.stdout = func() []byte { pw.Close(); b, _ := io.ReadAll(pr); return b }
	go func() { s.exited <- cmd.Wait() }()
	deadline := time.Now().Add(InterruptWait)
	for !pipeFull(ts, pw) {
		select {
		case err := <-s.exited:
			s.output()
			ts.Fatalf("%s exited before it was interrupted: %v", args[1], err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.fail("%s did not fill its stdout pipe (%d bytes in it) within %v", args[1], inPipe(ts, pr), InterruptWait)
		}
	}
	s.signal(sig, want, "while its stdout's reader stalled")
}

// pipeFull reports whether the pipe of its write end w has no free slot,
// so that a write to it waits.
func pipeFull(ts *testscript.TestScript, w *os.File) bool {
	raw, err := w.SyscallConn()
	ts.Check(err)
	var n int
	var perr error
	ts.Check(raw.Control(func(fd uintptr) {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		for {
			// the Go runtime's preemption signal (SIGURG) interrupts it
			if _, perr = unix.Poll(p, 0); perr != unix.EINTR {
				break
			}
		}
		n = int(p[0].Revents & unix.POLLOUT)
	}))
	ts.Check(perr)
	return n == 0
}

// fifoin [-INT] [-write FILE] N FIFO PROG ARGS...: make the FIFO (its
// directory must exist) and run PROG, which names it among ARGS. Without
// -write nobody ever opens the FIFO for writing; with -write a writer opens
// it, writes FILE's bytes (none for an empty FILE) and then stays open and
// silent. Once PROG has the FIFO open (or InterruptWait went by: an open
// that waits for a writer has no fd yet) and has read what was written,
// and had settle more to wait, send it SIGTERM (SIGINT with -INT) and
// check that it exits with status N within InterruptWait. PROG's stdout
// and stderr can be matched afterwards.
func fifoin(ts *testscript.TestScript, neg bool, args []string) {
	sig, args := signalFlag(args)
	var data []byte
	write := len(args) > 1 && args[0] == "-write"
	if write {
		var err error
		data, err = os.ReadFile(ts.MkAbs(args[1]))
		ts.Check(err)
		args = args[2:]
	}
	if neg || len(args) < 3 {
		ts.Fatalf("usage: fifoin [-INT] [-write FILE] N FIFO PROG ARGS...")
	}
	want := exitArg(ts, args[0])
	fifo := ts.MkAbs(args[1])
	ts.Check(unix.Mkfifo(fifo, 0o600))
	cmd := exec.Command(lookPath(ts.Getenv("PATH"), args[2]), args[3:]...)
	var stdout, stderr bytes.Buffer
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = ts.MkAbs("."), environ(ts), &stdout, &stderr
	ts.Check(cmd.Start())
	s := &signalled{ts: ts, cmd: cmd, name: args[2], stderr: &stderr, exited: make(chan error, 1)}
	s.stdout = stdout.Bytes
	go func() { s.exited <- cmd.Wait() }()
	var w *os.File
	written := make(chan error, 1)
	if write {
		// The open for writing waits for PROG's open for reading: a
		// goroutine of its own, which an open of ours for reading ends
		// should PROG never open the FIFO. The writer closes only once
		// PROG's exit was checked.
		opened := make(chan *os.File, 1)
		go func() {
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				written <- err
				close(opened)
				return
			}
			opened <- f
			_, err = f.Write(data)
			written <- err
		}()
		defer func() {
			if f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
				if w := <-opened; w != nil {
					w.Close()
				}
				f.Close()
			}
		}()
		select {
		case w = <-opened:
			opened <- w
		case err := <-s.exited:
			s.exited <- err
		case <-time.After(InterruptWait):
		}
	}
	deadline := time.Now().Add(InterruptWait)
	for ready := false; !ready; {
		select {
		case err := <-s.exited:
			s.output()
			ts.Fatalf("%s exited before it was interrupted: %v", args[2], err)
		case err := <-written:
			if err != nil {
				s.fail("writing %s: %v", args[1], err)
			}
			written = nil
		case <-time.After(10 * time.Millisecond):
		}
		ready = hasOpen(cmd.Process.Pid, fifo)
		if write {
			ready = ready && written == nil && w != nil && inPipe(ts, w) == 0
		}
		if !ready && time.Now().After(deadline) {
			if write {
				s.fail("%s did not open %s and read its %d bytes within %v", args[2], args[1], len(data), InterruptWait)
			}
			break // an open waiting for a writer: the old way
		}
	}
	s.signal(sig, want, "while its input FIFO had no data")
}

// inPipe is how many bytes the pipe of f holds.
func inPipe(ts *testscript.TestScript, f *os.File) int {
	raw, err := f.SyscallConn()
	ts.Check(err)
	n := -1
	ts.Check(raw.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }))
	ts.Check(err)
	return n
}

// hasOpen reports whether process pid has path open.
func hasOpen(pid int, path string) bool {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && l == path {
			return true
		}
	}
	return false
}

// signalFlag takes a leading -INT off args: SIGINT with it, else SIGTERM.
func signalFlag(args []string) (syscall.Signal, []string) {
	if len(args) > 0 && args[0] == "-INT" {
		return syscall.SIGINT, args[1:]
	}
	return syscall.SIGTERM, args
}

func exitArg(ts *testscript.TestScript, s string) int {
	var want int
	if _, err := fmt.Sscan(s, &want); err != nil {
		ts.Fatalf("bad exit status %q", s)
	}
	return want
}

// signalled is a started command about to be signalled.
type signalled struct {
	ts     *testscript.TestScript
	cmd    *exec.Cmd
	name   string
	stdout func() []byte // what it wrote, once it exited
	stderr *bytes.Buffer
	exited chan error
}

// output hands the exited command's stdout and stderr to the script.
func (s *signalled) output() {
	s.ts.Stdout().Write(s.stdout())
	s.ts.Stderr().Write(s.stderr.Bytes())
}

// fail kills the command and fails the script.
func (s *signalled) fail(format string, a ...any) {
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.output()
	s.ts.Fatalf(format, a...)
}

// settle is how long a command gets, once its input is taken in or its
// output pipe full, to be waiting in its next read or write.
const settle = 300 * time.Millisecond

// signal waits settle, sends sig and checks that the command exits with
// status want within InterruptWait.
func (s *signalled) signal(sig syscall.Signal, want int, while string) {
	time.Sleep(settle)
	s.ts.Check(s.cmd.Process.Signal(sig))
	sent := time.Now()
	var err error
	select {
	case err = <-s.exited:
	case <-time.After(InterruptWait):
		s.fail("%s did not exit within %v of %v %s", s.name, InterruptWait, sig, while)
	}
	s.ts.Logf("%s exited %v after %v", s.name, time.Since(sent).Round(time.Millisecond), sig)
	s.output()
	wantExit(s.ts, s.name, err, want)
}
