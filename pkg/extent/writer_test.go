package extent_test

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/backy/backy/pkg/extent"
)

// TestWriterRefuses checks that every rule a Reader enforces is refused by
// the Writer with the same sentinel, that the refusal is sticky, and that
// the stream stays without END (truncated) so nothing downstream accepts it.
func TestWriterRefuses(t *testing.T) {
	data := func(off int64, n int) func(*extent.Writer) error {
		return func(w *extent.Writer) error { return w.WriteData(off, make([]byte, n)) }
	}
	zero := func(off, n int64) func(*extent.Writer) error {
		return func(w *extent.Writer) error { return w.WriteZero(off, n) }
	}
	const size = 1 << 20
	for _, c := range []struct {
		name string
		ok   []func(*extent.Writer) error // accepted first
		bad  func(*extent.Writer) error
		want error
	}{
		{"descending data", []func(*extent.Writer) error{data(8192, 10)}, data(0, 10), extent.ErrOrder},
		{"descending zero", []func(*extent.Writer) error{zero(8192, 10)}, zero(0, 10), extent.ErrOrder},
		{"overlap data on zero", []func(*extent.Writer) error{zero(0, 4096)}, data(4095, 10), extent.ErrOrder},
		{"overlap zero on data", []func(*extent.Writer) error{data(0, 4096)}, zero(100, 10), extent.ErrOrder},
		{"same offset twice", []func(*extent.Writer) error{zero(4096, 1)}, zero(4096, 1), extent.ErrOrder},
		{"data beyond image", nil, data(size-1, 2), extent.ErrBeyondImage},
		{"zero beyond image", nil, zero(size-1, 2), extent.ErrBeyondImage},
		{"at image end", nil, zero(size, 1), extent.ErrBeyondImage},
		{"far beyond image", nil, zero(math.MaxInt64, 1), extent.ErrBeyondImage},
		{"length overflows", nil, zero(1, math.MaxInt64), extent.ErrBeyondImage},
		{"negative offset", nil, zero(-1, 2), extent.ErrBeyondImage},
		{"negative data offset", nil, data(-4096, 10), extent.ErrBeyondImage},
		{"empty zero", nil, zero(0, 0), extent.ErrBadRecord},
		{"negative zero", nil, zero(0, -1), extent.ErrBadRecord},
		{"empty data", nil, data(0, 0), extent.ErrBadRecord},
		{"split data beyond image", nil, data(0, size+1), extent.ErrBeyondImage},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := extent.NewWriter(&buf, extent.Header{Kind: extent.Full, Size: size})
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range c.ok {
				if err := op(w); err != nil {
					t.Fatal(err)
				}
			}
			sum := w.Summary()
			err = c.bad(w)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if w.Summary() != sum {
				t.Errorf("summary changed by a refused record")
			}
			n := buf.Len()
			if err2 := w.WriteZero(size-1, 1); err2 != err {
				t.Errorf("after %v, a valid record gave %v", err, err2)
			}
			if err2 := w.Close(); err2 != err {
				t.Errorf("after %v, Close gave %v", err, err2)
			}
			if buf.Len() != n {
				t.Errorf("the Writer wrote after its error")
			}
			if _, err := decode(&buf); !errors.Is(err, extent.ErrTruncated) {
				t.Errorf("reading what the failed Writer left: %v, want truncated", err)
			}
		})
	}
}

func TestWriterRefusesHeader(t *testing.T) {
	long := strings.Repeat("x", extent.MaxNameLength+1)
	for _, h := range []extent.Header{
		{},
		{Kind: 4, Size: 1},
		{Kind: extent.Full, Size: -1},
		{Kind: extent.Full, Size: extent.MaxImageSize + 1},
		{Kind: extent.Full, Source: long},
		{Kind: extent.Full, Snapshot: long},
		{Kind: extent.Differential, Base: long},
		{Kind: extent.Differential},
		{Kind: extent.Full, Base: "a"},
		{Kind: extent.Sample, Base: "a"},
	} {
		var buf bytes.Buffer
		w, err := extent.NewWriter(&buf, h)
		if !errors.Is(err, extent.ErrBadHeader) || w != nil || buf.Len() != 0 {
			t.Errorf("%+v: got %v, wrote %d bytes; want ErrBadHeader and nothing", h, err, buf.Len())
		}
	}
}

func TestWriterAfterClose(t *testing.T) {
	var buf bytes.Buffer
	w, err := extent.NewWriter(&buf, extent.Header{Kind: extent.Full, Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n := buf.Len()
	if err := w.WriteData(0, []byte{1}); !errors.Is(err, extent.ErrWriterClosed) {
		t.Errorf("WriteData after Close: %v", err)
	}
	if err := w.WriteZero(0, 1); !errors.Is(err, extent.ErrWriterClosed) {
		t.Errorf("WriteZero after Close: %v", err)
	}
	_ = w.Close() // a second Close must not write a second END
	if buf.Len() != n {
		t.Errorf("%d bytes written after Close", buf.Len()-n)
	}
	if _, err := decode(&buf); err != io.EOF {
		t.Errorf("stream: %v", err)
	}
}

// failWriter accepts n bytes, then fails.
type failWriter struct {
	n   int
	err error
}

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n := f.n
		f.n = 0
		return n, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

// TestWriterIOError checks that a failing destination stops the Writer for
// good: the error is returned again, and Close writes no END record.
func TestWriterIOError(t *testing.T) {
	full := len(sampleStream(t))
	boom := errors.New("pipe burst")
	for n := range full {
		fw := &failWriter{n: n, err: boom}
		w, err := extent.NewWriter(fw, extent.Header{Kind: extent.Differential, Size: 1<<20 + 7,
			Source: "rbd:pool/vm", Snapshot: "backy-2", Base: "backy-1"})
		if err != nil {
			if !errors.Is(err, boom) {
				t.Fatalf("n=%d: NewWriter: %v", n, err)
			}
			continue
		}
		errs := []error{
			w.WriteData(0, make([]byte, 300)),
			w.WriteZero(300, 4096),
			w.WriteData(8192, []byte{7}),
			w.WriteZero(1<<19, 1<<19),
			w.WriteData(1<<20, make([]byte, 7)),
			w.Close(),
		}
		var first error
		for _, e := range errs {
			if first == nil {
				first = e
			} else if e != first {
				t.Fatalf("n=%d: error %v after %v", n, e, first)
			}
		}
		if !errors.Is(first, boom) {
			t.Fatalf("n=%d: got %v, want %v", n, first, boom)
		}
	}
}
