package powercut

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func mustWrite(t *testing.T, path string, data []byte, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func fsyncs(t *testing.T, s *Sim, rel string) int {
	t.Helper()
	n, err := s.Fsyncs(rel)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The kernel answers FSYNC and FSYNCDIR itself for a FUSE file system that
// says ENOSYS; these reach the simulator, counted per file.
func TestFsyncsReachTheSimulator(t *testing.T) {
	s := Mount(t, t.TempDir())
	d := s.Dir()
	if err := os.Mkdir(filepath.Join(d, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(d, "sub", "synced"), []byte("a"), true)
	mustWrite(t, filepath.Join(d, "sub", "unsynced"), []byte("b"), false)
	syncDir(t, filepath.Join(d, "sub"))
	syncDir(t, filepath.Join(d, "sub"))
	if n := fsyncs(t, s, "sub/synced"); n != 1 {
		t.Errorf("fsyncs of sub/synced = %d, want 1", n)
	}
	if n := fsyncs(t, s, "sub/unsynced"); n != 0 {
		t.Errorf("fsyncs of sub/unsynced = %d, want 0", n)
	}
	if n := fsyncs(t, s, "sub"); n != 2 {
		t.Errorf("fsyncdirs of sub = %d, want 2", n)
	}
	if n := fsyncs(t, s, ""); n != 0 {
		t.Errorf("fsyncdirs of the root = %d, want 0", n)
	}
	// The count follows the file through a rename.
	if err := os.Rename(filepath.Join(d, "sub", "synced"), filepath.Join(d, "moved")); err != nil {
		t.Fatal(err)
	}
	if n := fsyncs(t, s, "moved"); n != 1 {
		t.Errorf("fsyncs of moved = %d, want 1", n)
	}
	if _, err := s.Fsyncs("sub/synced"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Fsyncs of a renamed-away name: %v, want ErrNotFound", err)
	}
}

// A rename whose target directory was not synced is undone by a strict
// cut: the old file is back, whole; once the directory is synced, the new.
func TestRenameNeedsTargetDirSync(t *testing.T) {
	backing := t.TempDir()
	if err := os.WriteFile(filepath.Join(backing, "f"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := Mount(t, backing)
	d := s.Dir()
	mustWrite(t, filepath.Join(d, "f.tmp"), []byte("new"), true)
	if err := os.Rename(filepath.Join(d, "f.tmp"), filepath.Join(d, "f")); err != nil {
		t.Fatal(err)
	}
	beforeSync := s.Ops()
	syncDir(t, d)
	log := s.Log()
	rng := rand.New(rand.NewPCG(1, 2))

	st := log.Crash(beforeSync, Strict, rng)
	if b, ok := st.File("f"); !ok || string(b) != "old" {
		t.Errorf("strict, before the directory sync: f = %q, %v; want the old file", b, ok)
	}
	if st.Exists("f.tmp") {
		t.Errorf("strict: f.tmp exists, but its creation was never made durable")
	}
	if !strings.Contains(st.String(), "rename f.tmp -> f undone") {
		t.Errorf("the state does not name the undone rename: %s", st)
	}
	st = log.Crash(beforeSync, Everything, rng)
	if b, _ := st.File("f"); string(b) != "new" {
		t.Errorf("everything: f = %q, want new", b)
	}
	for _, v := range Variants {
		st := log.Crash(len(log.Ops), v, rng)
		if b, _ := st.File("f"); string(b) != "new" {
			t.Errorf("%s, after the directory sync: f = %q, want new", v, b)
		}
	}
}

// A file synced in a new directory that was synced itself is still lost
// while the new directory's own entry is not durable (the chunks/xx/ case).
func TestNewDirNeedsParentSync(t *testing.T) {
	s := Mount(t, t.TempDir())
	d := s.Dir()
	if err := os.Mkdir(filepath.Join(d, "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(d, "new", "f"), []byte("data"), true)
	syncDir(t, filepath.Join(d, "new"))
	n := s.Ops()
	syncDir(t, d)
	log := s.Log()
	rng := rand.New(rand.NewPCG(1, 2))
	if st := log.Crash(n, Strict, rng); st.Exists("new/f") || st.Exists("new") {
		t.Errorf("strict: new/f survived without a sync of its directory's parent")
	}
	if st := log.Crash(n+1, Strict, rng); !st.Exists("new/f") {
		t.Errorf("strict: new/f lost after every sync")
	}
}

// Unsynced data may be lost, or the size may survive with zeros or garbage.
func TestUnsyncedData(t *testing.T) {
	s := Mount(t, t.TempDir())
	d := s.Dir()
	data := bytes.Repeat([]byte("x"), 10000)
	mustWrite(t, filepath.Join(d, "f"), data, false)
	syncDir(t, d)
	log := s.Log()
	rng := rand.New(rand.NewPCG(1, 2))
	cases := map[Variant]func([]byte) bool{
		Strict:      func(b []byte) bool { return len(b) == 0 },
		MetaZero:    func(b []byte) bool { return bytes.Equal(b, make([]byte, len(data))) },
		MetaGarbage: func(b []byte) bool { return len(b) == len(data) && !bytes.Equal(b, data) },
		Everything:  func(b []byte) bool { return bytes.Equal(b, data) },
	}
	for v, ok := range cases {
		st := log.Crash(len(log.Ops), v, rng)
		b, exists := st.File("f")
		if !exists || !ok(b) {
			t.Errorf("%s: f exists %v, %d bytes starting %q", v, exists, len(b), b[:min(len(b), 8)])
		}
	}
}

// Cutting the power live: every later operation fails with EIO, and the
// log ends at the cut.
func TestCutAfter(t *testing.T) {
	s := Mount(t, t.TempDir())
	d := s.Dir()
	mustWrite(t, filepath.Join(d, "a"), []byte("a"), true)
	n := s.Ops()
	s.CutAfter(n + 2) // create b, write b
	f, err := os.Create(filepath.Join(d, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("fsync after the cut: %v, want EIO", err)
	}
	f.Close()
	if err := os.Mkdir(filepath.Join(d, "c"), 0o755); !errors.Is(err, syscall.EIO) {
		t.Errorf("mkdir after the cut: %v, want EIO", err)
	}
	if got := s.Ops(); got != n+2 {
		t.Errorf("%d operations recorded, want %d", got, n+2)
	}
}

// The fault hook fails chosen operations without performing them.
func TestFail(t *testing.T) {
	s := Mount(t, t.TempDir())
	d := s.Dir()
	s.Fail(func(op Op) bool { return op.Kind == FsyncDir && op.Path == "" })
	d0, err := os.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := d0.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("failed fsyncdir: %v, want EIO", err)
	}
	d0.Close()
	s.Fail(nil)
	syncDir(t, d)
	if n := fsyncs(t, s, ""); n != 1 {
		t.Errorf("fsyncdirs of the root = %d, want 1 (the failed one does not count)", n)
	}
}

// With every change kept, the crash state is the backing directory: the
// log and the model miss nothing the file system did.
func TestEverythingIsTheBackingDirectory(t *testing.T) {
	backing := t.TempDir()
	if err := os.MkdirAll(filepath.Join(backing, "pre", "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(backing, "pre", "deep", "old"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := Mount(t, backing)
	d := s.Dir()
	rng := rand.New(rand.NewPCG(3, 4))
	names := []string{"a", "b", "c", "pre/x", "pre/deep/y"}
	for i := 0; i < 200; i++ {
		p := filepath.Join(d, names[rng.IntN(len(names))])
		q := filepath.Join(d, names[rng.IntN(len(names))])
		switch rng.IntN(5) {
		case 0, 1:
			f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, rng.IntN(3000))
			for j := range buf {
				buf[j] = byte(rng.Uint32())
			}
			if _, err := f.WriteAt(buf, int64(rng.IntN(5000))); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(3) == 0 {
				f.Truncate(int64(rng.IntN(4000)))
			}
			if rng.IntN(2) == 0 {
				f.Sync()
			}
			f.Close()
		case 2:
			os.Rename(p, q)
		case 3:
			os.Remove(p)
		case 4:
			syncDir(t, filepath.Dir(p))
		}
	}
	out := filepath.Join(t.TempDir(), "crash")
	if err := s.Log().Crash(s.Ops(), Everything, rng).Materialize(out); err != nil {
		t.Fatal(err)
	}
	if a, b := treeOf(t, backing), treeOf(t, out); a != b {
		t.Errorf("crash state with every change kept differs from the backing directory:\n%s\n---\n%s", a, b)
	}
}

func treeOf(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			b.WriteString(rel + "/\n")
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %x\n", rel, len(data), sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A mount still busy when its test ends (a file left open by a failed
// test) is detached lazily; Unmount returns once the file is closed and
// leaves no mount behind.
func TestUnmountBusy(t *testing.T) {
	s := Mount(t, t.TempDir())
	f, err := os.Create(filepath.Join(s.Dir(), "open"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(time.Second) // longer than the retries of a plain unmount
		f.Close()
	}()
	t0 := time.Now()
	if err := s.Unmount(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < time.Second {
		t.Errorf("Unmount returned after %v, before the open file was closed", d)
	}
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), s.Dir()) {
		t.Errorf("%s is still mounted", s.Dir())
	}
}

// The newest-only state keeps the newest unsynced directory change alone:
// code must not rely on an earlier change reaching the disk first.
func TestNewestOnly(t *testing.T) {
	s := Mount(t, t.TempDir())
	d := s.Dir()
	mustWrite(t, filepath.Join(d, "a"), []byte("a"), true)
	mustWrite(t, filepath.Join(d, "b"), []byte("b"), true)
	log := s.Log()
	st := log.Crash(len(log.Ops), NewestOnly, rand.New(rand.NewPCG(1, 2)))
	if st.Exists("a") || !st.Exists("b") {
		t.Errorf("newest-only: a exists %v, b exists %v; want only b", st.Exists("a"), st.Exists("b"))
	}
	if st.MetaKept != 1 || st.MetaUndone != 1 {
		t.Errorf("newest-only: %d kept, %d undone; want 1 and 1", st.MetaKept, st.MetaUndone)
	}
}
