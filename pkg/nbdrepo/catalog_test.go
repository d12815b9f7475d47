package nbdrepo

import (
	"bytes"
	"context"
	"errors"
	"github.com/backy/backy/internal/clitest"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backy/backy/pkg/nbdserver"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/source"
	"github.com/backy/backy/pkg/store"
)

// image returns size bytes of pseudo-random data with a zero chunk (the
// second) and a zero stretch inside a data chunk.
func image(size int64, seed byte) []byte {
	b := make([]byte, size)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	if size > 2*repo.ChunkSize {
		clear(b[repo.ChunkSize : 2*repo.ChunkSize])
	}
	clear(b[100 : 100+64<<10])
	return b
}

// backup stores data as a new revision of the repository in dir, through
// the same source and store code as backy-extract | backy-store.
func backup(t testing.TB, dir string, data []byte, tags ...string) *repo.Revision {
	t.Helper()
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := repo.OpenOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := source.File(context.Background(), path, pw, source.Options{})
		pw.CloseWithError(err)
	}()
	rev, err := store.Store(context.Background(), r, pr, store.Options{Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // distinct revision times, for "latest"
	return rev
}

func openCatalog(t testing.TB, dir string, opt Options) *Catalog {
	t.Helper()
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(r, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readAll(t *testing.T, e nbdserver.Export) []byte {
	t.Helper()
	b := make([]byte, e.Size())
	if n, err := e.ReadAt(b, 0); n != len(b) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt whole image: %d, %v", n, err)
	}
	return b
}

func TestListAndOpenSpecs(t *testing.T) {
	dir := t.TempDir()
	d1, d2 := image(9<<20+777, 1), image(13<<20, 2)
	r1 := backup(t, dir, d1, "daily")
	r2 := backup(t, dir, d2)
	c := openCatalog(t, dir, Options{})

	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != r1.ID || list[1].Name != r2.ID {
		t.Fatalf("List: %+v, want %s then %s", list, r1.ID, r2.ID)
	}
	if d := list[0].Description; !strings.Contains(d, "tags daily, trusted, 9.0 MiB") || !strings.HasPrefix(d, r1.Time.Local().Format("2006-01-02 15:04:05")) {
		t.Errorf("description %q", d)
	}
	if d := list[1].Description; !strings.Contains(d, "no tags, trusted, 13.0 MiB") {
		t.Errorf("description %q", d)
	}

	for spec, want := range map[string][]byte{
		"": d2, "latest": d2, "last": d2, "0": d2, "1": d1, "daily": d1,
		r1.ID: d1, r2.ID[:6]: d2,
	} {
		e, err := c.Open(spec)
		if err != nil {
			t.Fatalf("Open(%q): %v", spec, err)
		}
		if e.Size() != int64(len(want)) {
			t.Errorf("Open(%q).Size() = %d, want %d", spec, e.Size(), len(want))
		}
		if !bytes.Equal(readAll(t, e), want) {
			t.Errorf("Open(%q) reads other bytes", spec)
		}
		if d := e.(nbdserver.Describer).Description(); !strings.Contains(d, "trusted") {
			t.Errorf("Open(%q) description %q", spec, d)
		}
		if id, want := e.(nbdserver.Canonical).CanonicalName(), map[bool]string{true: r1.ID, false: r2.ID}[bytes.Equal(want, d1)]; id != want {
			t.Errorf("Open(%q) canonical name %q, want %q", spec, id, want)
		}
		e.Close()
	}

	for _, spec := range []string{"nosuch", "2", "weekly"} {
		if _, err := c.Open(spec); !errors.Is(err, nbdserver.ErrNotFound) || !errors.Is(err, repo.ErrNoRevision) {
			t.Errorf("Open(%q): %v, want ErrNotFound and ErrNoRevision", spec, err)
		}
	}

	// A backup made while serving appears at once.
	r3 := backup(t, dir, d1)
	if list, _ := c.List(); len(list) != 3 || list[2].Name != r3.ID {
		t.Errorf("List after a new backup: %+v", list)
	}
	if e, err := c.Open("latest"); err != nil || !bytes.Equal(readAll(t, e), d1) {
		t.Errorf("latest after a new backup: %v", err)
	}
}

func TestOpenAmbiguousPrefix(t *testing.T) {
	dir := t.TempDir()
	rev := backup(t, dir, image(5<<20, 3))
	// A second revision whose id shares the first letter.
	p := filepath.Join(dir, "revisions")
	clone := rev.ID[:1] + strings.Repeat("a", 15)
	if clone == rev.ID {
		clone = rev.ID[:1] + strings.Repeat("b", 15)
	}
	idx, _ := os.ReadFile(filepath.Join(p, rev.ID+".idx"))
	os.WriteFile(filepath.Join(p, clone+".idx"), idx, 0o644)
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c2 := *rev
	c2.ID = clone
	if err := r.SaveRevision(&c2); err != nil {
		t.Fatal(err)
	}

	c := openCatalog(t, dir, Options{})
	_, err = c.Open(rev.ID[:1])
	if !errors.Is(err, nbdserver.ErrNotFound) || !errors.Is(err, repo.ErrAmbiguous) {
		t.Errorf("Open of a shared prefix: %v", err)
	}
}

func TestEmptyRepository(t *testing.T) {
	dir := t.TempDir()
	if _, err := repo.OpenOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	c := openCatalog(t, dir, Options{})
	if list, err := c.List(); err != nil || len(list) != 0 {
		t.Errorf("List of an empty repository: %v, %v", list, err)
	}
	if _, err := c.Open(""); !errors.Is(err, nbdserver.ErrNotFound) {
		t.Errorf("Open of an empty repository: %v", err)
	}
}

func TestReadAtEdges(t *testing.T) {
	dir := t.TempDir()
	data := image(3*repo.ChunkSize+5000, 4)
	backup(t, dir, data)
	c := openCatalog(t, dir, Options{CacheChunks: 2})
	e, err := c.Open("")
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))
	for _, tc := range []struct{ off, n int64 }{
		{0, 1}, {repo.ChunkSize - 10, 20}, {repo.ChunkSize + 5, 100}, {2*repo.ChunkSize - 3, repo.ChunkSize + 6},
		{0, size}, {size - 5000, 5000}, {size - 1, 1},
	} {
		p := make([]byte, tc.n)
		n, err := e.ReadAt(p, tc.off)
		if n != int(tc.n) || (err != nil && err != io.EOF) || !bytes.Equal(p, data[tc.off:tc.off+tc.n]) {
			t.Errorf("ReadAt(%d, %d): %d, %v, equal %v", tc.off, tc.n, n, err, bytes.Equal(p, data[tc.off:tc.off+tc.n]))
		}
	}
	p := make([]byte, 100)
	if n, err := e.ReadAt(p, size-40); n != 40 || err != io.EOF || !bytes.Equal(p[:40], data[size-40:]) {
		t.Errorf("ReadAt past the end: %d, %v", n, err)
	}
	if n, err := e.ReadAt(p, size); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end: %d, %v", n, err)
	}
	if _, err := e.ReadAt(p, -1); err == nil {
		t.Error("ReadAt at a negative offset succeeded")
	}
}

