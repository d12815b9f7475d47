package rbd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/rbddiff"
	"github.com/backy/backy/pkg/repo"
	"github.com/backy/backy/pkg/source"
)

type diffOp struct {
	off, n int64
	data   []byte // nil: a zero record
}

func makeDiff(t *testing.T, h rbddiff.Header, ops ...diffOp) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := rbddiff.NewWriter(&buf)
	if err := w.WriteHeader(&h); err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		var err error
		if o.data != nil {
			err = w.WriteData(uint64(o.off), o.data)
		} else {
			err = w.WriteZero(uint64(o.off), uint64(o.n))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func data(n int, seed byte) []byte {
	b := make([]byte, n)
	fill(b, seed)
	return b
}

func convert(t *testing.T, diff []byte) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	_, err := Convert(context.Background(), bytes.NewReader(diff), &out, ConvertOptions{Source: "rbd:p/i"})
	return out.Bytes(), err
}

func TestConvertCanonical(t *testing.T) {
	diff := makeDiff(t, rbddiff.Header{Version: 1, FromSnap: "a", ToSnap: "b", Size: 3*repo.ChunkSize + 5},
		diffOp{off: 100, data: data(10, 1)},
		diffOp{off: repo.ChunkSize - 5, data: data(10, 2)},        // across a chunk boundary
		diffOp{off: 2 * repo.ChunkSize, data: make([]byte, 4096)}, // all zero...
		diffOp{off: 2*repo.ChunkSize + 4096, n: 4096},             // ...next to a zero record
		diffOp{off: 3 * repo.ChunkSize, data: data(5, 3)})
	out, err := convert(t, diff)
	if err != nil {
		t.Fatal(err)
	}
	h, recs := decode(t, out)
	want := extent.Header{Kind: extent.Differential, Size: 3*repo.ChunkSize + 5, Source: "rbd:p/i", Snapshot: "b", Base: "a"}
	if h != want {
		t.Fatalf("header %+v, want %+v", h, want)
	}
	got := summarize(recs)
	wantRecs := []string{"data 100+10", "data 4194299+5", "data 4194304+5", "zero 8388608+8192", "data 12582912+5"}
	if !slices.Equal(got, wantRecs) {
		t.Fatalf("records %v, want %v", got, wantRecs)
	}
	if !bytes.Equal(recs[1].Data, data(10, 2)[:5]) || !bytes.Equal(recs[2].Data, data(10, 2)[5:]) {
		t.Fatal("split data differs")
	}

	full := makeDiff(t, rbddiff.Header{Version: 1, ToSnap: "b", Size: repo.ChunkSize}, diffOp{off: 0, data: data(3, 1)})
	out, err = convert(t, full)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := decode(t, out); h.Kind != extent.Full || h.Base != "" || h.Snapshot != "b" {
		t.Fatalf("header %+v, want a full stream of b", h)
	}
}

func TestConvertLongWrite(t *testing.T) {
	// rbd writes up to one object per record, and objects may be 32 MiB.
	big := data(9*repo.ChunkSize/2, 7)
	out, err := convert(t, makeDiff(t, rbddiff.Header{Version: 1, Size: 5 * repo.ChunkSize}, diffOp{off: repo.ChunkSize / 2, data: big}))
	if err != nil {
		t.Fatal(err)
	}
	_, recs := decode(t, out)
	if len(recs) != 5 {
		t.Fatalf("records %v", summarize(recs))
	}
	var got []byte
	for _, r := range recs {
		got = append(got, r.Data...)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("data differs")
	}
}

func TestConvertRefusesBadDiffs(t *testing.T) {
	good := makeDiff(t, rbddiff.Header{Version: 1, Size: repo.ChunkSize}, diffOp{off: 0, data: data(3, 1)})
	cases := map[string]struct {
		in   []byte
		want error
	}{
		"truncated":  {good[:len(good)-1], io.ErrUnexpectedEOF},
		"trailing":   {append(slices.Clone(good), 'x'), rbddiff.ErrTrailing},
		"not a diff": {[]byte("hello, world\n"), rbddiff.ErrBadMagic},
	}
	files, _ := filepath.Glob("../rbddiff/testdata/invalid/*.bin")
	if len(files) == 0 {
		t.Fatal("no invalid rbd diff vectors")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cases[filepath.Base(f)] = struct {
			in   []byte
			want error
		}{b, nil}
	}
	for name, c := range cases {
		out, err := convert(t, c.in)
		if err == nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", name, err, c.want)
		}
		if len(out) > 0 && !truncated(out) {
			t.Errorf("%s: the stream has an END record", name)
		}
	}
}

