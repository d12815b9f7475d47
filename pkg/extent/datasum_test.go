package extent_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/backy/backy/pkg/extent"
)

func summed(off int64, pieces ...[]byte) extent.DataSum {
	var n int64
	for _, p := range pieces {
		n += int64(len(p))
	}
	s := extent.NewDataSum(off, n)
	for _, p := range pieces {
		s.Write(p)
	}
	return s
}

// TestWriteSummedMatchesWriteData: a record checksummed piece by piece is
// byte for byte the record WriteData writes.
func TestWriteSummedMatchesWriteData(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := randomBytes(rng, 300000)
	h := extent.Header{Kind: extent.Full, Size: 1 << 20, Source: "t"}
	var a, b bytes.Buffer
	wa, _ := extent.NewWriter(&a, h)
	wb, _ := extent.NewWriter(&b, h)
	if err := wa.WriteData(4096, p); err != nil {
		t.Fatal(err)
	}
	if err := wb.WriteSummed(4096, p, summed(4096, p[:1], p[1:70000], p[70000:])); err != nil {
		t.Fatal(err)
	}
	if err := wa.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("streams differ")
	}
	if _, err := decode(bytes.NewReader(b.Bytes())); err != io.EOF {
		t.Fatalf("reading it back: %v, want a clean end", err)
	}
}

func TestWriteSummedRefusesOtherRecord(t *testing.T) {
	p := make([]byte, 8192)
	p[0] = 1
	h := extent.Header{Kind: extent.Full, Size: 1 << 20, Source: "t"}
	for name, s := range map[string]extent.DataSum{
		"other offset": summed(0, p),
		"short sum":    summed(4096, p[:4096]),
		"unfinished":   extent.NewDataSum(4096, int64(len(p))),
	} {
		var buf bytes.Buffer
		w, _ := extent.NewWriter(&buf, h)
		err := w.WriteSummed(4096, p, s)
		if !errors.Is(err, extent.ErrBadRecord) {
			t.Errorf("%s: %v, want %v", name, err, extent.ErrBadRecord)
		}
		if err := w.Close(); !errors.Is(err, extent.ErrBadRecord) {
			t.Errorf("%s: Close after the refusal: %v, want the sticky error", name, err)
		}
	}
}

// TestWriteSummedWrongBytes: a sum of other bytes of the same length cannot
// be caught by the Writer, but no reader accepts the record.
func TestWriteSummedWrongBytes(t *testing.T) {
	p := bytes.Repeat([]byte{7}, 4096)
	q := bytes.Repeat([]byte{8}, 4096)
	var buf bytes.Buffer
	w, _ := extent.NewWriter(&buf, extent.Header{Kind: extent.Full, Size: 1 << 20, Source: "t"})
	if err := w.WriteSummed(0, p, summed(0, q)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := decode(bytes.NewReader(buf.Bytes())); !errors.Is(err, extent.ErrChecksum) {
		t.Fatalf("reading it back: %v, want %v", err, extent.ErrChecksum)
	}
}
