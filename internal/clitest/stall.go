package clitest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"
)

// stallout [-INT] N PROG ARGS...: run PROG with its stdout on a pipe (a
// blocking one, as a shell's) that nobody reads but stays open, as a reader
// that stalls (backy-store waiting for its disk). Once the pipe is full and
// PROG has had 300 ms to wait in its next write, send it SIGTERM (SIGINT
// with -INT) and check that it exits with status N within InterruptWait;
// the reader goes only after that, so a command that ends only by SIGPIPE
// fails. What PROG wrote is its stdout for the script afterwards.
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
	cmd := exec.Command(lookPath(ts.Getenv("PATH"), args[1]), args[2:]...)
	var stderr bytes.Buffer
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = ts.MkAbs("."), environ(ts), pw, &stderr
	err := cmd.Start()
	pw.Close()
	ts.Check(err)
	s := &signalled{ts: ts, cmd: cmd, name: args[1], stderr: &stderr, exited: make(chan error, 1)}
	s.stdout = func() []byte { b, _ := io.ReadAll(pr); return b }
	go func() { s.exited <- cmd.Wait() }()
	deadline := time.Now().Add(InterruptWait)
	for {
		select {
		case err := <-s.exited:
			s.output()
			ts.Fatalf("%s exited before it was interrupted: %v", args[1], err)
		case <-time.After(10 * time.Millisecond):
		}
		var n, size int
		var ierr, serr error
		raw, err := pr.SyscallConn()
		ts.Check(err)
		ts.Check(raw.Control(func(fd uintptr) {
			n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCINQ)
			size, serr = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
		}))
		ts.Check(ierr)
		ts.Check(serr)
		if n >= size {
			break
		}
		if time.Now().After(deadline) {
			s.fail("%s did not fill its stdout pipe (%d of %d bytes) within %v", args[1], n, size, InterruptWait)
		}
	}
	s.signal(sig, want, "while its stdout's reader stalled")
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

// signal waits 300 ms, sends sig and checks that the command exits with
// status want within InterruptWait.
func (s *signalled) signal(sig syscall.Signal, want int, while string) {
	time.Sleep(300 * time.Millisecond)
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
