package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/restore"
	"golang.org/x/sys/unix"
)

// pagedImage is three chunks and a tail of tail bytes: random bytes with a
// run of zero pages inside chunk 0, chunk 1 all zero, chunk 2 and the tail
// random, so a restore meets every kind of write there is.
func pagedImage(tail int) []byte {
	img := make([]byte, 3*chunk+tail)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range img {
		img[i] = byte(rng.Uint32() | 1)
	}
	clear(img[10*4096 : 20*4096])
	clear(img[chunk : 2*chunk])
	return img
}

func TestToPathHolesAndTail(t *testing.T) {
	img := pagedImage(5000)
	r, rev, ix := storeImage(t, img)
	for _, workers := range []int{0, 1, 3} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.img")
			// An existing target is replaced, never read or patched.
			if err := os.WriteFile(out, bytes.Repeat([]byte{0xff}, 3*chunk), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := restore.ToPath(context.Background(), r, rev, ix, out, restore.Options{Workers: workers}); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, img) {
				t.Fatalf("restored %d bytes differ from the %d-byte image", len(got), len(img))
			}
			for _, hole := range []int64{10 * 4096, chunk} {
				if next := seekData(t, out, hole); next <= hole {
					t.Errorf("offset %d holds data, want a hole (next data at %d)", hole, next)
				}
			}
			if next := seekData(t, out, 9*4096); next != 9*4096 {
				t.Errorf("next data after offset %d is at %d, want it there", 9*4096, next)
			}
			leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".out.img.backy-*"))
			if len(leftovers) != 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}
		})
	}
}

// seekData returns SEEK_DATA from off in the file at path.
func seekData(t *testing.T, path string, off int64) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	if err != nil {
		t.Fatalf("SEEK_DATA %d: %v", off, err)
	}
	return n
}

func TestToPathCorruptChunkLeavesTargetAlone(t *testing.T) {
	img := pagedImage(5000)
	r, rev, ix := storeImage(t, img)
	files, _ := filepath.Glob(filepath.Join(r.Dir, "chunks", "*", "*"))
	if len(files) != 3 {
		t.Fatalf("%d chunk files, want 3", len(files))
	}
	flipByte(t, files[0])
	out := filepath.Join(t.TempDir(), "out.img")
	before := []byte("the old image\n")
	if err := os.WriteFile(out, before, 0o644); err != nil {
		t.Fatal(err)
	}
	err := restore.ToPath(context.Background(), r, rev, ix, out, restore.Options{})
	if !errors.Is(err, repo.ErrCorruptChunk) {
		t.Fatalf("error %v, want a corrupt chunk", err)
	}
	if !strings.Contains(err.Error(), "revision "+rev.ID) || !strings.Contains(err.Error(), "at offset") {
		t.Errorf("error %q does not name the revision and the offset", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, before) {
		t.Errorf("the target changed to %d bytes", len(got))
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".out.img.backy-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// extentsTo is the write of StreamToPath for an extent stream.
func extentsTo(r *repo.Repo, rev *repo.Revision, ix *repo.Index) func(io.Writer) error {
	return func(w io.Writer) error {
		return restore.Extents(context.Background(), r, rev, ix, w, restore.Options{})
	}
}

// A stream written to a file is private (0600 under umask 022, also over
// an old 0644 file) and is the stream Extents writes elsewhere.
func TestStreamToPathMode(t *testing.T) {
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	r, rev, ix := storeImage(t, pagedImage(5000))
	var want bytes.Buffer
	if err := extentsTo(r, rev, ix)(&want); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fresh, over := filepath.Join(dir, "new.ext"), filepath.Join(dir, "old.ext")
	if err := os.WriteFile(over, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fresh, over} {
		if err := restore.StreamToPath(out, extentsTo(r, rev, ix)); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != 0o600 {
			t.Errorf("%s has mode %v, want -rw-------", filepath.Base(out), st.Mode())
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s holds %d bytes, not the %d-byte stream", filepath.Base(out), len(got), want.Len())
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*.backy-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// A stream that fails half-way (a corrupt chunk) leaves an old file as it
// was and no temporary file.
func TestStreamToPathCorruptChunkLeavesTargetAlone(t *testing.T) {
	r, rev, ix := storeImage(t, pagedImage(5000))
	files, _ := filepath.Glob(filepath.Join(r.Dir, "chunks", "*", "*"))
	if len(files) != 3 {
		t.Fatalf("%d chunk files, want 3", len(files))
	}
	for _, f := range files {
		flipByte(t, f)
	}
	out := filepath.Join(t.TempDir(), "out.ext")
	before := []byte("the old stream\n")
	if err := os.WriteFile(out, before, 0o644); err != nil {
		t.Fatal(err)
	}
	err := restore.StreamToPath(out, extentsTo(r, rev, ix))
	if !errors.Is(err, repo.ErrCorruptChunk) {
		t.Fatalf("error %v, want a corrupt chunk", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, before) {
		t.Errorf("the target changed to %d bytes", len(got))
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".out.ext.backy-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// A FIFO is written in place: it stays a FIFO and its reader gets the
// stream. A directory is refused.
func TestStreamToPathInPlace(t *testing.T) {
	r, rev, ix := storeImage(t, pagedImage(5000))
	var want bytes.Buffer
	if err := extentsTo(r, rev, ix)(&want); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte)
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- b
	}()
	if err := restore.StreamToPath(fifo, extentsTo(r, rev, ix)); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Errorf("the FIFO's reader got %d bytes, not the %d-byte stream", len(b), want.Len())
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode().Type() != os.ModeNamedPipe {
		t.Errorf("the FIFO is gone or replaced: %v %v", st, err)
	}
	if err := restore.StreamToPath(dir, extentsTo(r, rev, ix)); !errors.Is(err, restore.ErrBadTarget) {
		t.Errorf("a directory target: error %v, want a bad target", err)
	}
}
