package restore_test

import (
	"bytes"
	"context"
	"errors"
	"github.com/backy/backy/internal/clitest"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/rbddiff"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/restore"
	"github.com/backy/backy/pkg/store"
)

const chunk = repo.ChunkSize

// storeImage stores img (zeros left out) as a full revision.
func storeImage(t *testing.T, img []byte) (*repo.Repo, *repo.Revision, *repo.Index) {
	t.Helper()
	var buf bytes.Buffer
	w, err := extent.NewWriter(&buf, extent.Header{Kind: extent.Full, Size: int64(len(img)), Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(img); off += chunk {
		p := img[off:min(off+chunk, len(img))]
		if !extent.IsZero(p) {
			if err := w.WriteData(int64(off), p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := repo.OpenOrCreate(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	rev, err := store.Store(context.Background(), r, &buf, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ix, err := r.Index(rev.ID)
	if err != nil {
		t.Fatal(err)
	}
	return r, rev, ix
}

// flipByte damages a (read-only) chunk file in its middle.
func flipByte(t *testing.T, path string) {
	t.Helper()
	if err := clitest.FlipByte(path); err != nil {
		t.Fatal(err)
	}
}

// applyDiff applies an rbd diff to target the way rbd import-diff does,
// checking that write records stay within one chunk.
func applyDiff(t *testing.T, target, diff []byte) []byte {
	t.Helper()
	dr := rbddiff.NewReader(bytes.NewReader(diff))
	h, err := dr.Header()
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != 1 || h.FromSnap != "" || h.ToSnap != "" {
		t.Fatalf("header %+v, want version 1 without snapshots", h)
	}
	img := make([]byte, h.Size)
	copy(img, target)
	for {
		rec, err := dr.Next()
		if err == io.EOF {
			return img
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type == rbddiff.TypeZero {
			clear(img[rec.Offset:rec.End()])
			continue
		}
		if rec.Length > chunk || rec.Offset/chunk != (rec.End()-1)/chunk {
			t.Fatalf("write record %d+%d spans chunks", rec.Offset, rec.Length)
		}
		if _, err := io.ReadFull(dr, img[rec.Offset:rec.End()]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRBDDiff(t *testing.T) {
	size := 5*chunk + 1000
	img := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, r := range [][2]int{{100, 5000}, {2 * chunk, chunk}, {5 * chunk, 1000}} {
		for i := r[0]; i < r[0]+r[1]; i++ {
			img[i] = byte(rng.Uint32() | 1)
		}
	}
	r, rev, ix := storeImage(t, img)
	var diff bytes.Buffer
	if err := restore.RBDDiff(context.Background(), r, rev, ix, &diff, restore.Options{}); err != nil {
		t.Fatal(err)
	}
	// The target holds old data everywhere and is larger: the diff must
	// clear the zero chunks and shrink it.
	old := bytes.Repeat([]byte{0xAA}, size+3*chunk)
	if got := applyDiff(t, old, diff.Bytes()); !bytes.Equal(got, img) {
		t.Fatal("applied diff differs from the image")
	}
	// Zero chunks 1 and 3-4 become two zero records, not one per chunk.
	dr := rbddiff.NewReader(bytes.NewReader(diff.Bytes()))
	var zeros []rbddiff.Record
	for {
		rec, err := dr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type == rbddiff.TypeZero {
			zeros = append(zeros, *rec)
		}
	}
	want := []rbddiff.Record{{Type: rbddiff.TypeZero, Offset: chunk, Length: chunk}, {Type: rbddiff.TypeZero, Offset: 3 * chunk, Length: 2 * chunk}}
	if len(zeros) != 2 || zeros[0] != want[0] || zeros[1] != want[1] {
		t.Fatalf("zero records %+v, want %+v", zeros, want)
	}
}

func TestRBDDiffCorruptChunk(t *testing.T) {
	img := make([]byte, 3*chunk)
	for i := range img {
		img[i] = byte(i*7 + 1)
	}
	r, rev, ix := storeImage(t, img)
	files, _ := filepath.Glob(filepath.Join(r.Dir, "chunks", "*", "*"))
	if len(files) == 0 {
		t.Fatal("no chunk files")
	}
	for _, f := range files {
		flipByte(t, f)
	}
	var diff bytes.Buffer
	err := restore.RBDDiff(context.Background(), r, rev, ix, &diff, restore.Options{})
	if !errors.Is(err, repo.ErrCorruptChunk) {
		t.Fatalf("error %v, want a corrupt chunk", err)
	}
	// What was written lacks the end record, so rbd import-diff refuses it.
	dr := rbddiff.NewReader(bytes.NewReader(diff.Bytes()))
	for {
		_, err = dr.Next()
		if err != nil {
			break
		}
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading the partial diff: %v, want a truncated stream", err)
	}
}
