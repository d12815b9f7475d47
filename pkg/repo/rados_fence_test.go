//go:build librbd

package repo

import (
	"bytes"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/backy/backy/pkg/exitcode"
)

// The instance of src/cls/lock/cls_lock_ops.cc's generate_test_instances
// (name "name", exclusive, cookie "cookie", tag "tag"), encoded by hand
// from cls_lock_assert_op::encode: ENCODE_START(1, 1) then the fields.
func TestEncodeLockAssert(t *testing.T) {
	want := []byte{
		1, 1, // struct_v, struct_compat
		26, 0, 0, 0, // length of what follows: 4+4 + 1 + 4+6 + 4+3
		4, 0, 0, 0, 'n', 'a', 'm', 'e',
		1, // LOCK_EXCLUSIVE
		6, 0, 0, 0, 'c', 'o', 'o', 'k', 'i', 'e',
		3, 0, 0, 0, 't', 'a', 'g',
	}
	if got := encodeLockAssert("name", clsLockExclusive, "cookie", "tag"); !bytes.Equal(got, want) {
		t.Fatalf("got  % x\nwant % x", got, want)
	}
	want = []byte{1, 1, 19, 0, 0, 0, 5, 0, 0, 0, 's', 't', 'o', 'r', 'e', 2, 1, 0, 0, 0, 'c', 0, 0, 0, 0}
	if got := encodeLockAssert("store", clsLockShared, "c", ""); !bytes.Equal(got, want) {
		t.Fatalf("got  % x\nwant % x", got, want)
	}
}

// A store whose lock was broken, and taken by another store, before its
// publish reaches the OSD: the OSD refuses the publish (assert_locked in
// the same operation), with the store's lost-lock error, and the revision
// does not appear. The publish goes to Commit directly, past the store's
// own check of its lease (Lock.Held), as a publish queued in librados
// while the client was cut off does.
func TestRadosPublishFenced(t *testing.T) {
	conf, pool := radosPool(t)
	a := radosRepo(t, conf, pool, "a")
	other := radosAgain(t, conf, a)

	// held: the fenced publish goes through (the OSD decodes the assert)
	l, err := a.TryLock(LockStore, false)
	if err != nil {
		t.Fatal(err)
	}
	hs := putChunks(t, a, 1, 2)
	kept := commitRev(t, a, hs...)

	// broken behind the holder's back and taken by another store
	rb := a.b.(*radosBackend)
	info, err := rb.io.ListLockers(rb.jobObj(), LockStore)
	if err != nil || len(info.Clients) != 1 {
		t.Fatalf("lockers %+v, %v", info, err)
	}
	if _, err := rb.io.BreakLock(rb.jobObj(), LockStore, info.Clients[0], info.Cookies[0]); err != nil {
		t.Fatal(err)
	}
	l2, err := other.TryLock(LockStore, false)
	if err != nil {
		t.Fatal(err)
	}
	before, err := other.b.RevisionIDs()
	if err != nil {
		t.Fatal(err)
	}
	ix := NewIndex(2 * ChunkSize)
	copy(ix.Hashes, hs)
	rev := &Revision{ID: NewRevisionID(), Time: kept.Time, Kind: "full", Trust: Trusted, Size: ix.Size}
	err = a.Commit(rev, ix)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "store lock of "+a.Location()+" was lost before the cluster applied the publish of revision "+rev.ID) {
		t.Fatalf("publish after the lock was taken: %v", err)
	}
	if code, _ := exitcode.Of(err); code != exitcode.Busy {
		t.Fatalf("exit code %d, want %d", code, exitcode.Busy)
	}
	after, err := other.b.RevisionIDs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, after) || !slices.Equal(after, []string{kept.ID}) {
		t.Fatalf("revisions %v, then %v; want only %s", before, after, kept.ID)
	}
	if _, err := other.b.ReadMeta(rev.ID); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("metadata of the refused revision: %v", err)
	}
	// the refused index is a leftover (still pending), for purge
	left, err := other.FindLeftovers()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(left.Indexes, rev.ID) {
		t.Fatalf("leftovers %+v lack the refused index %s", left, rev.ID)
	}
	l.Unlock()

	// gone without a taker (as an expired lease is): refused as well
	l2r := other.b.(*radosBackend)
	info, err = l2r.io.ListLockers(l2r.jobObj(), LockStore)
	if err != nil || len(info.Clients) != 1 {
		t.Fatalf("lockers %+v, %v", info, err)
	}
	if _, err := l2r.io.BreakLock(l2r.jobObj(), LockStore, info.Clients[0], info.Cookies[0]); err != nil {
		t.Fatal(err)
	}
	rev.ID = NewRevisionID()
	if err := other.Commit(rev, ix); !errors.Is(err, ErrBusy) {
		t.Fatalf("publish after the lock was broken: %v", err)
	}
	if ids, err := other.b.RevisionIDs(); err != nil || !slices.Equal(ids, []string{kept.ID}) {
		t.Fatalf("revisions %v, %v; want only %s", ids, err, kept.ID)
	}
	l2.Unlock()

	// without the store lock (a metadata change under the meta lock) no
	// assert is sent
	kept.Tags = []string{"t"}
	if err := other.SaveRevision(kept); err != nil {
		t.Fatal(err)
	}
}
