package source

import (
	"bytes"
	"context"
	"errors"
	"github.com/backy/backy/internal/streamtest"
	"github.com/backy/backy/pkg/repo"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/backy/backy/pkg/extent"
)

const MiB = 1 << 20

func sparseFile(t testing.TB, size int64, data map[int64][]byte) string {
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
	for off, b := range data {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// records decodes a complete stream (internal/streamtest).
func records(t *testing.T, stream []byte) (extent.Header, []extent.Record) {
	t.Helper()
	return streamtest.Records(t, stream)
}

func TestHolesAreNotRead(t *testing.T) {
	// A 1 TiB file with 5 bytes of data: the stream is three records, and
	// producing it does not read a terabyte.
	p := sparseFile(t, 1<<40, map[int64][]byte{600 * MiB: []byte("hello")})
	var buf bytes.Buffer
	sum, err := File(context.Background(), p, &buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	hdr, recs := records(t, buf.Bytes())
	if hdr.Size != 1<<40 || hdr.Kind != extent.Full {
		t.Fatalf("header %+v", hdr)
	}
	if len(recs) != 3 || recs[1].Type != extent.Data || sum.DataBytes > repo.ChunkSize {
		t.Fatalf("records %d, data bytes %d", len(recs), sum.DataBytes)
	}
	if recs[1].Offset%repo.ChunkSize != 0 && recs[1].Offset != 600*MiB {
		t.Fatalf("data record at %d", recs[1].Offset)
	}
	if !bytes.Contains(recs[1].Data, []byte("hello")) {
		t.Fatal("data record lacks the data")
	}
}

func TestZeroBlocksBecomeZeroRecords(t *testing.T) {
	// Written zeros (not a hole) still leave as a zero record.
	p := sparseFile(t, 12*MiB, map[int64][]byte{0: make([]byte, 8*MiB), 8 * MiB: bytes.Repeat([]byte{1}, 4*MiB)})
	var buf bytes.Buffer
	if _, err := File(context.Background(), p, &buf, Options{}); err != nil {
		t.Fatal(err)
	}
	_, recs := records(t, buf.Bytes())
	if len(recs) != 2 || recs[0].Type != extent.Zero || recs[0].Length != 8*MiB || recs[1].Type != extent.Data {
		t.Fatalf("records %+v", recs)
	}
}

func TestRecordsAlignToBlocks(t *testing.T) {
	p := sparseFile(t, 20*MiB, map[int64][]byte{3 * MiB: bytes.Repeat([]byte{9}, 6*MiB)})
	var buf bytes.Buffer
	if _, err := File(context.Background(), p, &buf, Options{}); err != nil {
		t.Fatal(err)
	}
	_, recs := records(t, buf.Bytes())
	for _, r := range recs {
		if r.Type == extent.Data && r.Offset/repo.ChunkSize != (r.End()-1)/repo.ChunkSize {
			t.Fatalf("data record %d+%d crosses a block boundary", r.Offset, r.Length)
		}
	}
}

// shrinkingWriter truncates the source file on its first write, while the
// reader goroutine still has most of the file ahead of it.
type shrinkingWriter struct {
	path string
	done bool
	bytes.Buffer
}

func (w *shrinkingWriter) Write(p []byte) (int, error) {
	if !w.done {
		w.done = true
		os.Truncate(w.path, MiB)
	}
	return w.Buffer.Write(p)
}

func TestShrinkWhileReading(t *testing.T) {
	p := sparseFile(t, 64*MiB, map[int64][]byte{0: bytes.Repeat([]byte{7}, 64*MiB)})
	w := &shrinkingWriter{path: p}
	_, err := File(context.Background(), p, w, Options{})
	if !errors.Is(err, ErrShrunk) {
		t.Fatalf("error %v, want ErrShrunk", err)
	}
	if _, err := extent.NewReader(bytes.NewReader(w.Bytes())); err == nil {
		r, _ := extent.NewReader(bytes.NewReader(w.Bytes()))
		for {
			_, err := r.Next()
			if err == io.EOF {
				t.Fatal("a stream of a shrinking file has an END record")
			}
			if err != nil {
				break
			}
		}
	}
}

func TestPipeNeedsSizeAndExactLength(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { pw.Write(bytes.Repeat([]byte{1}, 3*MiB)); pw.Close() }()
	if _, err := File(context.Background(), "-", io.Discard, Options{Stdin: pr}); !errors.Is(err, ErrSizeNeeded) {
		t.Fatalf("no size: %v", err)
	}
	var buf bytes.Buffer
	if _, err := File(context.Background(), "-", &buf, Options{Stdin: pr, Size: 3 * MiB}); err != nil {
		t.Fatalf("exact size: %v", err)
	}
	pr2, pw2, _ := os.Pipe()
	go func() { pw2.Write(bytes.Repeat([]byte{1}, 3*MiB+1)); pw2.Close() }()
	if _, err := File(context.Background(), "-", io.Discard, Options{Stdin: pr2, Size: 3 * MiB}); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("longer input: %v", err)
	}
}

func TestSample(t *testing.T) {
	p := sparseFile(t, 100*MiB+5, map[int64][]byte{0: bytes.Repeat([]byte{3}, 100*MiB+5)})
	for _, c := range []struct {
		percent float64
		want    int
	}{{100, 26}, {10, 3}, {0.001, 1}} {
		var buf bytes.Buffer
		if _, err := File(context.Background(), p, &buf, Options{Sample: c.percent, Seed: 42}); err != nil {
			t.Fatal(err)
		}
		hdr, recs := records(t, buf.Bytes())
		if hdr.Kind != extent.Sample || len(recs) != c.want {
			t.Fatalf("%v%%: kind %s, %d records, want %d", c.percent, hdr.Kind, len(recs), c.want)
		}
	}
	a, b := SampleBlocks(1<<30, 5, 7), SampleBlocks(1<<30, 5, 7)
	if len(a) != 13 || len(a) != len(b) || a[0] != b[0] {
		t.Fatalf("same seed, different samples: %v %v", a, b)
	}
}

// TestSampleOfHoles: sampled blocks that are holes become zero records
// without being read, and the stream is the one a file with those zeros
// written out gives (same seed).
func TestSampleOfHoles(t *testing.T) {
	data := map[int64][]byte{4 * MiB: bytes.Repeat([]byte{7}, MiB), 9*MiB + 3: []byte("x")}
	sparse := sparseFile(t, 16*MiB, data)
	dense := make([]byte, 16*MiB)
	for off, b := range data {
		copy(dense[off:], b)
	}
	full := filepath.Join(t.TempDir(), "dense")
	if err := os.WriteFile(full, dense, 0o600); err != nil {
		t.Fatal(err)
	}
	stream := func(p string) []extent.Record {
		var buf bytes.Buffer
		if _, err := File(context.Background(), p, &buf, Options{Sample: 100, Seed: 9}); err != nil {
			t.Fatal(err)
		}
		_, recs := records(t, buf.Bytes())
		return recs
	}
	a, b := stream(sparse), stream(full)
	if len(a) != len(b) {
		t.Fatalf("%d records from the sparse file, %d from the dense one", len(a), len(b))
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Offset != b[i].Offset || a[i].Length != b[i].Length || !bytes.Equal(a[i].Data, b[i].Data) {
			t.Fatalf("record %d: %v %d+%d, dense: %v %d+%d", i, a[i].Type, a[i].Offset, a[i].Length, b[i].Type, b[i].Offset, b[i].Length)
		}
	}
	if a[0].Type != extent.Zero || a[0].Length != 4*MiB {
		t.Fatalf("the first block, a hole, gave %v %d+%d", a[0].Type, a[0].Offset, a[0].Length)
	}
}

func TestNotAnImage(t *testing.T) {
	if _, err := File(context.Background(), t.TempDir(), io.Discard, Options{}); !errors.Is(err, ErrNotImage) {
		t.Fatalf("directory: %v", err)
	}
	if _, err := File(context.Background(), "/nonexistent/img", io.Discard, Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}
