package repo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/backy/backy/internal/raceflag"
)

func TestOpenOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "repo")
	r, err := OpenOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(r.Dir); err != nil {
		t.Fatal(err)
	}
	foreign := t.TempDir()
	os.WriteFile(filepath.Join(foreign, "precious"), []byte("x"), 0o644)
	if _, err := OpenOrCreate(foreign); !errors.Is(err, ErrNotRepository) {
		t.Fatalf("non-empty directory: %v", err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrNotRepository) {
		t.Fatalf("empty directory: %v", err)
	}
}

// TestDiscardIfEmptyUnderLocks: a repository made for a store that failed
// is not discarded while another process holds its store or chunks lock
// (a second first store that opened it meanwhile), only once it is free.
func TestDiscardIfEmptyUnderLocks(t *testing.T) {
	for _, name := range []string{LockStore, LockChunks} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			r, err := OpenOrCreate(dir)
			if err != nil {
				t.Fatal(err)
			}
			other, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			l, err := other.TryLock(name, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.DiscardIfEmpty(); err != nil || !IsRepository(dir) {
				t.Fatalf("discarded while the %s lock is held: %v, repository there: %v", name, err, IsRepository(dir))
			}
			l.Unlock()
			if err := r.DiscardIfEmpty(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("not discarded once free: %v", err)
			}
		})
	}
}

