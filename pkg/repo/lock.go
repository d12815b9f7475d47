package repo

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/backy/backy/pkg/flock"
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
	// cookie names a RADOS lock's holder.
	cookie string
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
	if !shared {
		if err := d.owned(); err != nil {
			return nil, err
		}
	}
	l, pid, err := flock.Take(filepath.Join(d.dir, "locks", name), shared, timeout)
	if errors.Is(err, flock.ErrHeld) {
		holder := ""
		if pid != 0 {
			holder = fmt.Sprintf(" (by pid %d)", pid)
		}
		return nil, fmt.Errorf("%w: %s lock of %s is held%s", ErrBusy, name, d.dir, holder)
	}
	if err != nil {
		return nil, fmt.Errorf("repo: lock: %w", err)
	}
	return &Lock{release: l.Unlock}, nil
}
