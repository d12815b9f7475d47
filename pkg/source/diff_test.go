package source

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
	"time"

	"github.com/backy/backy/internal/logtest"
	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/restore"
	"github.com/backy/backy/pkg/store"
	"golang.org/x/sys/unix"
)

const chunk = repo.ChunkSize

// diffFixture is an image file and the repository it is backed up into.
type diffFixture struct {
	t    *testing.T
	img  string
	dir  string
	logs []string
}

func newDiffFixture(t *testing.T, size int64) *diffFixture {
	f := &diffFixture{t: t, img: filepath.Join(t.TempDir(), "vm.img"), dir: filepath.Join(t.TempDir(), "repo")}
	fh, err := os.Create(f.img)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if err := fh.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return f
}

// write puts n random bytes (seeded) at off.
func (f *diffFixture) write(off int64, n int, seed uint64) {
	f.t.Helper()
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range b {
		b[i] = byte(rng.Uint32() | 1)
	}
	f.writeBytes(off, b)
}

func (f *diffFixture) writeBytes(off int64, b []byte) {
	f.t.Helper()
	fh, err := os.OpenFile(f.img, os.O_WRONLY, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteAt(b, off); err != nil {
		f.t.Fatal(err)
	}
}

// pipe returns the read end of a pipe the image is written into, closed
// when the test ends.
func (f *diffFixture) pipe() *os.File {
	f.t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		f.t.Fatal(err)
	}
	go func() {
		b, _ := os.ReadFile(f.img)
		pw.Write(b)
		pw.Close()
	}()
	f.t.Cleanup(func() { pr.Close() })
	return pr
}