// TestOpenOrCreateUnfinished: a directory that an interrupted creation
// left (layout directories, no marker) is finished by the next
// OpenOrCreate; one with anything else in it is refused and left as it is.
func TestOpenOrCreateUnfinished(t *testing.T) {
	finish := map[string][]string{
		"one layout directory":   {"chunks/"},
		"every layout directory": {"chunks/", "revisions/", "tmp/", "locks/"},
		"the marker's temp file": {"chunks/", "revisions/", "tmp/", "locks/", "tmp/.backy-repository.tmp123"},
		"a chunk fan-out dir":    {"chunks/", "chunks/ab/", "tmp/"},
	}
	refuse := map[string][]string{
		"a foreign directory":   {"chunks/", "photos/"},
		"a file at the top":     {"chunks/", "notes.txt"},
		"a chunk":               {"chunks/", "chunks/ab/", "chunks/ab/abcdef"},
		"a revision":            {"revisions/", "revisions/x.rev"},
		"another file in tmp":   {"tmp/", "tmp/precious"},
		"a layout name, a file": {"locks"},
		"a lock file":           {"locks/", "locks/store"},
	}
	mk := func(t *testing.T, paths []string) string {
		dir := filepath.Join(t.TempDir(), "repo")
		for _, p := range append([]string{""}, paths...) {
			var err error
			if p == "" || p[len(p)-1] == '/' {
				err = os.MkdirAll(filepath.Join(dir, p), 0o700)
			} else {
				err = os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for name, paths := range finish {
		t.Run("finish "+name, func(t *testing.T) {
			dir := mk(t, paths)
			r, err := OpenOrCreate(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !IsRepository(dir) || !r.created {
				t.Fatalf("not finished as a new repository: marker %v, created %v", IsRepository(dir), r.created)
			}
			for _, sub := range layout {
				if st, err := os.Stat(filepath.Join(dir, sub)); err != nil || !st.IsDir() {
					t.Fatalf("%s: %v", sub, err)
				}
			}
		})
	}
	for name, paths := range refuse {
		t.Run("refuse "+name, func(t *testing.T) {
			dir := mk(t, paths)
			before := listTree(t, dir)
			_, err := OpenOrCreate(dir)
			if !errors.Is(err, ErrNotRepository) || !strings.Contains(err.Error(), "is not empty and has no backy-repository file") {
				t.Fatalf("err = %v", err)
			}
			if after := listTree(t, dir); after != before {
				t.Fatalf("changed:\n%s\nbecame\n%s", before, after)
			}
		})
	}
}

// listTree lists every path under dir with its mode and size.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d\n", p, info.Mode(), info.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestNewerFormatIsRefused(t *testing.T) {
	r, err := OpenOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(r.Dir, configFile)
	os.WriteFile(p, []byte(`{"format": 3, "chunk_size": 4194304, "hash": "blake3-256", "compression": "zstd"}`), 0o644)
	if _, err := Open(r.Dir); !errors.Is(err, ErrFormat) {
		t.Fatalf("error %v", err)
	}
	// A marker that is no JSON at all is damage (exit 4), not "no
	// repository" (6): a store must not take the directory for a new one.
	os.WriteFile(p, []byte("format 99\n"), 0o644)
	if _, err := Open(r.Dir); !errors.Is(err, ErrCorruptMeta) {
		t.Fatalf("marker not JSON: %v", err)
	}
	if _, err := OpenOrCreate(r.Dir); !errors.Is(err, ErrCorruptMeta) {
		t.Fatalf("OpenOrCreate, marker not JSON: %v", err)
	}
}

func TestChunkRoundTripAndDamage(t *testing.T) {
	r, err := OpenOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("backy"), ChunkSize/5+1)[:ChunkSize]
	h := HashChunk(data)
	b, err := r.Chunks.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(h, Compress(nil, data)); err != nil {
		t.Fatal(err)
	}
	if has, _ := r.Chunks.Has(h); has {
		t.Fatal("chunk visible before commit")
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadChunk(make([]byte, ChunkSize), h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	// Another chunk's content under this name is caught.
	other := HashChunk(bytes.Repeat([]byte{1}, ChunkSize))
	if _, err := Decompress(make([]byte, ChunkSize), other, Compress(nil, data)); !errors.Is(err, ErrCorruptChunk) {
		t.Fatalf("wrong content: %v", err)
	}
	p := r.Chunks.(*dirStore).path(h)
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("garbage"), 0o644)
	if _, err := r.ReadChunk(make([]byte, ChunkSize), h); !errors.Is(err, ErrCorruptChunk) {
		t.Fatalf("garbage chunk: %v", err)
	}
	os.Remove(p)
	if _, err := r.ReadChunk(make([]byte, ChunkSize), h); !errors.Is(err, ErrMissingChunk) {
		t.Fatalf("missing chunk: %v", err)
	}
}

func TestLocks(t *testing.T) {
	r, err := OpenOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sh1, err := r.TryLock(LockChunks, true)
	if err != nil {
		t.Fatal(err)
	}
	sh2, err := r.TryLock(LockChunks, true)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	if _, err := r.TryLock(LockChunks, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("exclusive while shared: %v", err)
	}
	sh1.Unlock()
	sh2.Unlock()
	ex, err := r.TryLock(LockChunks, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.TryLock(LockChunks, true)
	if !errors.Is(err, ErrBusy) || !bytes.Contains([]byte(err.Error()), []byte("by pid")) {
		t.Fatalf("shared while exclusive: %v", err)
	}
	ex.Unlock()
}

// legacyRepo makes a repository of format 1, as backy wrote it before
// metadata was sealed: the marker says 1 and the metadata files are plain
// JSON of format 1 (one of them damaged).
func legacyRepo(t *testing.T) (*Repo, []string) {
	t.Helper()
	r, err := OpenOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(r.Dir, configFile), marshalConfig(legacyFormat), 0o644)
	ids := []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc"}
	for i, id := range ids {
		rev := sampleRevision()
		rev.ID, rev.Format, rev.Time = id, legacyFormat, rev.Time.Add(time.Duration(i)*time.Hour)
		b, _ := json.MarshalIndent(rev, "", "  ")
		if i == 2 {
			b = b[:len(b)/2] // damaged
		}
		os.WriteFile(r.revPath(id, ".rev"), append(b, '\n'), 0o644)
		ix, _ := NewIndex(rev.Size).MarshalBinary()
		os.WriteFile(r.revPath(id, ".idx"), ix, 0o644)
	}
	return r, ids
}

// TestLegacyRepositoryIsSealedWhenWritten: a repository of format 1 is
// read as it is, and its first metadata change seals every readable
// metadata file and raises the marker to format 2; from then on an
// unsealed file is damage.
func TestLegacyRepositoryIsSealedWhenWritten(t *testing.T) {
	r, ids := legacyRepo(t)
	marker := filepath.Join(r.Dir, configFile)
	r, err := Open(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	revs, bad, err := r.ScanRevisions()
	if err != nil || len(revs) != 2 || len(bad) != 1 {
		t.Fatalf("format 1 repository: %d revisions, damaged %v, %v", len(revs), bad, err)
	}
	before, _ := os.ReadFile(r.revPath(ids[2], ".rev"))
	old, _ := os.ReadFile(r.revPath(ids[0], ".rev"))
	// Reading changed nothing.
	if b, _ := os.ReadFile(marker); !bytes.Contains(b, []byte(`"format": 1`)) {
		t.Fatalf("reading changed the marker: %s", b)
	}
	revs[1].Tags = []string{"x"}
	if err := r.SaveRevision(revs[1]); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(marker); !bytes.Contains(b, []byte(`"format": 2`)) {
		t.Fatalf("the marker after the first change: %s", b)
	}
	for _, id := range ids[:2] {
		b, _ := os.ReadFile(r.revPath(id, ".rev"))
		if _, err := unmarshalRevision(b, false); err != nil {
			t.Errorf("%s after the first change: %v", id, err)
		}
	}
	if after, _ := os.ReadFile(r.revPath(ids[2], ".rev")); !bytes.Equal(before, after) {
		t.Errorf("the damaged file was rewritten")
	}
	// From now on an unsealed file is damage, also for a new reader.
	os.WriteFile(r.revPath(ids[0], ".rev"), old, 0o644)
	r2, err := Open(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.LoadRevision(ids[0]); !errors.Is(err, ErrCorruptMeta) {
		t.Fatalf("an unsealed file in a format 2 repository: %v", err)
	}
	if rev, err := r2.LoadRevision(ids[1]); err != nil || rev.Tags[0] != "x" {
		t.Fatalf("the changed revision: %v, %v", rev, err)
	}
}

// getInto (ReadChunk's read, into a pooled buffer) returns exactly the
// stored bytes whatever the buffer held or how large it was, and a file
// longer than the buffer grows it.
func TestGetIntoReusesBuffer(t *testing.T) {
	r, err := OpenOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := r.Chunks.(*dirStore)
	small := bytes.Repeat([]byte("backy"), ChunkSize/5+1)[:ChunkSize]
	large := make([]byte, ChunkSize)
	for i := range large {
		large[i] = byte(i * 7919 >> 3)
	}
	b, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	stored := map[Hash][]byte{}
	for _, c := range [][]byte{small, large} {
		h := HashChunk(c)
		stored[h] = Compress(nil, c)
		if err := b.Put(h, stored[h]); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	hs, hl := HashChunk(small), HashChunk(large)
	if len(stored[hs]) >= len(stored[hl]) {
		t.Fatalf("stored sizes %d and %d: want the first smaller", len(stored[hs]), len(stored[hl]))
	}
	buf := bytes.Repeat([]byte{0xff}, 2*len(stored[hl]))
	for _, c := range []struct {
		name string
		dst  []byte
		h    Hash
	}{
		{"nil", nil, hl},
		{"too small", make([]byte, 10), hl},
		{"large, full of other bytes", buf, hs},
		{"large after a smaller read", buf, hl},
	} {
		got, err := s.getInto(c.dst, c.h)
		if err != nil || !bytes.Equal(got, stored[c.h]) {
			t.Fatalf("%s: %d bytes, %v; want the %d stored", c.name, len(got), err, len(stored[c.h]))
		}
	}
	if _, err := s.getInto(buf, HashChunk(bytes.Repeat([]byte{3}, ChunkSize))); !errors.Is(err, ErrMissingChunk) {
		t.Fatalf("missing chunk: %v", err)
	}
}

// TestCompressFitsMaxCompressed: a chunk's stored form fits a buffer of
// MaxCompressed bytes, even when it does not compress at all, so a
// pipeline worker's buffer is never grown (which made 33 MiB of garbage
// at the start of a full backup).
func TestCompressFitsMaxCompressed(t *testing.T) {
	random := make([]byte, ChunkSize)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	half := bytes.Clone(random)
	clear(half[:ChunkSize/2])
	for name, p := range map[string][]byte{"random": random, "half zero": half} {
		buf := make([]byte, 0, MaxCompressed)
		out := Compress(buf, p)
		if len(out) == 0 || &out[:1][0] != &buf[:1][0] {
			t.Errorf("%s: %d stored bytes did not fit a buffer of MaxCompressed (%d) bytes", name, len(out), MaxCompressed)
		}
		if _, err := Decompress(make([]byte, ChunkSize), HashChunk(p), out); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestReadChunkAllocates: reading chunks whose stored forms grow one after
// another allocates one read buffer, not a larger one for each (which made
// 27 MiB of garbage in a restore of the bench image).
func TestReadChunkAllocates(t *testing.T) {
	if raceflag.Enabled {
		t.Skip("the race detector's sync.Pool drops buffers at random")
	}
	r, err := OpenOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Chunks.Begin()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var hs []Hash
	for i := 1; i <= 8; i++ { // random for i/8 of the chunk: growing stored sizes
		data := make([]byte, ChunkSize)
		for j := range data[:i*ChunkSize/8] {
			data[j] = byte(rng.Uint32())
		}
		h := HashChunk(data)
		hs = append(hs, h)
		if err := b.Put(h, Compress(nil, data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, ChunkSize)
	if _, err := r.ReadChunk(dst, hs[7]); err != nil { // a decoder in its pool
		t.Fatal(err)
	}
	storedBufs.Get() // taken out for good: the reads below start with a new one
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, h := range hs {
		if _, err := r.ReadChunk(dst, h); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %.1f MiB", float64(got)/(1<<20))
	if got > 3*ChunkSize/2 {
		t.Errorf("8 chunk reads allocated %.1f MiB, more than one read buffer", float64(got)/(1<<20))
	}
}

// An index in the place of another revision's of the same size (a file
// copied over it by hand, a mixed-up restore of a backup of the
// repository) is valid as an index and named nothing wrong: its chunks
// verified, and a restore gave the other revision's bytes under this id.
// The metadata records the index's BLAKE3 (index_sum), and IndexOf refuses
// an index that is not the revision's own; so does a copy.
func TestIndexBelongsToItsRevision(t *testing.T) {
	r, err := OpenOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mk := func(seed byte) *Revision {
		data, h := testChunk(seed)
		b, err := r.Chunks.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Put(h, Compress(nil, data)); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		ix := NewIndex(ChunkSize)
		ix.Hashes[0] = h
		rev := &Revision{ID: NewRevisionID(), Time: time.Now().UTC(), Kind: "full", Trust: Trusted, Size: ChunkSize}
		if err := r.Commit(rev, ix); err != nil {
			t.Fatal(err)
		}
		return rev
	}
	a, b := mk(1), mk(2)
	if !strings.HasPrefix(b.IndexSum, "blake3:") {
		t.Fatalf("index_sum %q", b.IndexSum)
	}
	saved, err := r.LoadRevision(b.ID)
	if err != nil || saved.IndexSum != b.IndexSum {
		t.Fatalf("index_sum on disk %q, %v; want %q", saved.IndexSum, err, b.IndexSum)
	}
	if _, err := r.IndexOf(saved); err != nil {
		t.Fatalf("own index: %v", err)
	}
	ia, err := os.ReadFile(filepath.Join(r.Dir, "revisions", a.ID+".idx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "revisions", b.ID+".idx"), ia, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.IndexOf(saved); !errors.Is(err, ErrCorruptIndex) || !strings.Contains(err.Error(), "is not the revision's own") {
		t.Fatalf("another revision's index: %v, want ErrCorruptIndex, not its own", err)
	}
	if err := r.QuickCheckIndex(saved); err != nil {
		t.Fatalf("the size check cannot tell: %v", err)
	}
	// a copy of b's metadata with a's index is refused before anything is written
	_, meta, err := r.RevisionFile(b.ID)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := r.Index(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := OpenOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.CommitCopy(b.ID, meta, ix); !errors.Is(err, ErrCorruptIndex) {
		t.Fatalf("copy with another revision's index: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst.Dir, "revisions", b.ID+".idx")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused copy wrote the index: %v", err)
	}
}
