package repo

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/zeebo/blake3"
)

// sealed seals a metadata body (indented JSON ending in "\n}\n") as a
// writer of any version would.
func sealed(body []byte) []byte {
	sum := blake3.Sum256(body)
	out := append([]byte{}, body[:len(body)-len(unsealedTail)]...)
	out = append(out, sealHead...)
	out = hex.AppendEncode(out, sum[:])
	return append(out, sealTail...)
}

// TestCommitCopyKeepsTheFile: RevisionFile and CommitCopy carry a sealed
// metadata file over byte for byte, members this backy does not know
// included; an unsealed file of a format 1 source arrives sealed; a file
// that is not a valid revision of that id is refused before anything is
// written.
func TestCommitCopyKeepsTheFile(t *testing.T) {
	dst, err := OpenOrCreate(filepath.Join(t.TempDir(), "dst"))
	if err != nil {
		t.Fatal(err)
	}
	ix := NewIndex(10 * ChunkSize)

	// A newer backy's revision, with a member this one does not know.
	src, err := OpenOrCreate(filepath.Join(t.TempDir(), "src"))
	if err != nil {
		t.Fatal(err)
	}
	rev := sampleRevision()
	rev.Format = RevisionFormat
	plain, _ := rev.marshal()
	body, _, _ := unseal(plain)
	body = append(body[:len(body)-len(unsealedTail)], ",\n  \"future\": {\"x\": 1}\n}\n"...)
	newer := sealed(body)
	os.WriteFile(src.b.(*dirBackend).revPath(rev.ID, ".rev"), newer, 0o600)
	got, meta, err := src.RevisionFile(rev.ID)
	if err != nil || got.ID != rev.ID {
		t.Fatalf("RevisionFile: %v, %v", got, err)
	}
	if err := dst.CommitCopy(rev.ID, meta, ix); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst.b.(*dirBackend).revPath(rev.ID, ".rev")); !bytes.Equal(b, newer) {
		t.Fatalf("the copy differs from the source file:\n%s\nwant\n%s", b, newer)
	}

	// Format 1, unsealed: sealed on the way.
	old, ids := legacyRepo(t)
	old, err = Open(old.Dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := old.LoadRevision(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	_, meta, err = old.RevisionFile(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.CommitCopy(ids[0], meta, NewIndex(want.Size)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(dst.b.(*dirBackend).revPath(ids[0], ".rev"))
	if _, ok, err := unseal(b); !ok || err != nil {
		t.Fatalf("a format 1 file arrived unsealed: %s", b)
	}
	if got, err := dst.LoadRevision(ids[0]); err != nil || !got.Time.Equal(want.Time) || got.Size != want.Size {
		t.Fatalf("the sealed copy: %+v, %v; want %+v", got, err, want)
	}
	if _, _, err := old.RevisionFile(ids[2]); !errors.Is(err, ErrCorruptMeta) {
		t.Fatalf("a damaged source file: %v", err)
	}
	if _, _, err := old.RevisionFile("nosuchrevision00"); !errors.Is(err, ErrNoRevision) {
		t.Fatalf("a missing revision: %v", err)
	}

	// Not a revision of that id, or damaged: refused, nothing written.
	for name, m := range map[string][]byte{"other id": meta, "damaged": newer[:len(newer)-3]} {
		if err := dst.CommitCopy("zzzzzzzzzzzzzzzz", m, ix); !errors.Is(err, ErrCorruptMeta) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat(dst.b.(*dirBackend).revPath("zzzzzzzzzzzzzzzz", ".idx")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused copy wrote its index: %v", err)
	}
}

// TestSameRepository: one directory however it is named is the same
// repository; two directories are not.
func TestSameRepository(t *testing.T) {
	dir := t.TempDir()
	a, _ := OpenOrCreate(filepath.Join(dir, "a"))
	b, _ := OpenOrCreate(filepath.Join(dir, "b"))
	os.Symlink("a", filepath.Join(dir, "link"))
	a2, err := Open(filepath.Join(dir, "link"))
	if err != nil {
		t.Fatal(err)
	}
	if !SameRepository(a, a2) || SameRepository(a, b) {
		t.Fatalf("a~link %v, a~b %v", SameRepository(a, a2), SameRepository(a, b))
	}
}
