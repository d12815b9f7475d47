package daemontest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Daemon is a backy-schedule process a test started. The one way every
// test of backy-schedule and backy-check starts a daemon as a process.
type Daemon struct {
	t    testing.TB
	Cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu     sync.Mutex
	stderr bytes.Buffer
}

// Start starts prog (a path, or a name looked up in the test's $PATH; the
// test binaries of cmd/backy-schedule run themselves as "backy-schedule")
// with environment env and args. The daemon is killed when the test ends,
// also when it fails: SIGCONT first, in case the test stopped it, then
// SIGKILL by pid; and every process whose command line names one of
// orphanDirs (the runs of the daemon, which live in process groups of
// their own) is killed too.
func Start(t testing.TB, prog string, env []string, args []string, orphanDirs ...string) *Daemon {
	t.Helper()
	d := &Daemon{t: t, Cmd: exec.Command(prog, args...), done: make(chan struct{})}
	d.Cmd.Env = env
	d.Cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.stderr.Write(p)
	})
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.Cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.Kill()
		for _, dir := range orphanDirs {
			KillUnder(dir)
		}
	})
	return d
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Pid is the daemon's process id.
func (d *Daemon) Pid() int { return d.Cmd.Process.Pid }

// Stderr is what the daemon wrote to stderr so far.
func (d *Daemon) Stderr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

// Signal sends sig to the daemon; it fails the test if that is not
// possible.
func (d *Daemon) Signal(sig syscall.Signal) {
	d.t.Helper()
	if err := d.Cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
}

// Kill resumes the daemon if it was stopped and kills it with SIGKILL, and
// waits for it. It does nothing to a daemon that has exited.
func (d *Daemon) Kill() {
	select {
	case <-d.done:
		return
	default:
	}
	d.Cmd.Process.Signal(syscall.SIGCONT)
	d.Cmd.Process.Kill()
	<-d.done
}

// Done is closed when the daemon has exited.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Exit waits for the daemon to end and returns its exit code, failing the
// test after timeout.
func (d *Daemon) Exit(timeout time.Duration) int {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(timeout):
		d.t.Fatalf("backy-schedule did not exit within %s; stderr:\n%s", timeout, d.Stderr())
	}
	var ee *exec.ExitError
	if errors.As(d.err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// ProcessesUnder lists the processes other than this one whose command
// line names dir.
func ProcessesUnder(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// KillUnder resumes and kills every process ProcessesUnder(dir) lists.
func KillUnder(dir string) {
	for _, pid := range ProcessesUnder(dir) {
		syscall.Kill(pid, syscall.SIGCONT)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
