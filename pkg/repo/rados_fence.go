//go:build librbd

package repo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/ceph/go-ceph/rados"
	"golang.org/x/sys/unix"
)

// Fencing: a store checks its lock's lease by its own clock before it
// publishes (radosLock.held), but the publish operation may reach the OSD
// later: queued in librados while the client is cut off from the
// cluster, and resent after the heal, when the lease has expired and
// another store of the job may have taken the lock. So the operation that
// publishes a revision carries cls_lock's assert_locked of the store lock:
// the OSD applies it only if this client instance still holds the lock
// with this cookie at that moment (expired lockers are dropped first), and
// otherwise fails the whole operation with EBUSY, so nothing of it is
// applied.

// ClsLockType (src/cls/lock/cls_lock_types.h).
const (
	clsLockExclusive = 1
	clsLockShared    = 2
)

// encodeLockAssert encodes cls_lock_assert_op (src/cls/lock/cls_lock_ops.h)
// the way Ceph's encode does: ENCODE_START(1, 1) (struct_v, struct_compat,
// u32 length of what follows), then name, type (u8), cookie and tag;
// strings are a u32 length and the bytes; all little-endian.
func encodeLockAssert(name string, typ uint8, cookie, tag string) []byte {
	n := 4 + len(name) + 1 + 4 + len(cookie) + 4 + len(tag)
	b := make([]byte, 0, 6+n)
	b = append(b, 1, 1)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	str := func(s string) {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	str(name)
	b = append(b, typ)
	str(cookie)
	str(tag)
	return b
}

// storeFence remembers the cookie of the exclusive store lock this
// backend holds, "" while it holds none.
type storeFence struct {
	mu     sync.Mutex
	cookie string
}

func (f *storeFence) set(cookie string) {
	f.mu.Lock()
	f.cookie = cookie
	f.mu.Unlock()
}

// assert adds assert_locked of the store lock to op if this backend holds
// it (a librados exclusive lock has the empty tag); it reports whether it
// did.
func (f *storeFence) assert(op *rados.WriteOp) bool {
	f.mu.Lock()
	cookie := f.cookie
	f.mu.Unlock()
	if cookie == "" {
		return false
	}
	op.Exec("lock", "assert_locked", encodeLockAssert(LockStore, clsLockExclusive, cookie, ""))
	return true
}

// lockRefused reports whether a fenced operation failed its
// assert_locked (EBUSY: the lock has no live locker with this client and
// cookie).
func lockRefused(err error) bool {
	var ce interface{ ErrorCode() int }
	return errors.As(err, &ce) && ce.ErrorCode() == -int(unix.EBUSY)
}

// lostStoreLock is the error of a fenced operation the OSD refused: the
// store's lost-lock error (ErrBusy), as radosLock.held reports it.
func (b *radosBackend) lostStoreLock(what string) error {
	return fmt.Errorf("%w: %s lock of %s was lost before the cluster applied %s (the lease had expired or another holder took it)",
		ErrBusy, LockStore, b.loc.String(), what)
}
