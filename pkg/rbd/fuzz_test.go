package rbd

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/backy/backy/pkg/extent"
	"github.com/backy/backy/pkg/rbddiff"
	"github.com/backy/backy/pkg/repo"
)

// FuzzConvert feeds arbitrary bytes to Convert: it either fails without an
// END record, or writes a valid stream that describes exactly the image
// the diff describes, in records that never span a chunk boundary.
func FuzzConvert(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("..", "rbddiff", "testdata", dir, "*.bin"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		_, err := Convert(context.Background(), bytes.NewReader(in), &out, ConvertOptions{})
		if err != nil {
			if out.Len() > 0 && !truncated(out.Bytes()) {
				t.Fatalf("failed with %v but wrote a complete stream", err)
			}
			return
		}
		want, ok := applyRBDDiff(in)
		if !ok {
			t.Fatal("Convert accepted a diff the reader refuses")
		}
		r, err := extent.NewReader(&out)
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			return // too large to compare in memory
		}
		got := make([]byte, r.Header().Size)
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if rec.Offset/repo.ChunkSize != (rec.End()-1)/repo.ChunkSize && rec.Type == extent.Data {
				t.Fatalf("data record %d+%d spans chunks", rec.Offset, rec.Length)
			}
			if rec.Type == extent.Data {
				if extent.IsZero(rec.Data) {
					t.Fatalf("all-zero data record at %d", rec.Offset)
				}
				copy(got[rec.Offset:], rec.Data)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatal("the stream describes another image than the diff")
		}
	})
}

// applyRBDDiff applies a diff to an empty image; nil, true when the image
// would be larger than 1 MiB; false when the diff is invalid.
func applyRBDDiff(in []byte) ([]byte, bool) {
	r := rbddiff.NewReader(bytes.NewReader(in))
	h, err := r.Header()
	if err != nil {
		return nil, false
	}
	var img []byte
	if h.Size <= 1<<20 {
		img = make([]byte, h.Size)
	}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return img, true
		}
		if err != nil {
			return nil, false
		}
		if rec.Type == rbddiff.TypeWrite && img != nil {
			if _, err := io.ReadFull(r, img[rec.Offset:rec.End()]); err != nil {
				return nil, false
			}
		}
	}
}
