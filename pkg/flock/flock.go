// Package flock is backy's one file lock: flock(2) on a file, shared or
// exclusive, waiting up to a timeout, with the pid of an exclusive holder
// written into the file for the message a process that finds it held
// prints. The kernel drops the lock when its process dies, however it
// dies, so a crash never leaves anything locked. pkg/repo locks a
// repository directory with it, pkg/daemon the base directory.
package flock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/backy/backy/pkg/exitcode"

	"golang.org/x/sys/unix"
)

// ErrHeld is returned by Take when another process holds the lock.
var ErrHeld = exitcode.New(exitcode.Busy, "flock: held by another process")

// retry is how often Take tries again while it waits.
const retry = 50 * time.Millisecond

// Lock is a held lock.
type Lock struct {
	f      *os.File
	shared bool
}

// Take locks the file at path (created if need be), waiting at most
// timeout (0: not at all). When another process still holds it, Take
// returns ErrHeld and the pid an exclusive holder wrote (0 when none).
// A shared lock opens an existing file read-only, so that readers work on
// a read-only mount or snapshot of what they lock.
func Take(path string, shared bool, timeout time.Duration) (*Lock, int, error) {
	f, err := open(path, shared)
	if err != nil {
		return nil, 0, err
	}
	how := unix.LOCK_EX
	if shared {
		how = unix.LOCK_SH
	}
	deadline := time.Now().Add(timeout)
	for {
		err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, 0, fmt.Errorf("flock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			pid := holder(f)
			f.Close()
			return nil, pid, ErrHeld
		}
		time.Sleep(retry)
	}
	if !shared {
		// Record who holds it; the lock is the flock, the pid is for people.
		_ = f.Truncate(0)
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f, shared: shared}, 0, nil
}

// open opens the lock file, never through a symbolic link: whoever could
// put one there would have the exclusive holder truncate what it names.
func open(path string, shared bool) (*os.File, error) {
	if shared {
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if !errors.Is(err, os.ErrNotExist) {
			return f, err
		}
	}
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
}

// Unlock releases the lock. An exclusive holder first forgets its pid, so
// that the next "held by" message does not name a process long gone.
func (l *Lock) Unlock() error {
	if !l.shared {
		_ = l.f.Truncate(0)
	}
	return l.f.Close()
}

// holder is the pid written in f, 0 if none.
func holder(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	return pid
}
