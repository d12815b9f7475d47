package nbdmount

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// packages names the Debian package of each helper program.
var packages = map[string]string{"fuse2fs": "fuse2fs", "fusermount3": "fuse3"}

// findHelper finds a helper program on PATH or in the sbin directories a
// user's PATH may lack.
func findHelper(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
			return p, nil
		}
	}
	if packages[name] == "" {
		return "", fmt.Errorf("%w: %s", ErrNoHelper, name)
	}
	return "", fmt.Errorf("%w: %s (install the Debian package %s)", ErrNoHelper, name, packages[name])
}

// checkFUSE opens /dev/fuse as FUSE's library will: a user who cannot has
// no FUSE at all, and the helpers' own messages would not say why.
func checkFUSE() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		hint := "is the fuse module loaded, and /dev/fuse there?"
		if errors.Is(err, os.ErrPermission) {
			hint = "FUSE for users needs /dev/fuse mode 0666, Debian's default"
		}
		return fmt.Errorf("%w: %w (%s)", ErrNoFUSE, err, hint)
	}
	return f.Close()
}

// helper is a running nbdfuse or fuse2fs: one mount, one process.
type helper struct {
	what  string // "nbdfuse p1"
	mnt   string // its mount point
	cmd   *exec.Cmd
	tail  *tailBuffer
	done  chan struct{} // closed when the process has exited
	err   error         // its exit, valid after done
	ended bool          // we ended it (unmounted): its exit is no news
	// poisoned: killed before a read error could reach it (images.go)
	poisoned atomic.Bool
	entry    *entry
}

// startHelper starts a helper in its own process group, so that a Ctrl-C
// on the terminal reaches only backy-nbd, which unmounts in order. If
// backy-nbd dies, even by SIGKILL, the kernel sends the helper SIGTERM
// (Pdeathsig), and FUSE's signal handlers unmount on their way out. Its
// stderr goes to w, each line prefixed with what, and the last lines are
// kept for the error message.
func startHelper(what, mnt string, w io.Writer, died chan<- *helper, prog string, args ...string) (*helper, error) {
	h := &helper{what: what, mnt: mnt, tail: &tailBuffer{}, done: make(chan struct{})}
	h.cmd = exec.Command(prog, args...)
	h.cmd.Stdout = io.Discard
	h.cmd.Stderr = io.MultiWriter(&prefixWriter{w: w, prefix: what + ": "}, h.tail)
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	closeOnExec()
	started := make(chan error)
	go func() {
		// The parent-death signal follows the thread that forked, not
		// the process, and Go ends a thread whose goroutine exits
		// locked to it: start and wait on a thread of our own, which
		// Go never ends while it is locked (as pkg/daemon's runner).
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := h.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		h.err = h.cmd.Wait()
		close(h.done)
		died <- h
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("nbdmount: %s: %w", what, err)
	}
	return h, nil
}

// exited describes how a helper ended, with its last words.
func (h *helper) exited() error {
	msg := "exited"
	if h.err != nil {
		msg = h.err.Error()
	}
	if t := h.tail.String(); t != "" {
		msg += ": " + t
	}
	return fmt.Errorf("%w: %s (%s)", ErrHelperDied, h.what, msg)
}

// waitMounted waits until the helper's mount point appears in the mount
// table, the helper exits, or the timeout passes (then it is killed).
func (h *helper) waitMounted(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if ok, err := isMounted(h.mnt); err != nil || ok {
			return err
		}
		select {
		case <-h.done:
			return h.exited()
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.kill()
			return fmt.Errorf("%w: %s did not mount %s within %s", ErrHelperDied, h.what, h.mnt, timeout)
		}
	}
}

// stop waits for a helper whose mount is gone to exit, and ends it by
// SIGTERM, then SIGKILL, if it does not.
func (h *helper) stop() {
	select {
	case <-h.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
		return
	case <-time.After(2 * time.Second):
	}
	h.kill()
}

func (h *helper) kill() {
	_ = h.cmd.Process.Kill()
	<-h.done
}

// tailBuffer keeps the last lines written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

const tailMax = 2048

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b.Write(p)
	if t.b.Len() > tailMax {
		rest := t.b.Bytes()[t.b.Len()-tailMax:]
		t.b = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return len(p), nil
}

// String is the kept output on one line.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(strings.Fields(strings.ReplaceAll(t.b.String(), "\n", "; ")), " ")
}

// prefixWriter writes each line with a prefix.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	part   []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.part = append(p.part, b...)
	for {
		i := bytes.IndexByte(p.part, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.part[:i])
		p.part = p.part[i+1:]
	}
	return len(b), nil
}

// Prefix returns a writer that writes each line to w after prefix
// ("backy-nbd: "), for the messages of Mount and Unmount.
func Prefix(w io.Writer, prefix string) io.Writer { return &prefixWriter{w: w, prefix: prefix} }

// closeOnExec marks every open file descriptor close-on-exec. go-fuse
// opens /dev/fuse without it: a fuse2fs that inherited the image
// directory's connection would keep it alive after backy-nbd died, and
// wait for its own reads from it forever.
func closeOnExec() {
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, de := range des {
		if fd, err := strconv.Atoi(de.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
