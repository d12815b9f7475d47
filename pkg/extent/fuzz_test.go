package extent_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/backy/backy/pkg/extent"
)

// FuzzReader feeds arbitrary bytes to the Reader, seeded with every test
// vector. Whatever the input, the Reader must not panic, must fail only with
// errors that say the stream is invalid (a bytes.Reader has no I/O errors),
// must never hand out a record that breaks order or bounds, and a stream it
// accepts must be exactly what the Writer makes of the same records: there
// is one encoding of every stream.
func FuzzReader(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.bxs"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no vectors in testdata: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(sampleStream(f))
	f.Fuzz(func(t *testing.T, stream []byte) {
		r, err := extent.NewReader(bytes.NewReader(stream))
		if err != nil {
			checkInvalid(t, err)
			return
		}
		h := r.Header()
		checkHeader(t, h)
		var recs []extent.Record
		var sum extent.Summary
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				checkInvalid(t, err)
				if _, again := r.Next(); again != err {
					t.Fatalf("error not sticky: %v, then %v", err, again)
				}
				return
			}
			checkRecord(t, h, rec, recs)
			c := *rec
			c.Data = bytes.Clone(rec.Data)
			recs = append(recs, c)
			sum.Records++
			if rec.Type == extent.Data {
				sum.DataBytes += rec.Length
			} else {
				sum.ZeroBytes += rec.Length
			}
		}
		if r.Summary() != sum {
			t.Fatalf("summary %+v, records add up to %+v", r.Summary(), sum)
		}
		if r.BytesRead() != int64(len(stream)) {
			t.Fatalf("accepted after %d of %d bytes", r.BytesRead(), len(stream))
		}
		again, err := encode(h, recs)
		if err != nil {
			t.Fatalf("Writer refuses what the Reader accepted: %v", err)
		}
		if !bytes.Equal(again, stream) {
			t.Fatalf("accepted stream re-encodes to other bytes")
		}
	})
}

func checkInvalid(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, io.EOF) || !isInvalid(err) {
		t.Fatalf("error %v (%T) is not an invalid-stream error", err, err)
	}
}

func checkHeader(t *testing.T, h extent.Header) {
	t.Helper()
	if h.Kind != extent.Full && h.Kind != extent.Differential && h.Kind != extent.Sample ||
		h.Size < 0 || h.Size > extent.MaxImageSize ||
		len(h.Source) > extent.MaxNameLength || len(h.Snapshot) > extent.MaxNameLength ||
		len(h.Base) > extent.MaxNameLength || (h.Kind == extent.Differential) != (h.Base != "") {
		t.Fatalf("accepted header %+v", h)
	}
}

// checkRecord checks rec against the header and the records before it.
func checkRecord(t *testing.T, h extent.Header, rec *extent.Record, prev []extent.Record) {
	t.Helper()
	var next int64
	if len(prev) > 0 {
		next = prev[len(prev)-1].End()
	}
	switch {
	case rec.Type != extent.Data && rec.Type != extent.Zero:
		t.Fatalf("record of type %s", rec.Type)
	case rec.Length < 1:
		t.Fatalf("record of length %d", rec.Length)
	case rec.Offset < next:
		t.Fatalf("record at %d before the end of the previous one at %d", rec.Offset, next)
	case rec.Offset > h.Size || rec.Length > h.Size-rec.Offset:
		t.Fatalf("record %d+%d beyond image size %d", rec.Offset, rec.Length, h.Size)
	case rec.Type == extent.Data && (rec.Length > extent.MaxDataLength || int64(len(rec.Data)) != rec.Length):
		t.Fatalf("data record of length %d with %d bytes", rec.Length, len(rec.Data))
	case rec.Type == extent.Zero && rec.Data != nil:
		t.Fatalf("zero record with data")
	}
}
