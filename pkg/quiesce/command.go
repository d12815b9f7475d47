package quiesce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// shell runs command with sh -c and env added to the environment, in a
// process group of its own that is killed as a whole when ctx ends (a
// freeze command's children must not outlive a timeout). Its stdout and
// stderr go to stderr and the last line of them is in the error.
func shell(ctx context.Context, command string, env []string) error {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), env...)
	out := &lastLines{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A grandchild that left the group (timeout(1) makes a group of its
	// own) may hold the output pipe: Wait must not wait for it.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("quiesce: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		waitGroupGone(cmd.Process.Pid)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w: %q still running, killed", ErrTimeout, command)
		}
		return fmt.Errorf("quiesce: %q: %w", command, ctx.Err())
	}
	if err != nil {
		if msg := out.last(); msg != "" {
			return fmt.Errorf("%q %v: %s", command, err, msg)
		}
		return fmt.Errorf("%q %v", command, err)
	}
	return nil
}

// groupWait bounds how long waitGroupGone waits.
const groupWait = time.Minute

// waitGroupGone waits until no process of process group pgid is running.
// A SIGKILL does not end a process in uninterruptible sleep - fsfreeze -f
// waiting in the kernel for writers to drain - and a freeze that completes
// after the thaw would leave the guest frozen: the thaw must come after.
// A zombie has ended and does not count: the orphans of a killed shell are
// reaped by init, which may take its time (a second or two on some VMs).
func waitGroupGone(pgid int) {
	for deadline := time.Now().Add(groupWait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !groupRunning(pgid) {
			return
		}
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// groupRunning reports whether a process of group pgid has not ended: it
// exists and is not a zombie (/proc/PID/stat).
func groupRunning(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// PID (COMM) STATE PPID PGRP ...; COMM may hold anything.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// lastLines copies what a command writes to our stderr and keeps the tail.
type lastLines struct {
	mu sync.Mutex
	b  []byte
}

func (l *lastLines) Write(p []byte) (int, error) {
	os.Stderr.Write(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 4096 {
		l.b = append(l.b[:0], l.b[len(l.b)-4096:]...)
	}
	return len(p), nil
}

func (l *lastLines) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return oneLine(string(l.b))
}

// freezer freezes and thaws a guest.
type freezer interface {
	Freeze(ctx context.Context) error
	Thaw(ctx context.Context) error
}

// commands is the freezer of freeze and thaw commands.
type commands struct {
	freeze, thaw string
	env          []string
}

func (c commands) Freeze(ctx context.Context) error { return shell(ctx, c.freeze, c.env) }
func (c commands) Thaw(ctx context.Context) error   { return shell(ctx, c.thaw, c.env) }

// thawAttempts is how often a thaw is tried; thawPause is the wait between.
const (
	thawAttempts = 3
	thawPause    = time.Second
)

// thaw thaws with retries, each attempt bounded by timeout.
func thaw(f freezer, timeout time.Duration, log *slog.Logger) error {
	var err error
	for i := 1; i <= thawAttempts; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err = f.Thaw(ctx)
		cancel()
		if err == nil {
			if i > 1 {
				log.Info(fmt.Sprintf("thaw succeeded at attempt %d", i))
			}
			return nil
		}
		log.Info(fmt.Sprintf("thaw attempt %d of %d failed: %v", i, thawAttempts, err))
		if i < thawAttempts {
			time.Sleep(thawPause)
		}
	}
	return fmt.Errorf("%w: %d attempts: %v", ErrThaw, thawAttempts, err)
}
