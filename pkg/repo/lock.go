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

// The repository has three locks:
//
//	store:  exclusive while a backy-store writes a revision (one at a time)
//	chunks: shared by everything that reads or adds chunks, exclusive for purge
//	meta:   exclusive, briefly, around every change of revision metadata
//
// In a directory each is an flock on a file under locks/, released by the
// kernel when a process dies; in RADOS each is an object lock with a lease
// that its holder renews and that runs out when the holder dies. Either
// way a crash never leaves a repository locked for good.
const (
	LockStore  = "store"
	LockChunks = "chunks"
	LockMeta   = "meta"
)

// Lock is a held lock.
type Lock struct {
	release func() error
	// held reports an error once the lock may have been lost (a lease
	// that could not be renewed in time); nil for an flock.
	held func() error
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.release == nil {
		return nil
	}
	err := l.release()
	l.release = nil
	return err
}

// Held reports an error when the lock may have been lost: a RADOS lease
// that could not be renewed before it ran out. Work that must only be
// done under the lock (publishing a revision) checks it last.
func (l *Lock) Held() error {
	if l == nil || l.held == nil {
		return nil
	}
	return l.held()
}

// TryLock takes the named lock without waiting; ErrBusy if another process
// holds it.
func (r *Repo) TryLock(name string, shared bool) (*Lock, error) {
	return r.b.Lock(name, shared, 0)
}

// WaitLock takes the named lock, waiting at most timeout.
func (r *Repo) WaitLock(name string, shared bool, timeout time.Duration) (*Lock, error) {
	return r.b.Lock(name, shared, timeout)
}

// flock takes an flock on the file name under the directory backend's
// locks/.
func (d *dirBackend) flock(name string, shared bool, timeout time.Duration) (*Lock, error) {
	path := filepath.Join(d.dir, "locks", name)
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
			return nil, fmt.Errorf("%w: %s lock of %s is held%s", ErrBusy, name, d.dir, holder)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !shared {
		// Record who holds it, for the message another process prints.
		_ = f.Truncate(0)
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{release: func() error {
		if !shared {
			// Forget our pid, so that the next "held by" message does
			// not name a process that is long gone.
			_ = f.Truncate(0)
		}
		return f.Close()
	}}, nil
}

func lockHolder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	if pid := strings.TrimSpace(string(b[:n])); pid != "" {
		return " (by pid " + pid + ")"
	}
	return ""
}