// corrupt flips a byte in the middle of the stored chunk h.
func corrupt(t *testing.T, dir string, h repo.Hash) {
	t.Helper()
	if err := clitest.FlipByte(filepath.Join(dir, "chunks", h.String()[:2], h.String())); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptChunk(t *testing.T) {
	dir := t.TempDir()
	data := image(4*repo.ChunkSize, 5)
	rev := backup(t, dir, data)
	r, _ := repo.Open(dir)
	ix, err := r.Index(rev.ID)
	if err != nil {
		t.Fatal(err)
	}
	corrupt(t, dir, ix.Hashes[2])

	c := openCatalog(t, dir, Options{})
	e, err := c.Open(rev.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Twice: a failed chunk is not cached.
	for range 2 {
		p := make([]byte, 8192)
		_, err := e.ReadAt(p, 2*repo.ChunkSize+1000)
		if !errors.Is(err, repo.ErrCorruptChunk) || !strings.Contains(err.Error(), "revision "+rev.ID+", chunk 2 at offset 8388608") {
			t.Fatalf("read of a corrupt chunk: %v", err)
		}
	}
	// A read that spans good and bad chunks fails too.
	p := make([]byte, 2*repo.ChunkSize)
	if _, err := e.ReadAt(p, repo.ChunkSize+10); !errors.Is(err, repo.ErrCorruptChunk) {
		t.Errorf("read across a corrupt chunk: %v", err)
	}
	// The chunks around it are fine.
	p = make([]byte, repo.ChunkSize)
	if _, err := e.ReadAt(p, 3*repo.ChunkSize); err != nil || !bytes.Equal(p, data[3*repo.ChunkSize:]) {
		t.Errorf("read after the corrupt chunk: %v", err)
	}
	if st, _ := c.Stats(); st.Errors < 2 {
		t.Errorf("stats count %d errors, want at least 2", st.Errors)
	}

	// A missing chunk.
	os.Remove(filepath.Join(dir, "chunks", ix.Hashes[0].String()[:2], ix.Hashes[0].String()))
	if _, err := e.ReadAt(p[:10], 0); !errors.Is(err, repo.ErrMissingChunk) {
		t.Errorf("read of a missing chunk: %v", err)
	}
}

// TestConcurrentReads reads two revisions at random offsets from many
// goroutines through a cache smaller than the images, so entries are
// evicted while others read them (run with -race).
func TestConcurrentReads(t *testing.T) {
	dir := t.TempDir()
	d1, d2 := image(10*repo.ChunkSize+123, 6), image(7*repo.ChunkSize, 7)
	copy(d2[3*repo.ChunkSize:5*repo.ChunkSize], d1[3*repo.ChunkSize:]) // shared chunks
	backup(t, dir, d1)
	backup(t, dir, d2)
	c := openCatalog(t, dir, Options{CacheChunks: 3})
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec, want := "0", d2
			if g%2 == 1 {
				spec, want = "1", d1
			}
			e, err := c.Open(spec)
			if err != nil {
				t.Error(err)
				return
			}
			defer e.Close()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range 25 {
				n := 1 + r.Int64N(1<<20)
				if i%5 == 0 {
					n = repo.ChunkSize + r.Int64N(repo.ChunkSize) // across chunks
				}
				off := r.Int64N(int64(len(want)) - n)
				if g < 2 { // sequential readers, for read-ahead
					n, off = 256<<10, int64(i)*256<<10%(int64(len(want))-256<<10)
				}
				p := make([]byte, n)
				if _, err := e.ReadAt(p, off); err != nil {
					t.Errorf("ReadAt(%d, %d): %v", off, n, err)
					return
				}
				if !bytes.Equal(p, want[off:off+n]) {
					t.Errorf("ReadAt(%d, %d) of %s returned other bytes", off, n, spec)
					return
				}
			}
		}()
	}
	wg.Wait()
	st, held := c.Stats()
	if held > 3 {
		t.Errorf("cache holds %d chunks, limit 3", held)
	}
	t.Logf("%+v, %d held", st, held)
}

