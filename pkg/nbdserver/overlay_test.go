package nbdserver

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestOverlayModel writes and reads random ranges (block-aligned or not,
// touching the short last block) and compares with a plain byte slice.
func TestOverlayModel(t *testing.T) {
	dir := t.TempDir()
	const size = 1<<20 + 1000
	path, base := makeImage(t, dir, "base", size, 7)
	orig := bytes.Clone(base)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ov, err := newOverlay(dir, f, size)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("overlay file not unlinked: %d entries in %s", len(ents), dir)
	}
	model := bytes.Clone(base)
	r := rand.New(rand.NewPCG(1, 2))
	span := func() (int64, int) {
		off := r.Int64N(size)
		if r.IntN(3) == 0 {
			off &^= overlayBlock - 1
		}
		n := 1 + r.IntN(3*overlayBlock)
		if r.IntN(3) == 0 {
			n = overlayBlock * (1 + r.IntN(4))
		}
		return off, int(min(int64(n), size-off))
	}
	for i := range 2000 {
		off, n := span()
		if i%2 == 0 {
			p := make([]byte, n)
			for j := range p {
				p[j] = byte(i)
			}
			if err := ov.WriteAt(p, off); err != nil {
				t.Fatal(err)
			}
			copy(model[off:], p)
			continue
		}
		got := make([]byte, n)
		if err := ov.ReadAt(got, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, model[off:off+int64(n)]) {
			t.Fatalf("step %d: read %d bytes at %d differs at %d", i, n, off, firstDiff(got, model[off:]))
		}
	}
	all := make([]byte, size)
	if err := ov.ReadAt(all, 0); err != nil || !bytes.Equal(all, model) {
		t.Fatalf("whole image differs from model (err %v)", err)
	}
	if err := ov.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, orig) {
		t.Fatal("overlay changed the base image")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "backy-nbd-cow-*")); len(m) != 0 {
		t.Errorf("overlay files left behind: %v", m)
	}
}

// TestOverlayBaseError: a partial-block write over an unreadable base block
// fails rather than filling the block with guesses.
func TestOverlayBaseError(t *testing.T) {
	dir := t.TempDir()
	path, _ := makeImage(t, dir, "base", 64<<10, 3)
	cat := newFileCatalog()
	cat.add("x", path, "")
	cat.fault("x", 8192, 1)
	exp, err := cat.Open("x")
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	ov, err := newOverlay(dir, exp, exp.Size())
	if err != nil {
		t.Fatal(err)
	}
	defer ov.Close()
	if err := ov.WriteAt([]byte("hi"), 8200); err == nil {
		t.Fatal("partial write over a bad base block succeeded")
	}
	if err := ov.WriteAt(make([]byte, overlayBlock), 8192); err != nil {
		t.Fatalf("whole-block write over a bad base block: %v", err)
	}
	if err := ov.ReadAt(make([]byte, 100), 8192); err != nil {
		t.Fatalf("read of the overwritten block: %v", err)
	}
}
