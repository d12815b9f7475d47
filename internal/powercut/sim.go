package powercut

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Sim is a mounted power-cut simulator.
type Sim struct {
	root   string // the backing directory
	mnt    string // the mount point
	server *fuse.Server

	mu       sync.Mutex
	start    *tree // the backing directory as mounted (durable)
	live     *tree // its shape now (no file data)
	nextIno  uint64
	ops      []Op
	fsyncs   map[uint64]int
	cutAfter int // lose power once this many operations are recorded (0: never)
	dead     bool
	fail     func(Op) bool
}

// Mount mounts a simulator over backing at a fresh mount point and
// unmounts it when the test ends, whether it passed or not. It needs
// /dev/fuse and the right to mount (root); without them it fails the test,
// since the power-cut tests must not pass by being skipped.
func Mount(t testing.TB, backing string) *Sim {
	t.Helper()
	start, next, err := scan(backing)
	if err != nil {
		t.Fatalf("powercut: scan %s: %v", backing, err)
	}
	s := &Sim{
		root: backing, mnt: t.TempDir(), start: start, live: start.clone(),
		nextIno: next, fsyncs: map[uint64]int{},
	}
	for _, n := range s.live.nodes {
		n.data = nil // the live tree keeps shapes only
	}
	sec, zero := time.Second, time.Duration(0)
	opts := &fs.Options{
		MountOptions: fuse.MountOptions{
			FsName: "backy-powercut", Name: "powercut",
			DisableXAttrs: true, MaxWrite: 1 << 20, DirectMount: true,
		},
		EntryTimeout: &sec, AttrTimeout: &sec, NegativeTimeout: &zero,
		RootStableAttr: &fs.StableAttr{Ino: rootIno, Mode: syscall.S_IFDIR},
	}
	s.server, err = fs.Mount(s.mnt, &node{sim: s}, opts)
	if err != nil {
		t.Fatalf("powercut: mount (needs /dev/fuse and root): %v", err)
	}
	t.Cleanup(func() {
		if err := s.Unmount(); err != nil {
			t.Errorf("powercut: %v", err)
		}
	})
	return s
}

// Dir is the mount point: run the code under test here.
func (s *Sim) Dir() string { return s.mnt }

// Unmount unmounts the simulator (the test's cleanup does it too). A mount
// still busy is detached lazily; the server is waited for at most ten
// seconds, so that a failed test never leaves a hung process or a stale
// mount behind.
func (s *Sim) Unmount() error {
	if s.server == nil {
		return nil
	}
	server := s.server
	s.server = nil
	if err := server.Unmount(); err == nil {
		return nil
	}
	// Busy (a file left open by a failed test): detach it lazily.
	out, err := exec.Command("fusermount3", "-uz", s.mnt).CombinedOutput()
	if err != nil {
		if err := syscall.Unmount(s.mnt, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: fusermount3 -uz: %v: %s; umount -l: %w", s.mnt, err, out, err)
		}
	}
	done := make(chan struct{})
	go func() { server.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("unmount %s: detached, but the FUSE server did not stop within 10s (a file still open?)", s.mnt)
	}
}

// backing is the path of inode id in the backing directory. Call with
// s.mu held.
func (s *Sim) backing(id uint64) string {
	return filepath.Join(s.root, s.live.path(id))
}

func (s *Sim) isDead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

// admit names an operation about to happen and asks the fault hook (Fail)
// whether it fails instead. Call with s.mu held.
func (s *Sim) admit(op *Op) syscall.Errno {
	switch op.Kind {
	case Create, Mkdir:
		op.Path = filepath.Join(s.live.path(op.Parent), op.Name)
	case Rename:
		op.Path = s.live.path(op.Ino)
		op.NewPath = filepath.Join(s.live.path(op.NewParent), op.NewName)
	default:
		op.Path = s.live.path(op.Ino)
	}
	if s.fail != nil && s.fail(*op) {
		return syscall.EIO
	}
	return 0
}

// record appends a completed operation to the log and keeps the live tree
// in step. Call with s.mu held.
func (s *Sim) record(op Op) {
	switch op.Kind {
	case Create, Mkdir:
		n := &inode{dir: op.Kind == Mkdir, mode: op.Mode}
		if n.dir {
			n.entries = map[string]uint64{}
		}
		s.live.nodes[op.Ino] = n
		s.live.link(op.Parent, op.Name, op.Ino)
	case Unlink, Rmdir:
		s.live.unlink(op.Parent, op.Name, op.Ino)
	case Rename:
		s.live.link(op.NewParent, op.NewName, op.Ino)
	case Fsync, FsyncDir:
		s.fsyncs[op.Ino]++
	}
	s.ops = append(s.ops, op)
	if s.cutAfter > 0 && len(s.ops) >= s.cutAfter {
		s.dead = true
	}
}

// Ops is how many operations were recorded so far.
func (s *Sim) Ops() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ops)
}

// Log returns the run so far.
func (s *Sim) Log() *Log {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &Log{start: s.start, Ops: s.ops[:len(s.ops):len(s.ops)]}
}

// CutAfter makes the power go once n operations are recorded (at once if
// there are that many already): every later operation, reads included,
// fails with EIO. Log().Crash(n, ...) then gives the states it may leave.
func (s *Sim) CutAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutAfter = n
	if len(s.ops) >= n {
		s.dead = true
	}
}

// Dead reports whether the power went (CutAfter, Cut).
func (s *Sim) Dead() bool { return s.isDead() }

// Cut makes the power go now; it returns how many operations happened.
func (s *Sim) Cut() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = true
	return len(s.ops)
}

// Fail makes every operation for which fn returns true fail with EIO
// without happening (a failing disk, or a process dying at that point);
// nil turns it off.
func (s *Sim) Fail(fn func(Op) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fn
}

// ErrNotFound is returned by Fsyncs for a path that does not exist.
var ErrNotFound = errors.New("powercut: no such file")

// Fsyncs returns how many FSYNC (file) or FSYNCDIR (directory) requests
// reached the simulator for the file or directory now at rel (relative to
// the mount point), under whatever names it had.
func (s *Sim) Fsyncs(rel string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.live.lookup(filepath.ToSlash(rel))
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, rel)
	}
	return s.fsyncs[id], nil
}

// Files lists the files under rel (relative to the mount point) as they
// are now, relative to the mount point.
func (s *Sim) Files(rel string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.live.lookup(filepath.ToSlash(rel))
	if !ok {
		return nil
	}
	var out []string
	var walk func(id uint64, p string)
	walk = func(id uint64, p string) {
		n := s.live.nodes[id]
		if !n.dir {
			out = append(out, p)
			return
		}
		for name, c := range n.entries {
			walk(c, filepath.Join(p, name))
		}
	}
	walk(id, filepath.Clean(rel))
	return out
}
