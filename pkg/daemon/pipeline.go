package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/backy/backy/pkg/exitcode"
)

// ErrStage is wrapped by the error of a pipeline in which a process failed.
var ErrStage = exitcode.New(exitcode.Failure, "daemon: command failed")

// StageError says which processes of a pipeline failed and how.
type StageError struct {
	Failed []ProcExit // only the processes that did not exit 0
}

// ProcExit is how one process of a pipeline ended.
type ProcExit struct {
	Name   string // program base name
	Code   int    // exit status; -1 when killed by a signal
	Signal string // the signal, if killed by one
	Err    string // it could not be started or waited for
}

func (p ProcExit) String() string {
	switch {
	case p.Err != "":
		return fmt.Sprintf("%s: %s", p.Name, p.Err)
	case p.Signal != "":
		return fmt.Sprintf("%s killed by %s", p.Name, p.Signal)
	case p.Code == exitcode.ThawFailed:
		return fmt.Sprintf("%s exited %d: THAW FAILED, the guest may still be frozen", p.Name, p.Code)
	}
	return fmt.Sprintf("%s exited %d", p.Name, p.Code)
}

func (e *StageError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, p := range e.Failed {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}

func (e *StageError) Unwrap() error { return ErrStage }

// thawFailed reports whether a process of the pipeline said THAW FAILED
// (backy-extract's exit code for a guest that may still be frozen).
func (e *StageError) thawFailed() bool {
	return slices.ContainsFunc(e.Failed, func(p ProcExit) bool { return p.Code == exitcode.ThawFailed && p.Err == "" })
}

// ThawFailed reports whether err is a run's error in which a process said
// THAW FAILED.
func ThawFailed(err error) bool {
	var se *StageError
	return errors.As(err, &se) && se.thawFailed()
}

// onlyExit reports whether the pipeline failed only because programs named
// name exited with code.
func (e *StageError) onlyExit(name string, code int) bool {
	for _, p := range e.Failed {
		if p.Name != name || p.Code != code || p.Err != "" {
			return false
		}
	}
	return len(e.Failed) > 0
}

type gateKey struct{}

// withGate returns ctx carrying gate, which procRunner.run calls right
// before it starts a pipeline's processes (the last moment before anything
// happens); an error from it starts none and is the step's error. In a
// fleet it checks that the job's lease is still fresh: a daemon paused
// between its Confirm and the start of a process would otherwise start it
// on a lease another daemon may have taken meanwhile.
func withGate(ctx context.Context, gate func() error) context.Context {
	return context.WithValue(ctx, gateKey{}, gate)
}

// procRunner starts pipelines of child processes.
type procRunner struct {
	env []string
	// killDelay is how long a process group has between SIGTERM and SIGKILL
	// once the run's context is cancelled.
	killDelay time.Duration
	// dieWithParent gives every process SIGKILL as its parent-death
	// signal.
	dieWithParent bool
}

// maxStdout bounds what is kept of the last command's stdout (a revision
// id); the rest still goes to the log.
const maxStdout = 64 << 10

// run runs p with stderr of every process and stdout of the last appended to
// log, and returns the last process's stdout. Each process leads a process
// group of its own. When ctx ends, every group gets SIGTERM, and SIGKILL
// killDelay later. The error is a *StageError listing every process that did
// not exit 0: a failing reader and a failing writer are both reported.
func (r *procRunner) run(ctx context.Context, p pipeline, log *os.File) ([]byte, error) {
	if r.dieWithParent {
		// The parent-death signal fires when the thread that started
		// the child ends, not the process: keep this goroutine on its
		// thread, which Go never ends while it is locked, until every
		// child was waited for.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	cmds := make([]*exec.Cmd, len(p))
	var closeAfterStart []*os.File
	defer func() { closeAll(closeAfterStart) }() // on the early returns
	out := &capped{limit: maxStdout, log: log}
	for i, argv := range p {
		c := exec.Command(argv[0], argv[1:]...)
		c.Env = r.env
		c.Stderr = log
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if r.dieWithParent {
			c.SysProcAttr.Pdeathsig = syscall.SIGKILL
		}
		cmds[i] = c
	}
	for i := 0; i < len(cmds)-1; i++ {
		pr, pw, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("daemon: pipe: %w", err)
		}
		cmds[i].Stdout = pw
		cmds[i+1].Stdin = pr
		closeAfterStart = append(closeAfterStart, pr, pw)
	}
	cmds[len(cmds)-1].Stdout = out

	if gate, ok := ctx.Value(gateKey{}).(func() error); ok {
		if err := gate(); err != nil {
			return nil, err
		}
	}
	if ctx.Err() != nil {
		// Stopped before it started (the daemon shuts down, or the
		// fleet's watch stopped the run): start nothing.
		return nil, context.Cause(ctx)
	}
	exits := make([]ProcExit, len(cmds))
	started := 0
	for i, c := range cmds {
		exits[i].Name = filepath.Base(p[i][0])
		if err := c.Start(); err != nil {
			exits[i].Err = err.Error()
			break
		}
		started++
	}
	// Our copies of the pipe ends must go, or a reader would never see EOF.
	closeAll(closeAfterStart)
	closeAfterStart = nil

	stop := make(chan struct{})
	defer close(stop)
	if started < len(cmds) {
		signalAll(cmds[:started], syscall.SIGKILL)
	} else {
		go r.watch(ctx, cmds, stop)
	}
	for i, c := range cmds[:started] {
		err := c.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			exits[i].Code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				exits[i].Signal = signalName(ws.Signal())
			}
		default:
			exits[i].Err = err.Error()
		}
	}
	var failed []ProcExit
	for _, e := range exits[:min(started+1, len(exits))] {
		if e.Code != 0 || e.Err != "" {
			failed = append(failed, e)
		}
	}
	if len(failed) > 0 {
		return out.buf.Bytes(), &StageError{Failed: failed}
	}
	return out.buf.Bytes(), nil
}

// watch ends the pipeline's processes when ctx ends before they do.
func (r *procRunner) watch(ctx context.Context, cmds []*exec.Cmd, stop <-chan struct{}) {
	select {
	case <-stop:
		return
	case <-ctx.Done():
	}
	signalAll(cmds, syscall.SIGTERM)
	t := time.NewTimer(r.killDelay)
	defer t.Stop()
	select {
	case <-stop:
	case <-t.C:
		signalAll(cmds, syscall.SIGKILL)
	}
}

// signalAll signals the process group of every started command. A group
// whose leader has been reaped may still hold the leader's children, which
// is exactly who must hear it.
func signalAll(cmds []*exec.Cmd, sig syscall.Signal) {
	for _, c := range cmds {
		if c.Process != nil {
			syscall.Kill(-c.Process.Pid, sig)
		}
	}
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	}
	return s.String()
}

// capped keeps the first limit bytes written to it and copies everything to
// log.
type capped struct {
	buf   bytes.Buffer
	limit int
	log   *os.File
}

func (c *capped) Write(b []byte) (int, error) {
	if room := c.limit - c.buf.Len(); room > 0 {
		c.buf.Write(b[:min(room, len(b))])
	}
	c.log.Write(b)
	return len(b), nil
}