func TestConvertRealExportDiff(t *testing.T) {
	b, err := os.ReadFile("../rbddiff/testdata/valid/rbd-export-diff-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	out, err := convert(t, b)
	if err != nil {
		t.Fatal(err)
	}
	h, recs := decode(t, out)
	if h.Snapshot == "" || len(recs) == 0 {
		t.Fatalf("header %+v, %d records", h, len(recs))
	}
	for _, r := range recs {
		if r.Offset/repo.ChunkSize != (r.End()-1)/repo.ChunkSize && r.Type == extent.Data {
			t.Fatalf("record %d+%d spans chunks", r.Offset, r.Length)
		}
	}
}

// A sample must not depend on how the data arrived: in rbd diff extents
// (the CLI engine, which skips unwanted data) or as whole blocks (librbd).
func TestSampleIndependentOfExtents(t *testing.T) {
	size := int64(10*repo.ChunkSize + 12345)
	img := make([]byte, size)
	fill(img[100:300], 1)
	fill(img[3*repo.ChunkSize-50:3*repo.ChunkSize+70000], 2)
	fill(img[7*repo.ChunkSize:8*repo.ChunkSize], 3)
	fill(img[10*repo.ChunkSize:], 4)
	var ops []diffOp
	for _, r := range [][2]int64{{0, 4096}, {3*repo.ChunkSize - 4096, 8 << 20}, {7 * repo.ChunkSize, repo.ChunkSize}, {9 * repo.ChunkSize, size - 9*repo.ChunkSize}} {
		ops = append(ops, diffOp{off: r[0], data: img[r[0] : r[0]+r[1]]})
	}
	ops = append(ops[:1], append([]diffOp{{off: repo.ChunkSize, n: repo.ChunkSize}}, ops[1:]...)...)
	diff := makeDiff(t, rbddiff.Header{Version: 1, ToSnap: "s", Size: uint64(size)}, ops...)
	hdr := extent.Header{Kind: extent.Sample, Source: "rbd:p/i", Snapshot: "s"}
	for _, pct := range []float64{1, 30, 100} {
		var viaDiff, viaBlocks bytes.Buffer
		e := newEmitter(&viaDiff, hdr, pct, 42)
		r := rbddiff.NewReader(bytes.NewReader(diff))
		h, err := r.Header()
		if err != nil {
			t.Fatal(err)
		}
		if err := copyDiff(context.Background(), r, h, e); err != nil {
			t.Fatal(err)
		}
		if _, err := e.finish(); err != nil {
			t.Fatal(err)
		}
		e = newEmitter(&viaBlocks, hdr, pct, 42)
		e.Begin(size)
		for off := int64(0); off < size; off += repo.ChunkSize {
			if e.Wanted(off, min(size, off+repo.ChunkSize)) {
				e.Data(off, img[off:min(size, off+repo.ChunkSize)])
			}
		}
		if _, err := e.finish(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(viaDiff.Bytes(), viaBlocks.Bytes()) {
			t.Fatalf("%v%%: sample from diff extents differs from sample from blocks", pct)
		}
		h2, recs := decode(t, viaDiff.Bytes())
		if h2.Kind != extent.Sample {
			t.Fatalf("kind %v", h2.Kind)
		}
		var covered int64
		for _, r := range recs {
			covered += r.Length
			if r.Type == extent.Data && !bytes.Equal(r.Data, img[r.Offset:r.End()]) {
				t.Fatalf("%v%%: record at %d differs from the image", pct, r.Offset)
			}
		}
		if pct == 100 && covered != size {
			t.Fatalf("a 100%% sample covers %d of %d bytes: %v", covered, size, summarize(recs))
		}
		if want := int64(len(source.SampleBlocks(size, pct, 42))); covered < (want-1)*repo.ChunkSize || covered > want*repo.ChunkSize {
			t.Fatalf("%v%%: %d bytes covered for %d blocks", pct, covered, want)
		}
	}
}