func TestReadAheadSequential(t *testing.T) {
	dir := t.TempDir()
	data := image(12*repo.ChunkSize, 8)
	backup(t, dir, data)
	c := openCatalog(t, dir, Options{})
	e, _ := c.Open("")
	p := make([]byte, 256<<10)
	for off := int64(0); off < int64(len(data)); off += int64(len(p)) {
		if _, err := e.ReadAt(p, off); err != nil || !bytes.Equal(p, data[off:off+int64(len(p))]) {
			t.Fatalf("ReadAt(%d): %v", off, err)
		}
	}
	st, _ := c.Stats()
	// 11 data chunks; all but the first few should come from read-ahead.
	if st.ReadAhead < 6 || st.Misses+st.ReadAhead > 11 {
		t.Errorf("sequential read: %+v", st)
	}
}

func TestLockAndOptions(t *testing.T) {
	dir := t.TempDir()
	backup(t, dir, image(5<<20, 9))
	r, _ := repo.Open(dir)
	if _, err := New(r, Options{CacheChunks: -1}); !errors.Is(err, ErrCacheSize) {
		t.Errorf("negative cache size: %v", err)
	}
	c, err := New(r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.TryLock(repo.LockChunks, false); !errors.Is(err, repo.ErrBusy) {
		t.Errorf("exclusive chunks lock while a catalog is open: %v, want ErrBusy", err)
	}
	l, err := r.TryLock(repo.LockChunks, true)
	if err != nil {
		t.Errorf("shared chunks lock while a catalog is open: %v", err)
	}
	l.Unlock()
	c.Close()
	l, err = r.TryLock(repo.LockChunks, false)
	if err != nil {
		t.Errorf("exclusive chunks lock after Close: %v", err)
	}
	l.Unlock()
	// A busy repository refuses a catalog.
	l, _ = r.TryLock(repo.LockChunks, false)
	defer l.Unlock()
	if _, err := New(r, Options{}); !errors.Is(err, repo.ErrBusy) {
		t.Errorf("New while purge holds the lock: %v", err)
	}
}

// TestReadAheadAfterZeros: a reader that jumps over zero chunks to where
// the data starts (nbdcopy, which knows the map) keeps its read-ahead; a
// read that lands inside a chunk after zeros (a random reader) loads
// nothing ahead.
func TestReadAheadAfterZeros(t *testing.T) {
	for _, tc := range []struct {
		name  string
		off   int64
		ahead bool
	}{{"chunk start", 3 * repo.ChunkSize, true}, {"inside a chunk", 3*repo.ChunkSize + 65536, false}} {
		dir := t.TempDir()
		data := image(8*repo.ChunkSize, 10)
		clear(data[repo.ChunkSize : 3*repo.ChunkSize]) // chunks 1 and 2
		backup(t, dir, data)
		c := openCatalog(t, dir, Options{})
		e, _ := c.Open("")
		p := make([]byte, 65536)
		if _, err := e.ReadAt(p, repo.ChunkSize-65536); err != nil { // the end of chunk 0
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // let loads ahead of chunk 0 finish
		before, _ := c.Stats()
		if _, err := e.ReadAt(p, tc.off); err != nil || !bytes.Equal(p, data[tc.off:tc.off+65536]) {
			t.Fatalf("%s: %v", tc.name, err)
		}
		after, _ := c.Stats()
		if got := after.ReadAhead > before.ReadAhead; got != tc.ahead {
			t.Errorf("%s: read-ahead %d -> %d, want loads ahead: %v", tc.name, before.ReadAhead, after.ReadAhead, tc.ahead)
		}
	}
}

// TestView: View shows the bytes ReadAt reads (zeros for a zero chunk, a
// partition's bytes at its offsets), starts no read-ahead, refuses a view
// across chunks or past the end, and fails on a damaged chunk like ReadAt.
func TestView(t *testing.T) {
	dir := t.TempDir()
	data := image(4*repo.ChunkSize+5000, 6)
	rev := backup(t, dir, data)
	c := openCatalog(t, dir, Options{CacheChunks: 2})
	e, err := c.Open(rev.ID)
	if err != nil {
		t.Fatal(err)
	}
	v := e.(interface {
		View(off int64, n int, fn func([]byte)) error
	})
	size := int64(len(data))
	for _, tc := range []struct{ off, n int64 }{
		{0, repo.ChunkSize}, {repo.ChunkSize + 7, 4096}, {3*repo.ChunkSize - 1, 1}, {4 * repo.ChunkSize, 5000},
	} {
		var got []byte
		if err := v.View(tc.off, int(tc.n), func(p []byte) { got = bytes.Clone(p) }); err != nil || !bytes.Equal(got, data[tc.off:tc.off+tc.n]) {
			t.Errorf("View(%d, %d): %v, equal %v", tc.off, tc.n, err, bytes.Equal(got, data[tc.off:tc.off+tc.n]))
		}
	}
	if st, _ := c.Stats(); st.ReadAhead != 0 {
		t.Errorf("views loaded %d chunks ahead, want none", st.ReadAhead)
	}
	for _, tc := range []struct{ off, n int64 }{{repo.ChunkSize - 1, 2}, {size - 10, 11}, {-1, 1}, {0, repo.ChunkSize + 1}} {
		called := false
		if err := v.View(tc.off, int(tc.n), func([]byte) { called = true }); !errors.Is(err, errView) || called {
			t.Errorf("View(%d, %d): %v, fn called %v; want %v", tc.off, tc.n, err, called, errView)
		}
	}

	ix, err := c.r.Index(rev.ID)
	if err != nil {
		t.Fatal(err)
	}
	corrupt(t, dir, ix.Hashes[3]) // no view above loaded it
	called := false
	if err := v.View(3*repo.ChunkSize, 100, func([]byte) { called = true }); !errors.Is(err, repo.ErrCorruptChunk) || called ||
		!strings.Contains(err.Error(), "revision "+rev.ID+", chunk 3 at offset 12582912") {
		t.Errorf("View of a damaged chunk: %v, fn called %v", err, called)
	}
}
