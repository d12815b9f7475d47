package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The repository has three locks, each an flock on a file under locks/:
//
//	store:  exclusive while a backy-store writes a revision (one at a time)
//	chunks: shared by everything that reads or adds chunks, exclusive for purge
//	meta:   exclusive, briefly, around every change of revision metadata
//
// Locks are released by the kernel when a process dies, so a crash never
// leaves a repository locked.
const (
	LockStore  = "store"
	LockChunks = "chunks"
	LockMeta   = "meta"
)

// Lock is a held flock.
type Lock struct {
	f         *os.File
	exclusive bool
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	if l.exclusive {
		// Forget our pid, so that the next "held by" message does not
		// name a process that is long gone.
		_ = l.f.Truncate(0)
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// TryLock takes the named lock without waiting; ErrBusy if another process
// holds it.
func (r *Repo) TryLock(name string, shared bool) (*Lock, error) {
	return r.lock(name, shared, 0)
}

// WaitLock takes the named lock, waiting at most timeout.
func (r *Repo) WaitLock(name string, shared bool, timeout time.Duration) (*Lock, error) {
	return r.lock(name, shared, timeout)
}

func (r *Repo) lock(name string, shared bool, timeout time.Duration) (*Lock, error) {
	path := filepath.Join(r.Dir, "locks", name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("repo: lock: %w", err)
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
			return nil, fmt.Errorf("repo: lock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			holder := lockHolder(f)
			f.Close()
			return nil, fmt.Errorf("%w: %s lock of %s is held%s", ErrBusy, name, r.Dir, holder)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !shared {
		// Record who holds it, for the message another process prints.
		_ = f.Truncate(0)
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f, exclusive: !shared}, nil
}

func lockHolder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	if pid := strings.TrimSpace(string(b[:n])); pid != "" {
		return " (by pid " + pid + ")"
	}
	return ""
}