// punch makes [off, off+n) a hole.
func (f *diffFixture) punch(off, n int64) {
	f.t.Helper()
	fh, err := os.OpenFile(f.img, os.O_WRONLY, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	defer fh.Close()
	if err := unix.Fallocate(int(fh.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		f.t.Fatal(err)
	}
}

// backup extracts the image with BaseFrom, checks what the stream holds,
// stores it and checks that the revision restores to the image.
func (f *diffFixture) backup(path string) (extent.Header, []extent.Record, *repo.Revision) {
	f.t.Helper()
	var stream bytes.Buffer
	log, lines := logtest.New()
	_, err := File(context.Background(), path, &stream, Options{BaseFrom: f.dir, Log: log})
	f.logs = lines.All()
	if err != nil {
		f.t.Fatal(err)
	}
	hdr, recs := records(f.t, stream.Bytes())
	r, err := repo.OpenOrCreate(f.dir)
	if err != nil {
		f.t.Fatal(err)
	}
	rev, err := store.Store(context.Background(), r, &stream, store.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.checkRestores(r, rev)
	return hdr, recs, rev
}

func (f *diffFixture) checkRestores(r *repo.Repo, rev *repo.Revision) {
	f.t.Helper()
	ix, err := r.Index(rev.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	var out bytes.Buffer
	if err := restore.Raw(context.Background(), r, rev, ix, &out, restore.Options{}); err != nil {
		f.t.Fatal(err)
	}
	want, err := os.ReadFile(f.img)
	if err != nil {
		f.t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		f.t.Fatalf("revision %s does not restore to the image", rev.ID)
	}
}

// ranges describes records as "data 0+4194304" lines.
func ranges(recs []extent.Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, fmt.Sprintf("%s %d+%d", r.Type, r.Offset, r.Length))
	}
	return strings.Join(s, ", ")
}

func TestBaseFromSendsOnlyChangedChunks(t *testing.T) {
	size := int64(10*chunk + 12345) // a partial last chunk
	f := newDiffFixture(t, size)
	f.write(0, 3*chunk, 1)                     // chunks 0-2
	f.writeBytes(3*chunk, make([]byte, chunk)) // chunk 3: zeros, but allocated
	f.write(5*chunk+4096, 8192, 2)             // a little of chunk 5
	f.write(8*chunk, chunk, 3)                 // chunk 8
	f.write(10*chunk, 12345, 4)                // the tail

	hdr, _, first := f.backup(f.img)
	if hdr.Kind != extent.Full || len(f.logs) == 0 || !strings.Contains(f.logs[0], "no revisions yet") {
		t.Fatalf("first backup: %s stream, logs %q; want full, saying there is no revision", hdr.Kind, f.logs)
	}

	hdr, recs, second := f.backup(f.img)
	if hdr.Kind != extent.Differential || hdr.Base != "revision:"+first.ID {
		t.Fatalf("unchanged: %s stream relative to %q, want differential relative to revision:%s", hdr.Kind, hdr.Base, first.ID)
	}
	if len(recs) != 0 {
		t.Fatalf("unchanged image sent %s", ranges(recs))
	}
	if second.Parent != first.ID || second.Base != hdr.Base {
		t.Fatalf("revision %+v: want parent %s and base %s", second, first.ID, hdr.Base)
	}

	f.write(chunk+100, 10, 5)                      // a few bytes of chunk 1
	f.punch(8*chunk, chunk)                        // chunk 8 now a hole
	f.write(6*chunk+chunk/2, chunk, 6)             // spans chunks 6 and 7, both were holes
	f.writeBytes(5*chunk+4096, make([]byte, 8192)) // chunk 5 zero again
	f.write(10*chunk+12000, 345, 7)                // the tail
	hdr, recs, third := f.backup(f.img)
	if hdr.Kind != extent.Differential || hdr.Base != "revision:"+second.ID {
		t.Fatalf("changed: %s stream relative to %q", hdr.Kind, hdr.Base)
	}
	got := ranges(recs)
	// Chunk by chunk: 1 is sent whole; 5 becomes zero (written zeros); 6 is
	// zeros then data; 7 is data then zeros; 8 is zero (a hole now); the
	// tail chunk is sent whole.
	for _, part := range []string{
		fmt.Sprintf("data %d+%d", chunk, chunk),
		fmt.Sprintf("zero %d+%d", 5*chunk, chunk+chunk/2),
		fmt.Sprintf("data %d+%d", 6*chunk+chunk/2, chunk/2),
		fmt.Sprintf("data %d+%d", 7*chunk, chunk/2),
		fmt.Sprintf("zero %d+%d", 7*chunk+chunk/2, chunk+chunk/2),
		fmt.Sprintf("data %d+%d", 10*chunk, 12345),
	} {
		if !strings.Contains(got, part) {
			t.Errorf("records %s: missing %s", got, part)
		}
	}
	if n := strings.Count(got, "data") + strings.Count(got, "zero"); n != 6 {
		t.Errorf("records %s: want exactly the 6 above", got)
	}
	if third.Stats.ChunksNew != 4 {
		t.Errorf("%d new chunks, want 4 (chunks 1, 6, 7 and the tail)", third.Stats.ChunksNew)
	}
}

func TestBaseFromFallsBackToFull(t *testing.T) {
	f := newDiffFixture(t, 4*chunk)
	f.write(0, chunk, 1)
	f.backup(f.img)

	// The same bytes under another name (a snapshot named by the day, say)
	// are compared by content all the same: nothing is sent.
	other := filepath.Join(t.TempDir(), "other.img")
	b, err := os.ReadFile(f.img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	if _, err := File(context.Background(), other, &stream, Options{BaseFrom: f.dir}); err != nil {
		t.Fatal(err)
	}
	if hdr, recs := records(t, stream.Bytes()); hdr.Kind != extent.Differential || len(recs) != 0 || hdr.Source != "file:"+other {
		t.Errorf("another name: %s stream from %s with %s", hdr.Kind, hdr.Source, ranges(recs))
	}

	// A grown image.
	if err := os.Truncate(f.img, 5*chunk); err != nil {
		t.Fatal(err)
	}
	if hdr, _, _ := f.backup(f.img); hdr.Kind != extent.Full || !strings.Contains(strings.Join(f.logs, "\n"), "bytes, the image") {
		t.Errorf("grown image: %s stream, logs %q", hdr.Kind, f.logs)
	}

	// A distrusted newest revision.
	r, err := repo.Open(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	revs, err := r.Revisions()
	if err != nil {
		t.Fatal(err)
	}
	newest := revs[len(revs)-1]
	newest.Trust = repo.Distrusted
	if err := r.SaveRevision(newest); err != nil {
		t.Fatal(err)
	}
	if hdr, _, _ := f.backup(f.img); hdr.Kind != extent.Full || !strings.Contains(strings.Join(f.logs, "\n"), "distrusted") {
		t.Errorf("distrusted newest: %s stream, logs %q", hdr.Kind, f.logs)
	}
}

// TestRevisionBaseMustBeNewest: a differential stream computed against one
// revision is refused once another revision has become the newest, and the
// repository is left as it was.
func TestRevisionBaseMustBeNewest(t *testing.T) {
	f := newDiffFixture(t, 4*chunk)
	f.write(0, chunk, 1)
	f.backup(f.img)
	f.write(chunk, 100, 2)
	var stream bytes.Buffer
	if _, err := File(context.Background(), f.img, &stream, Options{BaseFrom: f.dir}); err != nil {
		t.Fatal(err)
	}
	f.backup(f.img) // another revision lands first
	r, err := repo.Open(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := r.Revisions()
	_, err = store.Store(context.Background(), r, &stream, store.Options{})
	if !errors.Is(err, store.ErrWrongBase) {
		t.Fatalf("error %v, want %v", err, store.ErrWrongBase)
	}
	after, _ := r.Revisions()
	if len(after) != len(before) {
		t.Errorf("%d revisions after the refusal, %d before", len(after), len(before))
	}
}

// TestBaseFromPipe: an image read from a pipe is read in order by one
// reader and hashed by the workers; it sends the same chunks.
func TestBaseFromPipe(t *testing.T) {
	size := int64(6*chunk + 4096)
	f := newDiffFixture(t, size)
	f.write(0, 2*chunk, 1)
	f.write(5*chunk, chunk+4096, 2)
	fromPipe := func() (extent.Header, []extent.Record) {
		pr := f.pipe()
		var stream bytes.Buffer
		if _, err := File(context.Background(), "-", &stream, Options{Stdin: pr, Size: size, BaseFrom: f.dir}); err != nil {
			t.Fatal(err)
		}
		hdr, recs := records(t, stream.Bytes())
		r, err := repo.OpenOrCreate(f.dir)
		if err != nil {
			t.Fatal(err)
		}
		rev, err := store.Store(context.Background(), r, &stream, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		f.checkRestores(r, rev)
		return hdr, recs
	}
	if hdr, _ := fromPipe(); hdr.Kind != extent.Full {
		t.Fatalf("first: %s stream", hdr.Kind)
	}
	f.write(chunk+7, 1, 3)
	hdr, recs := fromPipe()
	if got, want := ranges(recs), fmt.Sprintf("data %d+%d", chunk, chunk); hdr.Kind != extent.Differential || got != want {
		t.Fatalf("changed: %s stream with %s, want a differential one with %s", hdr.Kind, got, want)
	}
}

// TestBaseFromIndexOfAnotherSize: a newest revision whose metadata and
// index disagree about the image size (a damaged repository) is no base;
// once the emitter indexed past the end of the shorter index and panicked.
func TestBaseFromIndexOfAnotherSize(t *testing.T) {
	size := int64(4 * chunk)
	f := newDiffFixture(t, size)
	f.write(chunk, 100, 1)
	r, err := repo.OpenOrCreate(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	rev := &repo.Revision{ID: repo.NewRevisionID(), Time: time.Now().UTC(), Kind: "full", Trust: repo.Trusted, Size: size}
	if err := r.Commit(rev, repo.NewIndex(2*chunk)); err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	log, logs := logtest.New()
	if _, err := File(context.Background(), f.img, &stream, Options{BaseFrom: f.dir, Log: log}); err != nil {
		t.Fatal(err)
	}
	if hdr, _ := records(t, stream.Bytes()); hdr.Kind != extent.Full {
		t.Errorf("%s stream against an index of %d bytes, want a full one (logs %q)", hdr.Kind, 2*chunk, logs.All())
	}
}

// TestBaseFromCancelledIsNotAStream: an interrupted differential extraction,
// from a file or a pipe, ends without an END record.
func TestBaseFromCancelledIsNotAStream(t *testing.T) {
	size := int64(4 * chunk)
	f := newDiffFixture(t, size)
	f.write(0, chunk, 1)
	f.backup(f.img)
	f.write(2*chunk, 10, 2)
	for _, pipe := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		opt, path := Options{BaseFrom: f.dir}, f.img
		if pipe {
			opt.Stdin, opt.Size, path = f.pipe(), size, "-"
		}
		var out bytes.Buffer
		if _, err := File(ctx, path, &out, opt); !errors.Is(err, context.Canceled) {
			t.Fatalf("pipe %v: error %v, want %v", pipe, err, context.Canceled)
		}
		r, err := extent.NewReader(&out)
		for err == nil {
			_, err = r.Next()
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("pipe %v: reading the output: %v, want a truncated stream", pipe, err)
		}
	}
}

// TestBaseFromReadErrorReachesEmitter: a chunk that cannot be read (here:
// the device is shorter than it was when opened) fails the extraction.
func TestBaseFromReadErrorReachesEmitter(t *testing.T) {
	size := int64(4 * chunk)
	f := newDiffFixture(t, size)
	f.write(0, int(size), 1)
	f.backup(f.img)
	img, err := openImage(context.Background(), f.img, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.f.Close()
	base, err := chooseFileBase(f.dir, nil, size, nil)
	if err != nil || base == nil {
		t.Fatalf("base %v, error %v", base, err)
	}
	if err := os.Truncate(f.img, 2*chunk+100); err != nil {
		t.Fatal(err)
	}
	// Read it like a block device, whole: a regular file's holes are
	// looked up as it is read, and a shrunk file then just ends in a hole
	// (which File's final size check catches).
	img.regular = false
	var out bytes.Buffer
	w, err := extent.NewWriter(&out, extent.Header{Kind: extent.Differential, Size: size, Source: "t", Base: "revision:" + base.rev.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := emitDiff(context.Background(), w, img, base, nil); !errors.Is(err, ErrShrunk) {
		t.Fatalf("error %v, want %v", err, ErrShrunk)
	}
}
