package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/backy/backy/internal/clitest"
	"github.com/backy/backy/internal/raceflag"
	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/restore"
	"github.com/backy/backy/pkg/source"
	"github.com/backy/backy/pkg/store"
)

const MiB = 1 << 20

// image writes a test image: random data where fill says, holes elsewhere.
func image(t *testing.T, size int64, fills ...[2]int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	for _, fl := range fills {
		b := make([]byte, fl[1])
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(b, fl[0]); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// extract returns a full extent stream of the file at path.
func extract(t *testing.T, path string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if st, err := os.Stat(path); err == nil && st.Size() == 0 {
		// source refuses a 0-byte file (no disk image); a stream of an
		// empty image, as of an RBD image of size 0, still stores.
		w, err := extent.NewWriter(&buf, extent.Header{Kind: extent.Full, Source: "file:" + path})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	if _, err := source.File(context.Background(), path, &buf, source.Options{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func storeStream(t *testing.T, r *repo.Repo, stream []byte) (*repo.Revision, error) {
	t.Helper()
	return store.Store(context.Background(), r, bytes.NewReader(stream), store.Options{})
}

// restored returns the raw image of a revision.
func restored(t *testing.T, r *repo.Repo, rev *repo.Revision) []byte {
	t.Helper()
	ix, err := r.Index(rev.ID)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := restore.Raw(context.Background(), r, rev, ix, &buf, restore.Options{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func newRepo(t *testing.T) *repo.Repo {
	t.Helper()
	r, err := repo.OpenOrCreate(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRoundTripImageKinds(t *testing.T) {
	cases := map[string]struct {
		size  int64
		fills [][2]int64
	}{
		"empty":           {0, nil},
		"all zeros":       {9 * MiB, nil},
		"random":          {12 * MiB, [][2]int64{{0, 12 * MiB}}},
		"sparse":          {64 * MiB, [][2]int64{{5 * MiB, 3}, {40*MiB - 7, 8 * MiB}}},
		"odd size":        {4*MiB + 4097, [][2]int64{{0, 4*MiB + 4097}}},
		"tiny":            {1, [][2]int64{{0, 1}}},
		"not 4k multiple": {1000003, [][2]int64{{1000, 5000}}},
		// Ten whole chunks of data, then ten chunks with a few bytes each:
		// the chunk buffers are reused, and no byte of an earlier chunk may
		// show through the gaps of a later one.
		"reused buffers": {80 * MiB, append([][2]int64{{0, 40 * MiB}},
			[2]int64{44*MiB + 100, 3}, [2]int64{48*MiB + 9000, 3}, [2]int64{52 * MiB, 1},
			[2]int64{56*MiB + 4095, 2}, [2]int64{60*MiB + 1, 1}, [2]int64{64*MiB + 77777, 5},
			[2]int64{68 * MiB, 1}, [2]int64{72*MiB + 12, 1}, [2]int64{76*MiB + 500000, 1})},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			img := image(t, c.size, c.fills...)
			want, _ := os.ReadFile(img)
			r := newRepo(t)
			rev, err := storeStream(t, r, extract(t, img))
			if err != nil {
				t.Fatal(err)
			}
			if got := restored(t, r, rev); !bytes.Equal(got, want) {
				t.Fatalf("restore differs from source (%d vs %d bytes)", len(got), len(want))
			}
		})
	}
}

func TestRebackupReusesChunks(t *testing.T) {
	img := image(t, 20*MiB, [2]int64{0, 20 * MiB})
	r := newRepo(t)
	first, err := storeStream(t, r, extract(t, img))
	if err != nil {
		t.Fatal(err)
	}
	second, err := storeStream(t, r, extract(t, img))
	if err != nil {
		t.Fatal(err)
	}
	if first.Stats.ChunksNew != 5 || second.Stats.ChunksNew != 0 || second.Stats.ChunksReused != 5 {
		t.Fatalf("stats: first %+v second %+v", first.Stats, second.Stats)
	}
	if second.Parent != first.ID {
		t.Fatalf("parent %q, want %q", second.Parent, first.ID)
	}
}

// diffStream builds a differential stream by hand.
func diffStream(t *testing.T, size int64, base, snap string, recs func(w *extent.Writer)) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := extent.NewWriter(&buf, extent.Header{Kind: extent.Differential, Size: size, Base: base, Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	recs(w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func fullWithSnapshot(t *testing.T, data []byte, snap string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := extent.NewWriter(&buf, extent.Header{Kind: extent.Full, Size: int64(len(data)), Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 {
		if err := w.WriteData(0, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestDifferential(t *testing.T) {
	base := randomBytes(10*MiB+123, 1)
	patch := randomBytes(5*MiB, 2)
	cases := map[string]struct {
		size int64
		recs func(w *extent.Writer)
		want func() []byte
	}{
		"patch inside chunks": {int64(len(base)), func(w *extent.Writer) {
			w.WriteData(100, patch[:1000])
			w.WriteZero(3*MiB, 2*MiB)
			w.WriteData(9*MiB, patch[:MiB])
		}, func() []byte {
			b := append([]byte(nil), base...)
			copy(b[100:], patch[:1000])
			clear(b[3*MiB : 5*MiB])
			copy(b[9*MiB:], patch[:MiB])
			return b
		}},
		"grow": {20 * MiB, func(w *extent.Writer) {
			w.WriteData(15*MiB, patch[:10])
		}, func() []byte {
			b := make([]byte, 20*MiB)
			copy(b, base)
			copy(b[15*MiB:], patch[:10])
			return b
		}},
		"shrink mid chunk": {5*MiB + 77, func(w *extent.Writer) {
			w.WriteData(0, patch[:10])
		}, func() []byte {
			b := append([]byte(nil), base[:5*MiB+77]...)
			copy(b, patch[:10])
			return b
		}},
		"nothing changed": {int64(len(base)), func(w *extent.Writer) {}, func() []byte { return base }},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := newRepo(t)
			if _, err := storeStream(t, r, fullWithSnapshot(t, base, "snap1")); err != nil {
				t.Fatal(err)
			}
			rev, err := storeStream(t, r, diffStream(t, c.size, "snap1", "snap2", c.recs))
			if err != nil {
				t.Fatal(err)
			}
			if got := restored(t, r, rev); !bytes.Equal(got, c.want()) {
				t.Fatal("differential restore differs")
			}
		})
	}
	t.Run("shrink then grow gives zeros", func(t *testing.T) {
		r := newRepo(t)
		storeStream(t, r, fullWithSnapshot(t, base, "s1"))
		if _, err := storeStream(t, r, diffStream(t, 5*MiB+77, "s1", "s2", func(*extent.Writer) {})); err != nil {
			t.Fatal(err)
		}
		rev, err := storeStream(t, r, diffStream(t, 10*MiB, "s2", "s3", func(*extent.Writer) {}))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 10*MiB)
		copy(want, base[:5*MiB+77])
		if !bytes.Equal(restored(t, r, rev), want) {
			t.Fatal("bytes past an old shrink came back")
		}
	})
}

// snapshotRepo is the digest of every file and directory under dir but
// locks/ (clitest.TreeDigest, as the command tests use).
func snapshotRepo(t *testing.T, dir string) string {
	t.Helper()
	d, err := clitest.TreeDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBadInputChangesNothing(t *testing.T) {
	base := randomBytes(6*MiB, 3)
	good := fullWithSnapshot(t, base, "snap1")
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)/2] ^= 1
	cases := map[string]struct {
		stream []byte
		want   error
	}{
		"truncated":          {good[:len(good)-10], io.ErrUnexpectedEOF},
		"bad checksum":       {corrupt, extent.ErrChecksum},
		"no parent for diff": {diffStream(t, 10, "snapX", "snapY", func(*extent.Writer) {}), store.ErrWrongBase},
		"wrong base":         {diffStream(t, 10, "other", "snapY", func(*extent.Writer) {}), store.ErrWrongBase},
		"trailing":           {append(append([]byte(nil), good...), 0), extent.ErrTrailingData},
		"sample":             {sampleStream(t), store.ErrSampleStream},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := newRepo(t)
			if _, err := storeStream(t, r, good); err != nil {
				t.Fatal(err)
			}
			before := snapshotRepo(t, r.Dir)
			_, err := storeStream(t, r, c.stream)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if after := snapshotRepo(t, r.Dir); after != before {
				t.Fatalf("repository changed:\nbefore:\n%safter:\n%s", before, after)
			}
		})
	}
	t.Run("diff on empty repository", func(t *testing.T) {
		r := newRepo(t)
		_, err := storeStream(t, r, diffStream(t, 10, "snapX", "snapY", func(*extent.Writer) {}))
		if !errors.Is(err, store.ErrNoParent) {
			t.Fatalf("error %v", err)
		}
	})
}

// TestDiffOfAnotherRBDImageIsRefused: snapshot names are per image, so a
// differential stream of rbd/vm2 relative to its "daily" is no change of
// a revision of rbd/vm1 taken at vm1's "daily" (it was stored as a mixed
// image, trusted); the same stream of vm1 is.
func TestDiffOfAnotherRBDImageIsRefused(t *testing.T) {
	stream := func(kind extent.Kind, src, base, snap string) []byte {
		var buf bytes.Buffer
		w, err := extent.NewWriter(&buf, extent.Header{Kind: kind, Size: 6 * MiB, Source: src, Base: base, Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		if kind == extent.Full {
			w.WriteData(0, randomBytes(6*MiB, 5))
		} else {
			w.WriteData(4*MiB, randomBytes(MiB, 6))
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	r := newRepo(t)
	if _, err := storeStream(t, r, stream(extent.Full, "rbd:rbd/vm1", "", "daily")); err != nil {
		t.Fatal(err)
	}
	before := snapshotRepo(t, r.Dir)
	_, err := storeStream(t, r, stream(extent.Differential, "rbd:rbd/vm2", "daily", "daily2"))
	want := `store: differential stream on the wrong base: stream is of rbd/vm2, newest revision `
	if !errors.Is(err, store.ErrWrongBase) || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), ` of rbd/vm1 (snapshot "daily" of another image)`) {
		t.Fatalf("error %v, want ErrWrongBase %q...", err, want)
	}
	if after := snapshotRepo(t, r.Dir); after != before {
		t.Fatalf("repository changed:\nbefore:\n%safter:\n%s", before, after)
	}
	if _, err := storeStream(t, r, stream(extent.Differential, "rbd:rbd/vm1", "daily", "daily2")); err != nil {
		t.Fatalf("the image's own differential stream: %v", err)
	}
}

func sampleStream(t *testing.T) []byte {
	var buf bytes.Buffer
	w, _ := extent.NewWriter(&buf, extent.Header{Kind: extent.Sample, Size: 10})
	w.Close()
	return buf.Bytes()
}

func TestSecondStoreIsRefusedWhileLocked(t *testing.T) {
	r := newRepo(t)
	l, err := r.TryLock(repo.LockStore, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	// flock locks belong to the open file, so a second open in the same
	// process conflicts just as another process would.
	_, err = storeStream(t, r, fullWithSnapshot(t, []byte("x"), ""))
	if !errors.Is(err, repo.ErrBusy) {
		t.Fatalf("error %v, want ErrBusy", err)
	}
}

// A chunk lost from the repository is written again by the next backup
// that has its content, instead of being "reused" from the parent's index.
func TestLostChunkIsStoredAgain(t *testing.T) {
	img := image(t, 12*MiB, [2]int64{0, 12 * MiB})
	want, _ := os.ReadFile(img)
	r := newRepo(t)
	if _, err := storeStream(t, r, extract(t, img)); err != nil {
		t.Fatal(err)
	}
	chunks, _ := filepath.Glob(filepath.Join(r.Dir, "chunks", "*", "*"))
	if err := os.Remove(chunks[0]); err != nil {
		t.Fatal(err)
	}
	rev, err := storeStream(t, r, extract(t, img))
	if err != nil {
		t.Fatal(err)
	}
	if rev.Stats.ChunksNew != 1 {
		t.Fatalf("chunks new %d, want 1", rev.Stats.ChunksNew)
	}
	if !bytes.Equal(restored(t, r, rev), want) {
		t.Fatal("restore differs")
	}
}

// TestFullBackupAllocates bounds what a full backup of chunks that do not
// compress allocates: the chunk buffers (2×workers+2), one compression
// buffer per worker and the stream reader's buffer (which may grow once),
// each allocated once, plus a chunk of small things (41 MiB in all). A worker's compression buffer grown by
// appends (as before MaxCompressed) costs about four chunks more each.
func TestFullBackupAllocates(t *testing.T) {
	if raceflag.Enabled {
		t.Skip("the race detector's sync.Pool drops encoders at random")
	}
	const workers = 2
	stream := extract(t, image(t, 12*repo.ChunkSize, [2]int64{0, 12 * repo.ChunkSize}))
	r := newRepo(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := store.Store(context.Background(), r, bytes.NewReader(stream), store.Options{Workers: workers}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	got := after.TotalAlloc - before.TotalAlloc
	want := uint64((2*workers+2)+workers+2+1) * repo.ChunkSize
	t.Logf("allocated %.1f MiB (bound %d MiB)", float64(got)/MiB, want/MiB)
	if got > want {
		t.Errorf("a full backup of 12 new chunks allocated %.1f MiB, more than %d MiB", float64(got)/MiB, want/MiB)
	}
}

// TestLostCarriedChunkRefusesDifferential loses a chunk the newest revision
// alone holds and stores a differential stream that does not touch it: the
// store refuses (the stream cannot give the bytes back) naming the chunk,
// publishes nothing and distrusts the parent, so the next backup is a full
// one, which repairs it. A stream that rewrites the lost chunk's whole
// range does not need it and stores.
func TestLostCarriedChunkRefusesDifferential(t *testing.T) {
	base := randomBytes(12*MiB, 5)
	r := newRepo(t)
	parent, err := storeStream(t, r, fullWithSnapshot(t, base, "s1"))
	if err != nil {
		t.Fatal(err)
	}
	ix, err := r.Index(parent.ID)
	if err != nil {
		t.Fatal(err)
	}
	lost := ix.Hashes[2]
	chunk := filepath.Join(r.Dir, "chunks", lost.String()[:2], lost.String())
	if err := os.Remove(chunk); err != nil {
		t.Fatal(err)
	}
	before := snapshotRepo(t, r.Dir)
	_, err = storeStream(t, r, diffStream(t, int64(len(base)), "s1", "s2", func(w *extent.Writer) {
		w.WriteData(100, []byte("changed"))
	}))
	if !errors.Is(err, repo.ErrMissingChunk) || !strings.Contains(err.Error(), lost.String()) ||
		!strings.Contains(err.Error(), "offset 8388608") || !strings.Contains(err.Error(), parent.ID+" lacks it") {
		t.Fatalf("differential store over a lost carried-over chunk: %v, want a missing chunk %s at offset 8388608 of %s", err, lost, parent.ID)
	}
	revs, err := r.Revisions()
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 1 || !revs[0].IsDistrusted() || len(revs[0].Damage) != 1 || !strings.Contains(revs[0].Damage[0], lost.String()) {
		t.Fatalf("revisions after the refusal: %+v, want the parent alone, distrusted, its damage naming %s", revs, lost)
	}
	// what changed: the parent's metadata, and the stray chunk of the
	// refused stream
	revs[0].Trust, revs[0].Damage = repo.Trusted, nil
	if err := r.SaveRevision(revs[0]); err != nil {
		t.Fatal(err)
	}
	strays, _ := filepath.Glob(filepath.Join(r.Dir, "chunks", "*", "*"))
	for _, p := range strays {
		if !slices.ContainsFunc(ix.Hashes, func(h repo.Hash) bool { return h.String() == filepath.Base(p) }) {
			os.Remove(p)
			os.Remove(filepath.Dir(p)) // if empty
		}
	}
	if after := snapshotRepo(t, r.Dir); after != before {
		t.Fatalf("the refused store changed more than the parent's trust and a stray chunk:\n%s\n%s", before, after)
	}
	// a stream that rewrites the lost chunk whole stores, and restores
	patch := randomBytes(4*MiB, 6)
	rev, err := storeStream(t, r, diffStream(t, int64(len(base)), "s1", "s2", func(w *extent.Writer) {
		w.WriteData(8*MiB, patch)
	}))
	if err != nil {
		t.Fatalf("a stream rewriting the lost chunk: %v", err)
	}
	want := slices.Clone(base)
	copy(want[8*MiB:], patch)
	if !bytes.Equal(restored(t, r, rev), want) {
		t.Fatal("restore differs")
	}
}

// TestEmptiedChunkIsStoredAgain empties a chunk file (what a crash of a
// file system without data journalling can leave): a store holding those
// bytes writes the chunk again instead of reusing the empty file.
func TestEmptiedChunkIsStoredAgain(t *testing.T) {
	img := image(t, 12*MiB, [2]int64{0, 12 * MiB})
	want, _ := os.ReadFile(img)
	r := newRepo(t)
	if _, err := storeStream(t, r, extract(t, img)); err != nil {
		t.Fatal(err)
	}
	chunks, _ := filepath.Glob(filepath.Join(r.Dir, "chunks", "*", "*"))
	if err := os.Truncate(chunks[1], 0); err != nil {
		t.Fatal(err)
	}
	rev, err := storeStream(t, r, extract(t, img))
	if err != nil {
		t.Fatal(err)
	}
	if rev.Stats.ChunksNew != 1 {
		t.Fatalf("chunks new %d, want 1", rev.Stats.ChunksNew)
	}
	if !bytes.Equal(restored(t, r, rev), want) {
		t.Fatal("restore differs")
	}
}

// TestStoreRemovesDeadBatches: the batch directory a killed store left in
// tmp/ (its new chunks, up to the whole image) goes at the next store,
// which holds the store lock, so no batch found can be alive; other files
// in tmp/ stay (a metadata change's temporary file is another lock's).
func TestStoreRemovesDeadBatches(t *testing.T) {
	img := image(t, 8*MiB, [2]int64{0, 8 * MiB})
	r := newRepo(t)
	if _, err := storeStream(t, r, extract(t, img)); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(r.Dir, "tmp", "batch-1234")
	if err := os.MkdirAll(dead, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, "chunk"), randomBytes(MiB, 9), 0o400); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(r.Dir, "tmp", ".other")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := storeStream(t, r, extract(t, img)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatalf("the dead batch is still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("another file in tmp/ went: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(r.Dir, "tmp", "batch-*")); len(left) != 0 {
		t.Fatalf("batches left after a store: %v", left)
	}
}
