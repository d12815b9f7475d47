package flock

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// flock conflicts between open files, so one process can play both sides.
func TestTake(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	ex, _, err := Take(path, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, shared := range []bool{false, true} {
		if _, pid, err := Take(path, shared, 0); !errors.Is(err, ErrHeld) || pid != os.Getpid() {
			t.Errorf("shared=%v while held exclusively: pid %d, %v; want ErrHeld and pid %d", shared, pid, err, os.Getpid())
		}
	}
	start := time.Now()
	if _, _, err := Take(path, false, 200*time.Millisecond); !errors.Is(err, ErrHeld) || time.Since(start) < 200*time.Millisecond {
		t.Errorf("waiting Take: %v after %s", err, time.Since(start))
	}
	go func() { time.Sleep(100 * time.Millisecond); ex.Unlock() }()
	sh1, _, err := Take(path, true, 5*time.Second)
	if err != nil {
		t.Fatalf("Take after Unlock: %v", err)
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("the released lock still names a pid: %q", b)
	}
	sh2, _, err := Take(path, true, 0)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	if _, pid, err := Take(path, false, 0); !errors.Is(err, ErrHeld) || pid != 0 {
		t.Errorf("exclusive while shared: pid %d, %v; want ErrHeld, no pid", pid, err)
	}
	sh1.Unlock()
	sh2.Unlock()
	if _, _, err := Take(filepath.Join(path, "x"), false, 0); err == nil || errors.Is(err, ErrHeld) {
		t.Errorf("lock under a file: %v", err)
	}
}

// TestSharedOpensReadOnly: a shared lock on an existing file holds it open
// read-only (so it works on a read-only mount, which
// cmd/backy-restore's readonly.txtar proves); one on a missing file makes it.
func TestSharedOpensReadOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lock")
	for i, want := range []int{unix.O_RDWR, unix.O_RDONLY} {
		l, _, err := Take(path, true, 0)
		if err != nil {
			t.Fatal(err)
		}
		flags, err := unix.FcntlInt(l.f.Fd(), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := flags & unix.O_ACCMODE; got != want {
			t.Errorf("take %d: access mode %#o, want %#o", i+1, got, want)
		}
		l.Unlock()
	}
}
